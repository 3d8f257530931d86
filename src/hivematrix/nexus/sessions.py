"""Server-side browser sessions: the cookie carries an opaque id, the store keeps the data.

The HiveMatrix JWT, the identity provider's refresh and ID tokens, login state and the CSRF
token all live in the store (Nexus's database, or Redis when several Nexus instances share
sessions), never in a cookie a browser could read or replay elsewhere. ``flask.session`` is
this session, so everything that uses it (CSRF included) is server-side too.

A store that cannot be reached marks the request's session unavailable; Nexus answers 503 and
recovers by itself when the store is back. Nothing silently falls back to process memory.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from collections.abc import Mapping
from datetime import timedelta
from typing import Any, Protocol

import redis
from flask import Flask, Request, Response, request
from flask.sessions import SessionInterface, SessionMixin
from sqlalchemy import delete
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.datastructures import CallbackDict

from hivematrix.common.db import Database, utcnow
from hivematrix.nexus.models import BrowserSession

COOKIE_NAME = "hm_session"
#: Refresh a session's expiry only after this share of its idle lifetime has passed, so an
#: active user does not cost a write on every request.
TOUCH_FRACTION = 0.1
#: The key in the session data recording when its expiry was last pushed back.
TOUCHED_KEY = "_touched"


class StoreUnavailable(RuntimeError):
    """The session store did not answer."""


def _hash(sid: str) -> str:
    return hashlib.sha256(sid.encode()).hexdigest()


class BrowserSessionStore(Protocol):
    def load(self, sid: str) -> dict[str, Any] | None:
        """The data of a live session; ``None`` when unknown or expired."""

    def save(self, sid: str, data: dict[str, Any], lifetime: timedelta) -> None:
        """Create or replace a session that expires ``lifetime`` from now."""

    def delete(self, sid: str) -> None:
        """Forget a session (nothing happens when it does not exist)."""

    def ping(self) -> None:
        """:raises StoreUnavailable: the store is down."""


class SqlBrowserSessions:
    """Sessions in Nexus's own database (the embedded default)."""

    #: Expired rows are deleted at most this often, by whichever request notices first.
    PURGE_SECONDS = 3600

    def __init__(self, database: Database) -> None:
        self.database = database
        self._purged_at = float("-inf")

    def load(self, sid: str) -> dict[str, Any] | None:
        try:
            with self.database.sessionmaker() as db:
                row = db.get(BrowserSession, _hash(sid))
                if row is None or row.expires_at <= utcnow():
                    return None
                data: dict[str, Any] = json.loads(row.data)
                return data
        except SQLAlchemyError as exc:
            raise StoreUnavailable(f"database: {type(exc).__name__}") from exc

    def save(self, sid: str, data: dict[str, Any], lifetime: timedelta) -> None:
        try:
            with self.database.transaction() as db:
                db.merge(BrowserSession(id_hash=_hash(sid), data=json.dumps(data),
                                        expires_at=utcnow() + lifetime))
                if time.monotonic() - self._purged_at > self.PURGE_SECONDS:
                    self._purged_at = time.monotonic()
                    db.execute(delete(BrowserSession).where(BrowserSession.expires_at <= utcnow()))
        except SQLAlchemyError as exc:
            raise StoreUnavailable(f"database: {type(exc).__name__}") from exc

    def delete(self, sid: str) -> None:
        try:
            with self.database.transaction() as db:
                db.execute(delete(BrowserSession).where(BrowserSession.id_hash == _hash(sid)))
        except SQLAlchemyError as exc:
            raise StoreUnavailable(f"database: {type(exc).__name__}") from exc

    def ping(self) -> None:
        try:
            self.database.ping()
        except SQLAlchemyError as exc:
            raise StoreUnavailable(f"database: {type(exc).__name__}") from exc


class RedisBrowserSessions:
    """Sessions in Redis (``<prefix>nexus:session:<sha256 of id>`` with a TTL)."""

    def __init__(self, client: redis.Redis, prefix: str = "hivematrix:") -> None:
        self.client = client
        self.prefix = prefix

    @classmethod
    def from_url(cls, url: str, prefix: str = "hivematrix:") -> RedisBrowserSessions:
        return cls(redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2),
                   prefix)

    def _key(self, sid: str) -> str:
        return f"{self.prefix}nexus:session:{_hash(sid)}"

    def load(self, sid: str) -> dict[str, Any] | None:
        try:
            raw = self.client.get(self._key(sid))
        except redis.RedisError as exc:
            raise StoreUnavailable(f"redis: {exc}") from exc
        if raw is None:
            return None
        data: dict[str, Any] = json.loads(raw)
        return data

    def save(self, sid: str, data: dict[str, Any], lifetime: timedelta) -> None:
        try:
            self.client.set(self._key(sid), json.dumps(data),
                            ex=max(1, int(lifetime.total_seconds())))
        except redis.RedisError as exc:
            raise StoreUnavailable(f"redis: {exc}") from exc

    def delete(self, sid: str) -> None:
        try:
            self.client.delete(self._key(sid))
        except redis.RedisError as exc:
            raise StoreUnavailable(f"redis: {exc}") from exc

    def ping(self) -> None:
        try:
            self.client.ping()
        except redis.RedisError as exc:
            raise StoreUnavailable(f"redis: {exc}") from exc


