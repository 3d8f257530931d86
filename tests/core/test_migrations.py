"""Core's Alembic history: one head, and it matches the models."""

from hivematrix.common.testing import assert_migrations_match_models, assert_single_migration_head
from hivematrix.core import SERVICE
from hivematrix.core.models import Base


def test_single_head() -> None:
    assert_single_migration_head(SERVICE.migrations)


def test_migrations_match_models(core_database_url: str) -> None:
    assert_migrations_match_models(SERVICE.migrations, Base.metadata, core_database_url)
