"""Core's tables: sessions (the SQL store) and personal API tokens."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from hivematrix.common.db import UTCDateTime, utcnow


class Base(DeclarativeBase):
    """Every table of Core."""


class CoreSession(Base):
    """One signed-in session; the user JWT's ``jti`` is its id."""

    __tablename__ = "core_sessions"

    jti: Mapped[str] = mapped_column(String(64), primary_key=True)
    user: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)


class ApiToken(Base):
    """A personal API token for scripts; only its SHA-256 hash is kept."""

    __tablename__ = "core_api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    #: The first characters of the token, so owners can tell their tokens apart.
    prefix: Mapped[str] = mapped_column(String(16))
    owner_sub: Mapped[str] = mapped_column(String(255), index=True)
    #: The owner's identity claims when the token was made; a token never grants more.
    owner: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
