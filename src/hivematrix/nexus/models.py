"""Nexus's tables: browser sessions (the SQL store) and users' display preferences."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String, Text
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
