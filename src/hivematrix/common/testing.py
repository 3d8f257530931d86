"""Pytest fixtures every service's tests reuse (loaded with ``-p hivematrix.common.testing``).

- ``hm_home``: a throwaway ``HIVEMATRIX_HOME``;
- ``signing_key`` / ``tokens``: an RSA key and a factory of user and service tokens;
- ``fake_core``: a real HTTP server standing in for Core's JWKS and ``/service-token``;
- :class:`FakeIdentityProvider`: an OIDC provider's discovery and userinfo, for Core's tests;
- ``service_settings`` / ``make_service_app``: apps wired to the above;
- ``pg_url`` / ``redis_url``: real PostgreSQL (a fresh database per test session) and Redis;
- :func:`database_url_fixture`: a service's migrated database on SQLite and PostgreSQL;
- ``free_port``, :class:`ServiceProcess` (a service under gunicorn), ``browser`` (Chromium).

When ``CI`` is set, a missing PostgreSQL, Redis or Chromium fails the test instead of skipping.
"""

from __future__ import annotations

import base64
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import httpx
import pytest
from flask import Flask, jsonify, request
from werkzeug.serving import make_server

from hivematrix.common.keys import SigningKey, jwks_document

ISSUER = "hivematrix-core"
#: Chromium flags for a sandboxed, offline machine.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]

# Settings a developer's shell may export that must not leak into tests.
_LEAKY_ENV = ("DATABASE_URL", "CORE_SERVICE_URL", "SECRET_KEY", "SERVICE_SECRET",
              "RATELIMIT_STORAGE_URI", "RATELIMIT_DEFAULT", "SERVICES_FILE")


