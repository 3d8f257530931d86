"""Session stores: the SQL store (SQLite, PostgreSQL) and the Redis store, directly and via the API.

Redis tests use the shared Redis with a unique key prefix per test (never FLUSHDB); the outage
test starts its own throwaway ``redis-server`` on a free port and kills only that one.
"""

import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
import pytest
import redis
from flask import Flask

from hivematrix.common.db import Database
from hivematrix.common.testing import (
    FakeIdentityProvider,
    ThrowawayRedis,
    free_port,
    migrated_database,
)
from hivematrix.core import SERVICE, create_app
from hivematrix.core.models import CoreSession
from hivematrix.core.sessions import (
    RedisSessionStore,
    Session,
    SessionStore,
    SqlSessionStore,
    StoreUnavailable,
)
from tests.core.conftest import exchange

USER = {"sub": "kim", "name": "Kim", "email": "kim@example.test", "preferred_username": "kim",
        "permission_level": "technician", "groups": ["technicians"]}
HOUR = timedelta(hours=1)

#: Run a test that does not care about Core's database on SQLite only.
sqlite_only = pytest.mark.parametrize("core_database_url", ["sqlite"], indirect=True)


def jti_of(token: str) -> str:
    return str(jwt.decode(token, options={"verify_signature": False})["jti"])


def validate(app: Flask, token: str) -> Any:
    return app.test_client().post("/api/token/validate", json={"token": token})


@contextmanager
def running_core(settings: dict[str, Any]) -> Iterator[Flask]:
    """A Core app, closed afterwards like a stopped process would be."""
    app = create_app(settings)
    try:
        yield app
    finally:
        app.extensions["hivematrix.db"].dispose()
        store = app.extensions["core.sessions"]
        if isinstance(store, RedisSessionStore):
            store.client.close()


def delete_prefixed(url: str, prefix: str) -> None:
    client = redis.Redis.from_url(url)
    try:
        for key in client.scan_iter(match=f"{prefix}*"):
            client.delete(key)
    finally:
        client.close()


@pytest.fixture
def redis_prefix(redis_url: str) -> Iterator[str]:
    """A key prefix no other test uses; its keys are deleted afterwards."""
    prefix = f"hmtest:{uuid.uuid4().hex}:"
    yield prefix
    delete_prefixed(redis_url, prefix)


@pytest.fixture
def redis_core_settings(core_settings: dict[str, Any], redis_url: str,
                        redis_prefix: str) -> dict[str, Any]:
    return {**core_settings, "SESSION_STORE": "redis", "REDIS_URL": redis_url,
            "REDIS_KEY_PREFIX": redis_prefix}