class CachedStore:
    """A store with each session's data kept in memory for ``ttl`` seconds after use.

    Loading the session is the largest single cost of a proxied request. Staleness is
    bounded and harmless: a session deleted or renewed by another worker is seen within
    ``ttl``, and revocation never depends on this cache (Core is asked separately).
    """

    def __init__(self, store: BrowserSessionStore, ttl: float = 2.0) -> None:
        self.store = store
        self.ttl = ttl
        self._cache: dict[str, tuple[str, float]] = {}

    def load(self, sid: str, *, fresh: bool = False) -> dict[str, Any] | None:
        cached = None if fresh else self._cache.get(sid)
        if cached is not None and time.monotonic() - cached[1] < self.ttl:
            data: dict[str, Any] = json.loads(cached[0])  # a copy per request
            return data
        found = self.store.load(sid)
        self._remember(sid, found)
        return found

    def _remember(self, sid: str, data: dict[str, Any] | None) -> None:
        if len(self._cache) > 10_000:
            self._cache.clear()
        if data is None:
            self._cache.pop(sid, None)
        else:
            self._cache[sid] = (json.dumps(data), time.monotonic())

    def save(self, sid: str, data: dict[str, Any], lifetime: timedelta) -> None:
        self.store.save(sid, data, lifetime)
        self._remember(sid, data)

    def delete(self, sid: str) -> None:
        self._cache.pop(sid, None)
        self.store.delete(sid)

    def ping(self) -> None:
        self.store.ping()


class ServerSession(CallbackDict[str, Any], SessionMixin):
    """``flask.session`` for one request."""

    def __init__(self, data: dict[str, Any] | None = None, sid: str | None = None,
                 *, unavailable: bool = False) -> None:
        def changed(_self: Any) -> None:
            self.modified = True

        super().__init__(data or {}, changed)
        self.sid = sid
        self.new = sid is None
        self.modified = False
        #: The store did not answer: the request must be refused, not served anonymously.
        self.unavailable = unavailable
        #: Set by :func:`rotate`: the id to forget once the new one is saved.
        self.replaced_sid: str | None = None


def current() -> ServerSession:
    """This request's session, typed (``flask.session`` is a proxy)."""
    from flask import session

    found = session._get_current_object()  # type: ignore[attr-defined]
    assert isinstance(found, ServerSession)
    return found


def interface() -> ServerSessionInterface:
    from flask import current_app

    found = current_app.session_interface
    assert isinstance(found, ServerSessionInterface)
    return found


def rotate(session: ServerSession) -> None:
    """Give the session a new id (at sign-in, against session fixation)."""
    if session.sid is not None:
        session.replaced_sid = session.replaced_sid or session.sid
    session.sid = None
    session.modified = True


class ServerSessionInterface(SessionInterface):
    """Flask's session interface over a :class:`BrowserSessionStore`."""

    def __init__(self, store: BrowserSessionStore, idle: timedelta,
                 cache_seconds: float = 2.0) -> None:
        self.store = CachedStore(store, cache_seconds)
        self.idle = idle

    def open_session(self, app: Flask, request: Request) -> ServerSession:
        sid = request.cookies.get(COOKIE_NAME)
        if not sid or len(sid) > 128:
            return ServerSession()
        try:
            data = self.store.load(sid)
        except StoreUnavailable:
            return ServerSession(unavailable=True)
        if data is None:
            return ServerSession()  # expired or forged: start afresh under a new id
        return ServerSession(data, sid)

    def save_now(self, session: ServerSession) -> str:
        """Write the session to the store (under a new id if it has none); returns the id.

        :raises StoreUnavailable: the store did not answer.
        """
        session.sid = session.sid or secrets.token_urlsafe(32)
        self.store.save(session.sid, {**session, TOUCHED_KEY: int(time.time())}, self.idle)
        return session.sid

    def needs_touch(self, session: Mapping[str, Any]) -> bool:
        """Whether the session's expiry is due to be pushed back (a store write)."""
        touched = float(session.get(TOUCHED_KEY, 0))
        return time.time() - touched > self.idle.total_seconds() * TOUCH_FRACTION

    def save_session(self, app: Flask, session: SessionMixin, response: Response) -> None:
        assert isinstance(session, ServerSession)
        if session.unavailable:
            return
        # Secure whenever the browser came over HTTPS (Nexus's TLS or a trusted terminator).
        secure = bool(app.config.get("SESSION_COOKIE_SECURE")) or request.is_secure
        try:
            if session.replaced_sid:
                self.store.delete(session.replaced_sid)
            if not session:
                if session.sid is not None:
                    self.store.delete(session.sid)
                    response.delete_cookie(COOKIE_NAME, path="/", secure=secure,
                                           httponly=True, samesite="Lax")
                return
            if not (session.modified or session.new or self.needs_touch(session)):
                return
            sid = self.save_now(session)
        except StoreUnavailable:
            app.logger.error("browser session could not be saved: session store unavailable")
            return
        response.vary.add("Cookie")
        response.set_cookie(COOKIE_NAME, sid, max_age=int(self.idle.total_seconds()),
                            path="/", secure=secure, httponly=True, samesite="Lax")
