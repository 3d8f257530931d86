"""The template's Alembic history: one head, and it matches the models."""

from alembic.script import ScriptDirectory

from hivematrix.common import db
from hivematrix.common.testing import assert_migrations_match_models, assert_single_migration_head
from hivematrix.template import SERVICE
from hivematrix.template.models import Base


def test_single_head() -> None:
    assert_single_migration_head(SERVICE.migrations)


def test_migrations_match_models(database_url: str) -> None:
    assert_migrations_match_models(SERVICE.migrations, Base.metadata, database_url)


def test_upgrade_records_the_head_revision(database_url: str) -> None:
    script = ScriptDirectory.from_config(db.alembic_config(SERVICE.migrations, database_url))
    assert db.current_revision(SERVICE.migrations, database_url) == script.get_current_head()