@contextmanager
def open_store(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    """A store of ``kind`` (sqlite, postgresql or redis) on its real backend."""
    if kind == "redis":
        redis_store = RedisSessionStore.from_url(request.getfixturevalue("redis_url"),
                                                 prefix=request.getfixturevalue("redis_prefix"))
        try:
            yield redis_store
        finally:
            redis_store.client.close()
        return
    url = (f"sqlite:///{tmp_path}/sessions.db" if kind == "sqlite"
           else request.getfixturevalue("pg_url"))
    with migrated_database(SERVICE.migrations, url):
        database = Database(url)
        try:
            yield SqlSessionStore(database)
        finally:
            database.dispose()


@pytest.fixture(params=["sqlite", "postgresql", "redis"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SessionStore]:
    """Each store implementation on its real backend."""
    with open_store(request.param, request, tmp_path) as opened:
        yield opened


@pytest.fixture(params=["sqlite", "postgresql"])
def sql(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SqlSessionStore]:
    with open_store(request.param, request, tmp_path) as opened:
        yield opened


@pytest.fixture
def red(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RedisSessionStore]:
    with open_store("redis", request, tmp_path) as opened:
        yield opened


def found(store: SessionStore, jti: str) -> Session:
    """The session, which must exist."""
    session = store.get(jti)
    assert session is not None, f"session {jti} not found"
    return session


# --- the store interface, on every backend --------------------------------------------------

def test_create_then_get_returns_the_session(store: SessionStore) -> None:
    before = datetime.now(UTC)
    created = store.create(USER, HOUR)
    assert len(created.jti) >= 32
    assert created.expires_at - created.created_at == HOUR
    session = found(store, created.jti)
    assert session.jti == created.jti and session.user == USER
    assert not session.revoked and session.is_active()
    assert session.created_at.tzinfo is not None and session.expires_at.tzinfo is not None
    assert abs(session.expires_at - (before + HOUR)) < timedelta(seconds=5)


def test_sessions_get_distinct_ids(store: SessionStore) -> None:
    jtis = {store.create(USER, HOUR).jti for _ in range(5)}
    assert len(jtis) == 5


def test_unknown_session_is_none_and_cannot_be_revoked(store: SessionStore) -> None:
    assert store.get("no-such-session") is None
    assert store.revoke("no-such-session") is False


def test_revoke_marks_only_that_session(store: SessionStore) -> None:
    first, second = store.create(USER, HOUR), store.create(USER, HOUR)
    assert store.revoke(first.jti) is True
    revoked = found(store, first.jti)
    assert revoked.revoked and not revoked.is_active()
    assert revoked.user == USER  # kept for the audit trail until it would have expired
    assert found(store, second.jti).is_active()
    assert store.revoke(first.jti) is True  # revoking twice is harmless
    assert found(store, first.jti).revoked


def test_a_session_expires_after_its_lifetime(store: SessionStore) -> None:
    short = store.create(USER, timedelta(seconds=1))
    long = store.create(USER, HOUR)
    assert found(store, short.jti).is_active()
    time.sleep(1.3)
    expired = store.get(short.jti)
    assert expired is None or not expired.is_active()
    store.cleanup_expired()
    assert store.get(short.jti) is None
    assert found(store, long.jti).is_active()


def test_ping_answers_when_the_store_is_up(store: SessionStore) -> None:
    store.ping()


def test_a_second_store_on_the_same_backend_sees_the_sessions(store: SessionStore) -> None:
    """What a restarted (or a second) Core instance sees."""
    created = store.create(USER, HOUR)
    again: Any
    if isinstance(store, RedisSessionStore):
        where = store.client.connection_pool.connection_kwargs
        again = RedisSessionStore(redis.Redis(host=where["host"], port=where["port"],
                                              db=where.get("db", 0)), prefix=store.prefix)
    else:
        assert isinstance(store, SqlSessionStore)
        again = SqlSessionStore(Database(store.database.url))
    try:
        session = found(again, created.jti)
        assert session.user == USER and session.is_active()
        assert again.revoke(created.jti) is True
        assert found(store, created.jti).revoked
    finally:
        if isinstance(again, SqlSessionStore):
            again.database.dispose()
        else:
            again.client.close()


# --- the SQL store ------------------------------------------------------------------------

def test_sql_cleanup_deletes_only_expired_rows(sql: SqlSessionStore) -> None:
    live = sql.create(USER, HOUR)
    revoked = sql.create(USER, HOUR)
    sql.revoke(revoked.jti)
    expired = [sql.create(USER, timedelta(seconds=-1)) for _ in range(3)]
    # An expired session is still found (the API reports it as expired) until purged.
    assert not found(sql, expired[0].jti).is_active()
    assert sql.cleanup_expired() == 3
    assert all(sql.get(session.jti) is None for session in expired)
    assert found(sql, live.jti).is_active()
    assert found(sql, revoked.jti).revoked
    assert sql.cleanup_expired() == 0


def test_sql_store_purges_expired_rows_at_most_hourly(sql: SqlSessionStore) -> None:
    sql.create(USER, HOUR)  # this instance's first create ran its purge already
    expired = sql.create(USER, timedelta(seconds=-1))
    sql.create(USER, HOUR)
    assert sql.get(expired.jti) is not None  # not again within the hour
    restarted = SqlSessionStore(sql.database)
    restarted.create(USER, HOUR)  # a restarted Core purges on its first create
    assert sql.get(expired.jti) is None


def test_sql_rows_hold_the_user_and_expiry(sql: SqlSessionStore) -> None:
    created = sql.create(USER, HOUR)
    with sql.database.transaction() as session:
        row = session.get(CoreSession, created.jti)
        assert row is not None
        assert row.user == USER and row.revoked is False
        assert abs(row.expires_at - created.expires_at) < timedelta(seconds=1)


def test_sql_store_down_raises_store_unavailable() -> None:
    database = Database(f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/nothing"
                        "?connect_timeout=2")
    down = SqlSessionStore(database)
    try:
        for attempt in (lambda: down.create(USER, HOUR), lambda: down.get("x"),
                        lambda: down.revoke("x"), down.cleanup_expired, down.ping):
            with pytest.raises(StoreUnavailable):
                attempt()
    finally:
        database.dispose()


# --- the Redis store ----------------------------------------------------------------------

def test_redis_keeps_one_expiring_key_per_session(red: RedisSessionStore) -> None:
    created = red.create(USER, HOUR)
    key = f"{red.prefix}session:{created.jti}"
    assert [k.decode() for k in red.client.scan_iter(match=f"{red.prefix}*")] == [key]
    assert 3590 <= red.client.ttl(key) <= 3600


def test_redis_revocation_keeps_the_expiry(red: RedisSessionStore) -> None:
    created = red.create(USER, timedelta(seconds=120))
    key = f"{red.prefix}session:{created.jti}"
    red.revoke(created.jti)
    assert 0 < red.client.ttl(key) <= 120  # never an immortal key


def test_redis_revoking_a_session_that_expires_meanwhile_leaves_no_key(
        red: RedisSessionStore) -> None:
    """The key may expire between revoke's read and its write; the write must not revive it."""
    created = red.create(USER, HOUR)
    key = f"{red.prefix}session:{created.jti}"

    class ExpiresRightAfterRead:
        def __init__(self, client: redis.Redis) -> None:
            self.client = client

        def get(self, name: str) -> Any:
            value = self.client.get(name)
            self.client.delete(name)  # as if its TTL ran out just now
            return value

        def __getattr__(self, name: str) -> Any:
            return getattr(self.client, name)

    racing = RedisSessionStore(ExpiresRightAfterRead(red.client), prefix=red.prefix)  # type: ignore[arg-type]
    assert racing.revoke(created.jti) is False
    assert red.client.exists(key) == 0


def test_redis_cleanup_is_left_to_redis(red: RedisSessionStore) -> None:
    red.create(USER, timedelta(seconds=-1))
    assert red.cleanup_expired() == 0


def test_redis_prefixes_keep_deployments_apart(red: RedisSessionStore, redis_url: str) -> None:
    created = red.create(USER, HOUR)
    other_prefix = f"hmtest:{uuid.uuid4().hex}:"
    other = RedisSessionStore.from_url(redis_url, prefix=other_prefix)
    try:
        assert other.get(created.jti) is None
        assert other.revoke(created.jti) is False
        assert other.channel != red.channel
    finally:
        other.client.close()
        delete_prefixed(redis_url, other_prefix)


def test_redis_down_raises_store_unavailable() -> None:
    down = RedisSessionStore.from_url(f"redis://127.0.0.1:{free_port()}/0",
                                      prefix="hmtest:down:")
    try:
        for attempt in (lambda: down.create(USER, HOUR), lambda: down.get("x"),
                        lambda: down.revoke("x"), down.ping):
            with pytest.raises(StoreUnavailable):
                attempt()
    finally:
        down.client.close()


# --- through the API: restarts --------------------------------------------------------------

def test_sql_session_survives_a_core_restart(core_settings: dict[str, Any],
                                             idp: FakeIdentityProvider) -> None:
    idp.add_user("at-1", sub="kim", groups=["technicians"])
    with running_core(core_settings) as first:
        token = exchange(first.test_client(), "at-1")
        assert validate(first, token).json["valid"] is True
    with running_core(core_settings) as second:
        answer = validate(second, token)
        assert answer.status_code == 200 and answer.json["valid"] is True
        assert answer.json["user"]["sub"] == "kim"
        assert second.test_client().post("/api/token/revoke",
                                         json={"token": token}).status_code == 200
    with running_core(core_settings) as third:
        answer = validate(third, token)
        assert answer.status_code == 401 and answer.json["error"] == "session revoked"


@sqlite_only
def test_redis_session_survives_a_core_restart(redis_core_settings: dict[str, Any],
                                               idp: FakeIdentityProvider,
                                               redis_url: str, redis_prefix: str) -> None:
    idp.add_user("at-1", sub="kim", groups=["billing"])
    with running_core(redis_core_settings) as first:
        token = exchange(first.test_client(), "at-1")
    client = redis.Redis.from_url(redis_url)
    try:
        assert client.exists(f"{redis_prefix}session:{jti_of(token)}") == 1
    finally:
        client.close()
    with running_core(redis_core_settings) as second:
        answer = validate(second, token)
        assert answer.status_code == 200 and answer.json["valid"] is True
        assert answer.json["user"]["permission_level"] == "billing"
        health = second.test_client().get("/health").json
        assert health["checks"]["session_store"] == {**health["checks"]["session_store"],
                                                     "status": "healthy", "type": "redis"}


# --- through the API: revocation reaches subscribers ------------------------------------------

@sqlite_only
def test_revocation_reaches_a_redis_subscriber_within_a_second(
        redis_core_settings: dict[str, Any], idp: FakeIdentityProvider, redis_url: str) -> None:
    idp.add_user("at-1", sub="kim")
    with running_core(redis_core_settings) as core_app:
        core = core_app.test_client()
        token = exchange(core, "at-1")
        channel = core_app.extensions["core.sessions"].channel
        subscriber = redis.Redis.from_url(redis_url).pubsub()
        try:
            subscriber.subscribe(channel)
            confirmation = subscriber.get_message(timeout=2)
            assert confirmation is not None and confirmation["type"] == "subscribe"
            started = time.monotonic()
            assert core.post("/api/token/revoke", json={"token": token}).status_code == 200
            message = None
            while message is None and time.monotonic() - started < 2:
                message = subscriber.get_message(ignore_subscribe_messages=True, timeout=0.05)
            delay = time.monotonic() - started
        finally:
            subscriber.close()
    assert message is not None, "no revocation message arrived"
    assert message["channel"].decode() == channel
    assert message["data"].decode() == jti_of(token)
    assert delay < 1.0


# --- through the API: Redis goes away and comes back --------------------------------------------

def assert_store_down_problem(response: Any) -> None:
    assert response.status_code == 503
    assert response.content_type == "application/problem+json"
    assert response.json["status"] == 503
    assert int(response.headers["Retry-After"]) > 0


@sqlite_only
def test_redis_outage_answers_503_and_recovers_without_a_restart(
        core_settings: dict[str, Any], idp: FakeIdentityProvider,
        throwaway_redis: ThrowawayRedis) -> None:
    idp.add_user("at-1", sub="kim", groups=["admins"])
    settings = {**core_settings, "SESSION_STORE": "redis", "REDIS_URL": throwaway_redis.url,
                "REDIS_KEY_PREFIX": "hivematrix:"}
    with running_core(settings) as core_app:
        core = core_app.test_client()
        before = exchange(core, "at-1")
        assert validate(core_app, before).json["valid"] is True
        assert core.get("/health").status_code == 200

        throwaway_redis.kill()
        assert_store_down_problem(core.post("/api/token/exchange", json={"access_token": "at-1"}))
        assert_store_down_problem(validate(core_app, before))
        assert_store_down_problem(core.post("/api/token/revoke", json={"token": before}))
        health = core.get("/health")
        assert health.status_code == 503
        assert health.json["status"] == "unhealthy"
        assert health.json["checks"]["session_store"]["status"] == "unhealthy"

        throwaway_redis.start()  # same port, nothing kept
        after = exchange(core, "at-1")
        answer = validate(core_app, after)
        assert answer.status_code == 200 and answer.json["valid"] is True
        assert answer.json["user"]["permission_level"] == "admin"
        assert core.get("/health").status_code == 200
        # The outage was not bridged with process memory: the old session died with that Redis.
        gone = validate(core_app, before)
        assert gone.status_code == 401 and gone.json["error"] == "session not found"


@sqlite_only
def test_core_started_while_redis_is_down_serves_once_it_is_up(
        core_settings: dict[str, Any], idp: FakeIdentityProvider, tmp_path: Path) -> None:
    idp.add_user("at-1", sub="kim")
    server = ThrowawayRedis(tmp_path / "redis")
    settings = {**core_settings, "SESSION_STORE": "redis", "REDIS_URL": server.url}
    with running_core(settings) as core_app:
        core = core_app.test_client()
        assert_store_down_problem(core.post("/api/token/exchange", json={"access_token": "at-1"}))
        assert core.get("/health").status_code == 503
        server.start()
        try:
            token = exchange(core, "at-1")
            assert validate(core_app, token).json["valid"] is True
            assert core.get("/health").status_code == 200
        finally:
            server.kill()
