"""Codex's Alembic history: one head, and it matches the models."""

from datetime import UTC, datetime

from sqlalchemy import inspect, text

from hivematrix.codex import SERVICE
from hivematrix.codex.models import Base
from hivematrix.common import db
from hivematrix.common.testing import assert_migrations_match_models, assert_single_migration_head


def test_single_head() -> None:
    assert SERVICE.migrations
    assert_single_migration_head(SERVICE.migrations)


def test_migrations_match_models(codex_db_url: str) -> None:
    assert SERVICE.migrations
    assert_migrations_match_models(SERVICE.migrations, Base.metadata, codex_db_url)


def _downgrade(url: str, revision: str) -> None:
    from alembic import command

    engine = db.make_engine(url)
    try:
        with engine.begin() as connection:
            config = db.alembic_config(SERVICE.migrations or "", url)
            config.attributes["connection"] = connection
            command.downgrade(config, revision)
    finally:
        engine.dispose()


def test_agent_preferences_revision_up_and_down(codex_db_url: str) -> None:
    """0002 gives agents that exist already the default colour and view; downgrading drops
    the two columns and keeps the rows."""
    assert SERVICE.migrations
    _downgrade(codex_db_url, "0001")
    engine = db.make_engine(codex_db_url)
    try:
        columns = {column["name"] for column in inspect(engine).get_columns("codex_agents")}
        assert {"color_theme", "knowledge_tree_view"}.isdisjoint(columns)
        now = datetime.now(UTC)
        with engine.begin() as connection:
            connection.execute(text(
                "INSERT INTO codex_agents (subject, username, email, name, enabled, theme, "
                "home_page, created_at, updated_at) VALUES ('kc-1', 'riley', '', '', true, "
                "'dark', 'codex', :now, :now)"), {"now": now})
        db.upgrade(SERVICE.migrations, codex_db_url)
        with engine.connect() as connection:
            row = connection.execute(text(
                "SELECT theme, home_page, color_theme, knowledge_tree_view FROM codex_agents"
            )).one()
        assert tuple(row) == ("dark", "codex", "purple", "grid")
        _downgrade(codex_db_url, "0001")
        columns = {column["name"] for column in inspect(engine).get_columns("codex_agents")}
        assert {"color_theme", "knowledge_tree_view"}.isdisjoint(columns)
        with engine.connect() as connection:
            assert connection.execute(text("SELECT username FROM codex_agents")).scalar() == \
                "riley"
    finally:
        engine.dispose()
