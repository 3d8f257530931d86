"""Nexus's Alembic history: one head, and it matches the models on SQLite and PostgreSQL."""

from pathlib import Path

import pytest

from hivematrix.common.testing import (
    assert_migrations_match_models,
    assert_single_migration_head,
    migrated_database,
)
from hivematrix.nexus import SERVICE
from hivematrix.nexus.models import Base


def test_single_head() -> None:
    assert_single_migration_head(SERVICE.migrations)


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_migrations_match_models(backend: str, tmp_path: Path,
                                 request: pytest.FixtureRequest) -> None:
    url = (f"sqlite:///{tmp_path}/nexus.db" if backend == "sqlite"
           else request.getfixturevalue("pg_url"))
    with migrated_database(SERVICE.migrations, url):
        assert_migrations_match_models(SERVICE.migrations, Base.metadata, url)
