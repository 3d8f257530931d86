"""Browser sessions (SQL on SQLite and PostgreSQL, Redis), the session cookie, outages, and
revocation notices over Redis."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import redis
from flask import Flask, session

from hivematrix.common.db import Database
from hivematrix.common.testing import ThrowawayRedis, migrated_database
from hivematrix.nexus import SERVICE, create_app
from hivematrix.nexus.core_client import RevocationListener, SessionChecker
from hivematrix.nexus.sessions import (
    COOKIE_NAME,
    BrowserSessionStore,
    RedisBrowserSessions,
    ServerSessionInterface,
    SqlBrowserSessions,
    StoreUnavailable,
    rotate,
)

HOUR = timedelta(hours=1)


@pytest.fixture(params=["sqlite", "postgresql", "redis"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[BrowserSessionStore]:
    if request.param == "redis":
        client = redis.Redis.from_url(request.getfixturevalue("redis_url"))
        yield RedisBrowserSessions(client, prefix=f"test-{uuid.uuid4().hex}:")
        return
    url = (f"sqlite:///{tmp_path}/nexus.db" if request.param == "sqlite"
           else request.getfixturevalue("pg_url"))
    with migrated_database(SERVICE.migrations, url):
        database = Database(url)
        yield SqlBrowserSessions(database)
        database.dispose()


def test_saved_sessions_load_until_deleted(store: BrowserSessionStore) -> None:
    store.save("sid-1", {"jwt": "a.b.c"}, HOUR)
    store.save("sid-2", {"jwt": "d.e.f"}, HOUR)
    assert store.load("sid-1") == {"jwt": "a.b.c"}
    store.save("sid-1", {"jwt": "g.h.i"}, HOUR)
    assert store.load("sid-1") == {"jwt": "g.h.i"}
    store.delete("sid-1")
    assert store.load("sid-1") is None and store.load("sid-2") == {"jwt": "d.e.f"}
    store.delete("never-existed")
    store.ping()


def test_sessions_expire(store: BrowserSessionStore) -> None:
    store.save("short", {"x": 1}, timedelta(seconds=1))
    assert store.load("short") == {"x": 1}
    time.sleep(1.2)
    assert store.load("short") is None


def test_the_database_never_holds_the_cookie_value(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/nexus.db"
    with migrated_database(SERVICE.migrations, url):
        database = Database(url)
        SqlBrowserSessions(database).save("the-cookie-value", {"x": 1}, HOUR)
        with database.engine.connect() as connection:
            raw = str(connection.exec_driver_sql("SELECT * FROM nexus_sessions").all())
        database.dispose()
    assert "the-cookie-value" not in raw


def test_unreachable_stores_raise_store_unavailable() -> None:
    down = RedisBrowserSessions.from_url("redis://127.0.0.1:1/0")
    with pytest.raises(StoreUnavailable):
        down.load("x")
    with pytest.raises(StoreUnavailable):
        down.ping()


# --- the session interface -----------------------------------------------------------------

class MemoryStore:
    def __init__(self) -> None:
        self.data: dict[str, dict[str, Any]] = {}
        self.down = False

    def _check(self) -> None:
        if self.down:
            raise StoreUnavailable("down")

    def load(self, sid: str) -> dict[str, Any] | None:
        self._check()
        return self.data.get(sid)

    def save(self, sid: str, data: dict[str, Any], lifetime: timedelta) -> None:
        self._check()
        self.data[sid] = data

    def delete(self, sid: str) -> None:
        self._check()
        self.data.pop(sid, None)

    def ping(self) -> None:
        self._check()


@pytest.fixture
def memory_app() -> tuple[Flask, MemoryStore]:
    app = Flask("sessions")
    app.secret_key = "x"
    store = MemoryStore()
    app.session_interface = ServerSessionInterface(store, HOUR, cache_seconds=0)

    @app.get("/set/<value>")
    def set_value(value: str) -> str:
        session["value"] = value
        return "ok"

    @app.get("/get")
    def get_value() -> str:
        return "unavailable" if session.unavailable else str(session.get("value"))

    @app.get("/rotate")
    def rotate_id() -> str:
        rotate(session)
        return "ok"

    @app.get("/clear")
    def clear() -> str:
        session.clear()
        return "ok"

    return app, store


def test_the_cookie_is_opaque_http_only_and_lax(memory_app: tuple[Flask, MemoryStore]) -> None:
    app, store = memory_app
    client = app.test_client()
    header = client.get("/set/hello").headers["Set-Cookie"]
    assert header.startswith(f"{COOKIE_NAME}=") and "HttpOnly" in header
    assert "SameSite=Lax" in header and "Path=/" in header and "hello" not in header
    assert client.get("/get").text == "hello"
    assert [data["value"] for data in store.data.values()] == ["hello"]
    assert "Secure" not in client.get("/set/plain").headers["Set-Cookie"]
    assert "Secure" in client.get("/set/again", base_url="https://localhost").headers["Set-Cookie"]
    app.config["SESSION_COOKIE_SECURE"] = True
    assert "Secure" in client.get("/set/forced").headers["Set-Cookie"]


def test_reading_does_not_write_and_rotation_forgets_the_old_id(
        memory_app: tuple[Flask, MemoryStore]) -> None:
    app, store = memory_app
    client = app.test_client()
    client.get("/set/v")
    old = client.get_cookie(COOKIE_NAME).value
    assert "Set-Cookie" not in client.get("/get").headers
    client.get("/rotate")
    new = client.get_cookie(COOKIE_NAME).value
    assert new != old and list(store.data) == [new]
    assert client.get("/get").text == "v"


def test_clearing_deletes_the_session_and_the_cookie(memory_app: tuple[Flask, MemoryStore]) -> None:
    app, store = memory_app
    client = app.test_client()
    client.get("/set/v")
    client.get("/clear")
    assert store.data == {} and client.get_cookie(COOKIE_NAME) is None


def test_a_forged_or_expired_cookie_starts_afresh(memory_app: tuple[Flask, MemoryStore]) -> None:
    app, store = memory_app
    client = app.test_client()
    client.set_cookie(COOKIE_NAME, "made-up")
    assert client.get("/get").text == "None"
    client.get("/set/v")
    assert "made-up" not in store.data


def test_a_store_outage_marks_the_session_unavailable(
        memory_app: tuple[Flask, MemoryStore]) -> None:
    app, store = memory_app
    client = app.test_client()
    client.get("/set/v")
    store.down = True
    assert client.get("/get").text == "unavailable"
    cached = ServerSessionInterface(store, HOUR, cache_seconds=60)
    app.session_interface = cached
    store.down = False
    client.get("/get")
    store.down = True
    assert client.get("/get").text == "v"  # a recently used session rides out a blip
    store.down = False
    assert client.get("/get").text == "v"


# --- Nexus with Redis sessions: an outage is a 503, and it heals ---------------------------

def test_nexus_answers_503_while_redis_is_down_and_recovers(
        service_settings: dict[str, Any], throwaway_redis: ThrowawayRedis,
        tmp_path: Path, hm_home: Path) -> None:
    (hm_home / "services.json").write_text('{"echo": {"url": "http://127.0.0.1:9"}}')
    url = f"sqlite:///{tmp_path}/nexus.db"
    with migrated_database(SERVICE.migrations, url):
        app = create_app({**service_settings, "DATABASE_URL": url,
                          "NEXUS_SESSION_STORE": "redis", "REDIS_URL": throwaway_redis.url})
        client = app.test_client()
        client.set_cookie(COOKIE_NAME, "some-session")
        assert client.get("/echo/", headers={"Accept": "text/html"}).status_code == 302
        assert client.get("/health").json["checks"]["session_store"]["status"] == "healthy"
        throwaway_redis.kill()
        down = client.get("/echo/", headers={"Accept": "application/json"})
        assert down.status_code == 503 and down.content_type == "application/problem+json"
        assert int(down.headers["Retry-After"]) > 0
        assert client.get("/health").status_code == 503
        throwaway_redis.start()
        assert client.get("/echo/", headers={"Accept": "text/html"}).status_code == 302
        app.extensions["hivematrix.db"].dispose()


# --- revocation notices --------------------------------------------------------------------

class CountingCore:
    def __init__(self) -> None:
        self.calls = 0

    def is_valid(self, token: str) -> bool:
        self.calls += 1
        return True


def test_a_published_revocation_reaches_the_checker_within_a_second(redis_url: str) -> None:
    core = CountingCore()
    checker = SessionChecker(core, ttl=60)  # type: ignore[arg-type]
    prefix = f"test-{uuid.uuid4().hex}:"
    listener = RevocationListener(checker, redis_url, f"{prefix}revocations").start()
    try:
        deadline = time.monotonic() + 5
        while not listener.connected:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        assert checker.is_active("jti-1", "token") and checker.is_active("jti-1", "token")
        assert core.calls == 1  # the second answer came from the cache
        redis.Redis.from_url(redis_url).publish(f"{prefix}revocations", "jti-1")
        published = time.monotonic()
        while checker.is_active("jti-1", "token"):
            assert time.monotonic() - published < 1.0
            time.sleep(0.01)
        assert core.calls == 1
    finally:
        listener.stop()


def test_without_notices_answers_are_cached_briefly() -> None:
    core = CountingCore()
    checker = SessionChecker(core, ttl=0.2)  # type: ignore[arg-type]
    for _ in range(5):
        checker.is_active("jti", "token")
    assert core.calls == 1
    time.sleep(0.25)
    checker.is_active("jti", "token")
    assert core.calls == 2


@pytest.mark.parametrize(("behind_proxy", "forwarded"), [(False, False), (True, True)])
def test_forwarded_headers_are_trusted_only_behind_a_proxy(
        service_settings: dict[str, Any], tmp_path: Path, behind_proxy: bool,
        forwarded: bool) -> None:
    from werkzeug.middleware.proxy_fix import ProxyFix

    app = create_app({**service_settings, "DATABASE_URL": f"sqlite:///{tmp_path}/nexus.db",
                      "NEXUS_BEHIND_PROXY": behind_proxy})
    assert isinstance(app.wsgi_app, ProxyFix) is forwarded
    app.extensions["hivematrix.db"].dispose()
