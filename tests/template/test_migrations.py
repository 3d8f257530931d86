"""The template's Alembic history: one head, and it matches the models."""

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from hivematrix.common import db
from hivematrix.template import SERVICE
from hivematrix.template.models import Base


def test_single_head() -> None:
    script = ScriptDirectory.from_config(db.alembic_config(SERVICE.migrations, "sqlite://"))
    assert len(script.get_heads()) == 1


def test_migrations_match_models(database_url: str) -> None:
    engine = db.make_engine(database_url)
    with engine.connect() as connection:
        options = {"compare_type": True, "version_table": db.version_table(SERVICE.migrations)}
        context = MigrationContext.configure(connection, opts=options)
        assert compare_metadata(context, Base.metadata) == []
    engine.dispose()


def test_upgrade_records_the_head_revision(database_url: str) -> None:
    script = ScriptDirectory.from_config(db.alembic_config(SERVICE.migrations, database_url))
    assert db.current_revision(SERVICE.migrations, database_url) == script.get_current_head()
