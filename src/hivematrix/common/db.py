"""Database access for one service: engine, sessions and Alembic migrations.

SQLite (the embedded default) and PostgreSQL are both supported. Each service keeps its own
migration history in ``<package>/migrations`` and its own version table, so two services can
even share one database without stepping on each other.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from flask import Flask, current_app
from sqlalchemy import (
    DateTime,
    Dialect,
    Engine,
    MetaData,
    create_engine,
    event,
    make_url,
    pool,
    text,
)
from sqlalchemy.orm import Session, scoped_session, sessionmaker
from sqlalchemy.types import TypeDecorator

from hivematrix.common.health import Check


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()


def make_engine(url: str) -> Engine:
    """An engine with ``pool_pre_ping`` (survives database restarts) and sane SQLite settings.

    A SQLite file's folder is created when missing.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_engine(url, pool_pre_ping=True)
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, pool_pre_ping=True, connect_args={"check_same_thread": False})
    event.listen(engine, "connect", _sqlite_pragmas)
    return engine


class Database:
    """The engine and request-scoped session of one service."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        self.sessionmaker = sessionmaker(self.engine, expire_on_commit=False)
        # One session per thread (gunicorn's threads), removed at the end of each request.
        self.session = scoped_session(self.sessionmaker)

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """A new session that commits on success and rolls back on error (scripts, jobs)."""
        with self.sessionmaker.begin() as session:
            yield session

    def ping(self) -> Check:
        """Health check: a trivial query."""
        started = time.perf_counter()
        with self.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        return Check("healthy", {"type": self.engine.dialect.name,
                                 "query_ms": round((time.perf_counter() - started) * 1000, 2)})

    def dispose(self) -> None:
        self.session.remove()
        self.engine.dispose()


def init_app(app: Flask) -> Database:
    """Attach the service's database (``DATABASE_URL``) and its health check."""
    database = Database(app.config["DATABASE_URL"])
    app.extensions["hivematrix.db"] = database

    @app.teardown_appcontext
    def remove_session(_exc: BaseException | None) -> None:
        # Rolls back whatever a failed request left uncommitted: nothing half-written.
        database.session.remove()

    app.extensions["hivematrix.health"].add("database", database.ping)
    return database


def get_db() -> Database:
    """The current app's :class:`Database`."""
    database: Database = current_app.extensions["hivematrix.db"]
    return database


def get_session() -> Session:
    """The current request's session."""
    return get_db().session()


# --- Alembic -------------------------------------------------------------------------------

def version_table(package: str) -> str:
    """Each service records its revision in its own table."""
    return f"alembic_version_{package.rsplit('.', 1)[-1]}"


def alembic_config(package: str, url: str) -> Config:
    """Alembic settings for one service's migrations (``<package>/migrations``)."""
    config = Config()
    config.set_main_option("script_location", f"{package}:migrations")
    config.attributes["url"] = url
    config.attributes["version_table"] = version_table(package)
    return config


def upgrade(package: str, url: str, revision: str = "head") -> None:
    """Bring a service's database to ``revision`` (creates a SQLite file when needed)."""
    engine = make_engine(url)
    try:
        with engine.begin() as connection:
            config = alembic_config(package, url)
            config.attributes["connection"] = connection
            command.upgrade(config, revision)
    finally:
        engine.dispose()


def current_revision(package: str, url: str) -> str | None:
    """The revision a database is at, or ``None`` before the first migration."""
    from alembic.runtime.migration import MigrationContext

    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(
                connection, opts={"version_table": version_table(package)})
            return context.get_current_revision()
    finally:
        engine.dispose()


def own_tables(metadata: MetaData) -> Any:
    """An Alembic ``include_name`` filter: only this service's tables.

    Services may share one database, so autogenerate must never propose dropping another
    service's tables (or its version table).
    """

    def include_name(name: str | None, type_: str, _parents: Any) -> bool:
        return type_ != "table" or name in metadata.tables

    return include_name


def run_migrations(target_metadata: MetaData) -> None:
    """Body of every service's ``migrations/env.py``."""
    from alembic import context

    config = context.config
    connection = config.attributes.get("connection")
    options: dict[str, Any] = {"target_metadata": target_metadata, "compare_type": True,
                               "version_table": config.attributes["version_table"],
                               "include_name": own_tables(target_metadata)}
    if context.is_offline_mode():
        context.configure(url=config.attributes["url"], literal_binds=True, **options)
        with context.begin_transaction():
            context.run_migrations()
        return
    if connection is None:
        engine = create_engine(config.attributes["url"], poolclass=pool.NullPool)
        with engine.begin() as connection:
            _run_online(connection, options)
        engine.dispose()
    else:
        _run_online(connection, options)


def _run_online(connection: Any, options: dict[str, Any]) -> None:
    from alembic import context

    # SQLite cannot ALTER most things; batch mode rebuilds tables instead.
    batch = connection.dialect.name == "sqlite"
    context.configure(connection=connection, render_as_batch=batch, **options)
    with context.begin_transaction():
        context.run_migrations()


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored in UTC and always returned timezone-aware (SQLite forgets the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are ambiguous; pass an aware datetime")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utcnow() -> datetime:
    """Now, timezone-aware, in UTC."""
    return datetime.now(UTC)
