"""Nexus's tables: browser sessions (the SQL store) and users' display preferences."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from hivematrix.common.db import UTCDateTime, utcnow


class Base(DeclarativeBase):
    """Every table of Nexus."""


class BrowserSession(Base):
    """One browser's server-side session; the cookie holds only the id, this row the data."""

    __tablename__ = "nexus_sessions"

    #: SHA-256 of the cookie value: a leaked database does not hand out live cookies.
    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    #: JSON: the HiveMatrix JWT, the IdP refresh and ID tokens, login state, CSRF token.
    data: Mapped[str] = mapped_column(Text)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


class Preference(Base):
    """A user's look (until Codex's agent settings take over)."""

    __tablename__ = "nexus_preferences"

    subject: Mapped[str] = mapped_column(String(255), primary_key=True)
    theme: Mapped[str] = mapped_column(String(16), default="light")
    color_theme: Mapped[str] = mapped_column(String(16), default="purple")
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class DisplayLink(Base):
    """A revocable link that opens a wall display (Beacon's TV view) without signing in."""

    __tablename__ = "nexus_display_links"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    #: The page the link opens, e.g. ``/beacon/display/helpdesk``.
    path: Mapped[str] = mapped_column(String(300))
    #: SHA-256 of the token; the token itself is shown once, in the link.
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_by: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