def unavailable(what: str) -> NoReturn:
    """Skip a test whose real dependency is missing, or fail it when ``CI`` is set."""
    if os.environ.get("CI"):
        pytest.fail(f"{what} is required in CI but unavailable")
    pytest.skip(f"{what} unavailable")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def serve_wsgi(app: Any) -> Iterator[str]:
    """Serve a WSGI app on a free port in a background thread; yields its base URL."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(5)
        server.server_close()


class TokenFactory:
    """Mints tokens the way Core does, plus the malformed ones attackers send."""

    def __init__(self, key: SigningKey, issuer: str = ISSUER) -> None:
        self.key = key
        self.issuer = issuer

    def user_claims(self, level: str = "admin", **overrides: Any) -> dict[str, Any]:
        now = int(time.time())
        username = overrides.pop("preferred_username", f"{level}-user")
        claims = {
            "iss": self.issuer, "aud": "hivematrix", "sub": f"user-{username}",
            "jti": secrets.token_urlsafe(16), "iat": now, "exp": now + 3600,
            "name": f"{level.title()} User", "email": f"{username}@example.test",
            "preferred_username": username, "permission_level": level,
            "groups": [f"{level}s"] if level != "client" else [],
        }
        claims.update(overrides)
        return claims

    def service_claims(self, caller: str, target: str, **overrides: Any) -> dict[str, Any]:
        now = int(time.time())
        claims = {
            "iss": self.issuer, "aud": target, "sub": f"service:{caller}", "type": "service",
            "calling_service": caller, "target_service": target,
            "jti": secrets.token_urlsafe(16), "iat": now, "exp": now + 300,
        }
        claims.update(overrides)
        return claims

    def user(self, level: str = "admin", **overrides: Any) -> str:
        """A valid user token at ``level``."""
        return self.key.sign(self.user_claims(level, **overrides))

    def service(self, caller: str, target: str, **overrides: Any) -> str:
        """A valid service token from ``caller`` to ``target``."""
        return self.key.sign(self.service_claims(caller, target, **overrides))

    def headers(self, token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}


@dataclass
class FakeCore:
    """Core's token endpoints, served for real over HTTP from memory.

    ``secrets`` maps service name -> secret accepted at ``/service-token``; ``seen`` records
    each request as ``(path, correlation id)``.
    """

    keys: list[SigningKey]
    tokens: TokenFactory
    secrets: dict[str, str] = field(default_factory=dict)
    seen: list[tuple[str, str | None]] = field(default_factory=list)
    url: str = ""

    def wsgi(self) -> Flask:
        app = Flask("fake_core")

        @app.before_request
        def record() -> None:
            self.seen.append((request.path, request.headers.get("X-Correlation-ID")))

        @app.get("/.well-known/jwks.json")
        def jwks() -> Any:
            return jsonify(jwks_document(self.keys))

        @app.post("/service-token")
        def service_token() -> Any:
            body = request.get_json(silent=True) or {}
            auth = request.authorization
            caller = str(body.get("calling_service"))
            if auth is None or auth.username != caller or self.secrets.get(caller) != auth.password:
                return {"title": "Unauthorized", "status": 401}, 401
            return {"token": self.tokens.service(caller, str(body.get("target_service")))}

        return app

    def count(self, path: str) -> int:
        return sum(1 for seen_path, _ in self.seen if seen_path == path)


@dataclass
class FakeIdentityProvider:
    """An OpenID Connect provider's discovery and userinfo endpoints, over real HTTP.

    ``users`` maps an access token to the claims userinfo releases for it.
    """

    users: dict[str, dict[str, Any]] = field(default_factory=dict)
    url: str = ""
    userinfo_status: int | None = None  # force an answer, e.g. 500

    @property
    def issuer(self) -> str:
        return f"{self.url}/realms/hivematrix"

    def wsgi(self) -> Flask:
        app = Flask("fake_idp")

        @app.get("/realms/hivematrix/.well-known/openid-configuration")
        def discovery() -> Any:
            base = f"{self.issuer}/protocol/openid-connect"
            return jsonify({"issuer": self.issuer, "userinfo_endpoint": f"{base}/userinfo",
                            "authorization_endpoint": f"{base}/auth",
                            "token_endpoint": f"{base}/token"})

        @app.get("/realms/hivematrix/protocol/openid-connect/userinfo")
        def userinfo() -> Any:
            if self.userinfo_status:
                return {"error": "server_error"}, self.userinfo_status
            scheme, _, token = request.headers.get("Authorization", "").partition(" ")
            claims = self.users.get(token) if scheme == "Bearer" else None
            if claims is None:
                return {"error": "invalid_token"}, 401
            return jsonify(claims)

        return app

    def add_user(self, token: str, *, sub: str, groups: list[str] | None = None,
                 **claims: Any) -> str:
        self.users[token] = {"sub": sub, "preferred_username": sub, "name": sub.title(),
                             "email": f"{sub}@example.test", "groups": groups or [], **claims}
        return token



@pytest.fixture(scope="session")
def signing_key() -> SigningKey:
    return SigningKey.generate()


@pytest.fixture
def tokens(signing_key: SigningKey) -> TokenFactory:
    return TokenFactory(signing_key)


@pytest.fixture
def as_user(tokens: TokenFactory) -> Callable[..., dict[str, str]]:
    """``as_user("technician", account_number=...)``: headers of a Core-signed user token."""

    def headers(level: str, **claims: Any) -> dict[str, str]:
        return tokens.headers(tokens.user(level, **claims))

    return headers


@pytest.fixture
def fake_core(signing_key: SigningKey, tokens: TokenFactory) -> Iterator[FakeCore]:
    core = FakeCore(keys=[signing_key], tokens=tokens)
    with serve_wsgi(core.wsgi()) as url:
        core.url = url
        yield core


@pytest.fixture
def hm_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh, empty ``HIVEMATRIX_HOME`` for one test."""
    home = tmp_path / "hivematrix-home"
    home.mkdir()
    monkeypatch.setenv("HIVEMATRIX_HOME", str(home))
    for name in _LEAKY_ENV:
        monkeypatch.delenv(name, raising=False)
    return home


@pytest.fixture
def service_settings(hm_home: Path, fake_core: FakeCore) -> dict[str, Any]:
    """Settings for an app under test: the temp home, the fake Core, test mode."""
    return {"HIVEMATRIX_HOME": str(hm_home), "CORE_SERVICE_URL": fake_core.url,
            "SECRET_KEY": "test-secret-key", "TESTING": True}


@pytest.fixture
def make_service_app(service_settings: dict[str, Any]) -> Callable[..., Flask]:
    """``make_service_app(create_app, migrations="hivematrix.x", **settings)``: a migrated app."""
    from hivematrix.common import db

    def make(factory: Callable[..., Flask], migrations: str | None = None,
             **overrides: Any) -> Flask:
        app = factory({**service_settings, **overrides})
        if migrations:
            db.upgrade(migrations, app.config["DATABASE_URL"])
        return app

    return make


# --- real PostgreSQL and Redis -------------------------------------------------------------

