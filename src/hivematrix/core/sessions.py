"""Session stores: Redis (shared by every Core instance) and SQL (the embedded default).

Both implement :class:`SessionStore`. A store that cannot be reached raises
:class:`StoreUnavailable` (the API answers 503) and recovers on its own when the store is back;
there is never a silent switch to process memory.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import redis
from sqlalchemy import delete, select
from sqlalchemy.exc import SQLAlchemyError

from hivematrix.common.db import Database
from hivematrix.core.models import CoreSession


class StoreUnavailable(RuntimeError):
    """The session store did not answer."""


@dataclass(frozen=True)
class Session:
    jti: str
    user: dict[str, Any]
    created_at: datetime
    expires_at: datetime
    revoked: bool = False

    def is_active(self, now: datetime | None = None) -> bool:
        return not self.revoked and (now or datetime.now(UTC)) < self.expires_at


class SessionStore(Protocol):
    def create(self, user: dict[str, Any], lifetime: timedelta) -> Session:
        """Start a session for ``user`` (identity claims)."""

    def get(self, jti: str) -> Session | None:
        """The session, revoked or not; ``None`` when unknown or expired and purged."""

    def revoke(self, jti: str) -> bool:
        """Mark revoked; False when no such session exists."""

    def cleanup_expired(self) -> int:
        """Delete expired sessions; returns how many."""

    def ping(self) -> None:
        """:raises StoreUnavailable: the store is down."""


def new_session_id() -> str:
    return secrets.token_urlsafe(32)


class SqlSessionStore:
    """Sessions in Core's own database."""

    #: Expired rows are purged while creating sessions, at most this often (no scheduler needed).
    CLEANUP_EVERY = timedelta(hours=1)

    def __init__(self, database: Database) -> None:
        self.database = database
        self._next_cleanup = datetime.now(UTC)

    def create(self, user: dict[str, Any], lifetime: timedelta) -> Session:
        now = datetime.now(UTC)
        if now >= self._next_cleanup:
            self._next_cleanup = now + self.CLEANUP_EVERY
            self.cleanup_expired()
        record = Session(new_session_id(), user, now, now + lifetime)
        try:
            with self.database.transaction() as session:
                session.add(CoreSession(jti=record.jti, user=user, created_at=now,
                                        expires_at=record.expires_at, revoked=False))
        except SQLAlchemyError as exc:
            raise StoreUnavailable(f"session database: {type(exc).__name__}") from exc
        return record

    def get(self, jti: str) -> Session | None:
        try:
            with self.database.transaction() as session:
                row = session.get(CoreSession, jti)
                if row is None:
                    return None
                return Session(row.jti, row.user, row.created_at, row.expires_at, row.revoked)
        except SQLAlchemyError as exc:
            raise StoreUnavailable(f"session database: {type(exc).__name__}") from exc

    def revoke(self, jti: str) -> bool:
        try:
            with self.database.transaction() as session:
                row = session.get(CoreSession, jti)
                if row is None:
                    return False
                row.revoked = True
                return True
        except SQLAlchemyError as exc:
            raise StoreUnavailable(f"session database: {type(exc).__name__}") from exc

    def cleanup_expired(self) -> int:
        try:
            with self.database.transaction() as session:
                result = session.execute(
                    delete(CoreSession).where(CoreSession.expires_at < datetime.now(UTC)))
                return int(getattr(result, "rowcount", 0) or 0)
        except SQLAlchemyError as exc:
            raise StoreUnavailable(f"session database: {type(exc).__name__}") from exc

    def ping(self) -> None:
        try:
            with self.database.transaction() as session:
                session.execute(select(1))
        except SQLAlchemyError as exc:
            raise StoreUnavailable(f"session database: {type(exc).__name__}") from exc


class RedisSessionStore:
    """Sessions as ``<prefix>session:<jti>`` keys that expire with the session."""

    def __init__(self, client: redis.Redis, *, prefix: str = "hivematrix:") -> None:
        self.client = client
        self.prefix = prefix

    @classmethod
    def from_url(cls, url: str, *, prefix: str = "hivematrix:") -> RedisSessionStore:
        client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2,
                                      health_check_interval=30)
        return cls(client, prefix=prefix)

    def _key(self, jti: str) -> str:
        return f"{self.prefix}session:{jti}"

    def create(self, user: dict[str, Any], lifetime: timedelta) -> Session:
        now = datetime.now(UTC)
        record = Session(new_session_id(), user, now, now + lifetime)
        payload = {"user": user, "created_at": now.isoformat(),
                   "expires_at": record.expires_at.isoformat(), "revoked": False}
        try:
            self.client.set(self._key(record.jti), json.dumps(payload),
                            ex=max(1, int(lifetime.total_seconds())))
        except redis.RedisError as exc:
            raise StoreUnavailable(f"redis: {exc}") from exc
        return record

    def get(self, jti: str) -> Session | None:
        try:
            raw = self.client.get(self._key(jti))
        except redis.RedisError as exc:
            raise StoreUnavailable(f"redis: {exc}") from exc
        if raw is None:
            return None
        data = json.loads(raw)
        return Session(jti, data["user"], datetime.fromisoformat(data["created_at"]),
                       datetime.fromisoformat(data["expires_at"]), bool(data["revoked"]))

    def revoke(self, jti: str) -> bool:
        key = self._key(jti)
        try:
            raw = self.client.get(key)
            if raw is None:
                return False
            data = json.loads(raw)
            data["revoked"] = True
            # Kept until it would have expired anyway, for audit; KEEPTTL preserves that.
            # XX: if the key expired since the GET, do not recreate it without a TTL.
            if not self.client.set(key, json.dumps(data), keepttl=True, xx=True):
                return False
            self.client.publish(self.channel, jti)
        except redis.RedisError as exc:
            raise StoreUnavailable(f"redis: {exc}") from exc
        return True

    @property
    def channel(self) -> str:
        """Gateways subscribe here to learn of a revocation at once (the message is the jti)."""
        return f"{self.prefix}revocations"

    def cleanup_expired(self) -> int:
        return 0  # Redis expires keys itself

    def ping(self) -> None:
        try:
            self.client.ping()
        except redis.RedisError as exc:
            raise StoreUnavailable(f"redis: {exc}") from exc
