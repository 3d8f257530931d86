"""The identity service's Alembic history: one head, matching the models, groups seeded."""

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import select

from hivematrix.common import db
from hivematrix.identity import SERVICE
from hivematrix.identity.models import GROUPS, Base, Group


def test_single_head() -> None:
    script = ScriptDirectory.from_config(db.alembic_config(SERVICE.migrations, "sqlite://"))
    assert len(script.get_heads()) == 1


def test_migrations_match_models(database_url: str) -> None:
    ours = set(Base.metadata.tables)

    def include_name(name, type_, _parent) -> bool:
        # The test database may hold other services' tables; compare only ours.
        return type_ != "table" or name in ours

    engine = db.make_engine(database_url)
    with engine.connect() as connection:
        options = {"compare_type": True, "include_name": include_name,
                   "version_table": db.version_table(SERVICE.migrations)}
        context = MigrationContext.configure(connection, opts=options)
        assert compare_metadata(context, Base.metadata) == []
    engine.dispose()


def test_upgrade_seeds_the_platform_groups(database: db.Database) -> None:
    with database.transaction() as session:
        assert sorted(session.scalars(select(Group.name))) == sorted(GROUPS)


def test_upgrade_records_the_head_revision(database_url: str) -> None:
    script = ScriptDirectory.from_config(db.alembic_config(SERVICE.migrations, database_url))
    assert db.current_revision(SERVICE.migrations, database_url) == script.get_current_head()