@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A SQLAlchemy URL of a fresh PostgreSQL database, dropped after the test session.

    The server comes from ``HIVEMATRIX_TEST_PG_URL`` (e.g. ``postgresql://postgres@127.0.0.1/postgres``).
    """
    import psycopg
    from sqlalchemy import make_url

    base = os.environ.get("HIVEMATRIX_TEST_PG_URL")
    if not base:
        unavailable("PostgreSQL (HIVEMATRIX_TEST_PG_URL)")
    admin = make_url(base).set(drivername="postgresql")
    name = f"hm_test_{uuid.uuid4().hex[:12]}"
    dsn = admin.render_as_string(hide_password=False)
    try:
        with psycopg.connect(dsn, autocommit=True, connect_timeout=5) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError as exc:
        unavailable(f"PostgreSQL at {admin.render_as_string()} ({exc})")
    yield admin.set(drivername="postgresql+psycopg", database=name).render_as_string(
        hide_password=False)
    with psycopg.connect(dsn, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def redis_url() -> str:
    """A Redis URL from ``HIVEMATRIX_TEST_REDIS_URL``; use unique key prefixes, never FLUSHDB."""
    import redis

    url = os.environ.get("HIVEMATRIX_TEST_REDIS_URL")
    if not url:
        unavailable("Redis (HIVEMATRIX_TEST_REDIS_URL)")
    try:
        redis.Redis.from_url(url, socket_timeout=3).ping()
    except redis.RedisError as exc:
        unavailable(f"Redis at {url} ({exc})")
    return url


# --- processes and browsers ----------------------------------------------------------------

class ServiceProcess:
    """One service run by ``hivematrix run`` (gunicorn) on a free port, for multi-process tests."""

    def __init__(self, name: str, home: Path, *, port: int | None = None,
                 env: dict[str, str] | None = None, args: tuple[str, ...] = (),
                 https: bool = False) -> None:
        self.name = name
        self.home = home
        self.port = port or free_port()
        self.url = f"{'https' if https else 'http'}://127.0.0.1:{self.port}"
        self.env = {**os.environ, "HIVEMATRIX_HOME": str(home), **(env or {})}
        self.args = args
        self.log_path = home / "logs" / f"{name}-{self.port}.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30.0) -> ServiceProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(  # noqa: S603 - our own CLI
                [sys.executable, "-m", "hivematrix.cli", "run", self.name,
                 "--port", str(self.port), *self.args],
                stdout=log, stderr=subprocess.STDOUT, env=self.env, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited early:\n{self.log()}")
            try:
                # Only "is it up?": a test checks its certificate itself.
                if httpx.get(f"{self.url}/health", timeout=1,
                             verify=False).status_code < 500:  # noqa: S501
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"{self.name} did not become healthy:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, 15)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, 9)
                self.process.wait()

    def __enter__(self) -> ServiceProcess:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()


class ThrowawayRedis:
    """A private ``redis-server`` on a free port that keeps nothing on disk.

    For tests that stop Redis: never the machine's shared server.
    """

    def __init__(self, folder: Path) -> None:
        executable = shutil.which("redis-server")
        if executable is None:
            unavailable("redis-server")
        self.executable = executable
        self.folder = folder
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        with open(self.folder / "redis.log", "ab") as log:
            self.process = subprocess.Popen(  # noqa: S603 - the machine's redis-server
                [self.executable, "--port", str(self.port), "--bind", "127.0.0.1",
                 "--save", "", "--appendonly", "no", "--dir", str(self.folder)],
                stdout=log, stderr=subprocess.STDOUT)
        import redis

        client = redis.Redis(port=self.port, socket_connect_timeout=1)
        deadline = time.monotonic() + 10
        try:
            while True:
                try:
                    client.ping()
                    return
                except redis.ConnectionError:
                    if self.process.poll() is not None or time.monotonic() > deadline:
                        log_text = (self.folder / "redis.log").read_text(errors="replace")
                        raise RuntimeError(f"redis-server did not start:\n{log_text}") from None
                    time.sleep(0.05)
        finally:
            client.close()

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


@pytest.fixture
def throwaway_redis(tmp_path: Path) -> Iterator[ThrowawayRedis]:
    server = ThrowawayRedis(tmp_path / "redis")
    server.start()
    yield server
    server.kill()


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """Headless Debian Chromium driven by Playwright (never a downloaded browser)."""
    executable = shutil.which("chromium")
    if executable is None:
        unavailable("Chromium (Debian package 'chromium')")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=executable, headless=True,
                                              args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


#: What a browser asks for: pages (and problem pages) as HTML.
HTML = {"Accept": "text/html"}
_CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')


def get_page(client: Any, headers: dict[str, str], path: str, status: int = 200) -> str:
    """A page's HTML as a browser gets it, checking its status."""
    response = client.get(path, headers={**HTML, **headers})
    assert response.status_code == status, (path, response.status_code,
                                            response.get_data(as_text=True)[:3000])
    text: str = response.get_data(as_text=True)
    return text


def csrf_of(html: str) -> str:
    """The CSRF token a page's forms carry."""
    found = _CSRF_FIELD.search(html)
    assert found, "the page has no form with a CSRF token"
    return found.group(1)


def submit_form(client: Any, headers: dict[str, str], path: str, data: dict[str, Any],
                form_page: str, **kwargs: Any) -> Any:
    """Post a form as a browser does: with the token of the page that shows it (the session
    that goes with the token stays in the test client)."""
    token = csrf_of(get_page(client, headers, form_page))
    return client.post(path, headers={**HTML, **headers}, data={"csrf_token": token, **data},
                       **kwargs)


def basic_auth(user: str, password: str) -> dict[str, str]:
    """An HTTP Basic ``Authorization`` header."""
    raw = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {raw}"}


@contextmanager
def migrated_database(package: str, url: str) -> Iterator[str]:
    """Upgrade ``url`` to head for a test and downgrade it to empty afterwards.

    Lets tests share one PostgreSQL database while each starts from an empty schema (and
    exercises every migration's downgrade on the way).
    """
    from alembic import command

    from hivematrix.common import db

    db.upgrade(package, url)
    try:
        yield url
    finally:
        engine = db.make_engine(url)
        with engine.begin() as connection:
            config = db.alembic_config(package, url)
            config.attributes["connection"] = connection
            command.downgrade(config, "base")
        engine.dispose()


def database_url_fixture(name: str, migrations: str | None, stem: str) -> Any:
    """A fixture ``name``, parametrized ``sqlite`` / ``postgresql``: the URL of a database
    migrated to head with ``migrations`` for one test, downgraded to empty after it.

    Assign it in a conftest under the same name, e.g.
    ``codex_db_url = database_url_fixture("codex_db_url", SERVICE.migrations, "codex")``.
    SQLite lives in the test's ``tmp_path`` as ``<stem>.db``; PostgreSQL is the session's
    ``pg_url`` database, asked for only by the ``postgresql`` runs so SQLite runs need no server.
    """
    if not migrations:
        raise ValueError(f"{name}: the service has no migrations package")
    package = migrations

    @pytest.fixture(name=name, params=["sqlite", "postgresql"])
    def url_fixture(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
        """Every storage test runs against SQLite and a real PostgreSQL."""
        url = (f"sqlite:///{tmp_path}/{stem}.db" if request.param == "sqlite"
               else request.getfixturevalue("pg_url"))
        with migrated_database(package, url):
            yield url

    return url_fixture


def assert_migrations_match_models(package: str, metadata: Any, url: str) -> None:
    """Fail when a migrated database differs from the models (a migration is missing)."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from hivematrix.common import db

    engine = db.make_engine(url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={
                "compare_type": True, "version_table": db.version_table(package),
                "include_name": db.own_tables(metadata)})
            differences = compare_metadata(context, metadata)
    finally:
        engine.dispose()
    assert differences == [], f"models and migrations of {package} differ: {differences}"


def assert_single_migration_head(package: str) -> None:
    """Fail when two migrations branch from the same parent (parallel work not merged)."""
    from alembic.script import ScriptDirectory

    from hivematrix.common import db

    heads = ScriptDirectory.from_config(db.alembic_config(package, "sqlite://")).get_heads()
    assert len(heads) == 1, f"{package} has {len(heads)} migration heads: {heads}"


def process_group_gone(pgid: int) -> bool:
    """Whether no live process is left in process group ``pgid``.

    Zombies count as gone: they hold no port or file, and whoever inherited them (PID 1,
    which on some machines reaps slowly) may take a moment to collect them.
    """
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
        if fields[0] != "Z" and int(fields[2]) == pgid:
            return False
    return True


def watched_page(browser: Any) -> tuple[Any, Any, list[str]]:
    """A new browser context and page (1280 by 800) that records console errors, page errors
    and dialogs (an ``alert`` from injected script shows up here) in the returned list."""
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    problems: list[str] = []

    def on_console(message: Any) -> None:
        if message.type == "error":
            problems.append(message.text)

    def on_dialog(dialog: Any) -> None:
        problems.append(f"dialog: {dialog.message}")
        dialog.dismiss()

    page.on("console", on_console)
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.on("dialog", on_dialog)
    return context, page, problems
