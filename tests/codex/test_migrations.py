"""Codex's Alembic history: one head, and it matches the models."""

from hivematrix.codex import SERVICE
from hivematrix.codex.models import Base
from hivematrix.common.testing import assert_migrations_match_models, assert_single_migration_head


def test_single_head() -> None:
    assert SERVICE.migrations
    assert_single_migration_head(SERVICE.migrations)


def test_migrations_match_models(codex_db_url: str) -> None:
    assert SERVICE.migrations
    assert_migrations_match_models(SERVICE.migrations, Base.metadata, codex_db_url)
