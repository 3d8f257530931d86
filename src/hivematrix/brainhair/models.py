"""Brainhair's tables: chat sessions and their messages, the chunks of a turn in progress,
approvals of write tools, and the audit trail of decisions and unfiltered reads.

Everything a turn produces lives here (not in process memory), so any web worker can answer a
poll, decide an approval or stop a turn, and a restart loses nothing.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from hivematrix.common.db import UTCDateTime, utcnow

TITLE_MAX = 255
USER_MAX = 150
#: Random ids (``secrets.token_urlsafe(24)``: 32 characters) for what a browser names in a URL.
TOKEN_ID_MAX = 64

SESSION_STATUSES = ("active", "closed")
ROLES = ("user", "assistant")
RESPONSE_STATUSES = ("running", "done", "error", "stopped")
#: What a chunk of a turn carries: model text, a tool starting or finishing, an approval
#: waiting for the user, a status line, the end, or an error.
CHUNK_KINDS = ("text", "tool", "approval", "status", "done", "error")
APPROVAL_STATUSES = ("pending", "approved", "denied", "expired")
#: Filter levels: what a company's compliance level maps to, or "none" (admins only, audited).
FILTER_LEVELS = ("phi", "cjis", "none")


class Base(DeclarativeBase):
    """Every table of this service; Alembic compares migrations against its metadata."""


class ChatSession(Base):
    """One conversation, owned by the user who started it (Core's ``sub``)."""

    __tablename__ = "brainhair_sessions"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    owner_id: Mapped[str] = mapped_column(String(USER_MAX), index=True)
    owner_username: Mapped[str] = mapped_column(String(USER_MAX), default="")
    owner_name: Mapped[str] = mapped_column(String(USER_MAX), default="")
    title: Mapped[str] = mapped_column(String(TITLE_MAX), default="")
    #: The ticket and the client (Codex account number) the chat is about, if any.
    ticket_number: Mapped[str | None] = mapped_column(String(50), index=True)
    account_number: Mapped[str | None] = mapped_column(String(50), index=True)
    status: Mapped[str] = mapped_column(String(10), default="active", index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: The turn running now, if any: claimed with one conditional UPDATE, so a session runs
    #: at most one turn at a time whichever worker the requests reach.
    running_response_id: Mapped[str | None] = mapped_column(String(TOKEN_ID_MAX))


class ChatMessage(Base):
    """One message as stored: always after filtering, with the tools it called."""

    __tablename__ = "brainhair_messages"
    __table_args__ = (Index("ix_brainhair_messages_session_created", "session_id", "created_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    session_id: Mapped[str] = mapped_column(
        ForeignKey("brainhair_sessions.id", ondelete="CASCADE"))
    role: Mapped[str] = mapped_column(String(20))
    content: Mapped[str] = mapped_column(Text, default="")
    #: ``[{"id", "name", "input"}]`` and ``[{"id", "name", "output", "is_error"}]``.
    tool_calls: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)
    tool_results: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)
    was_filtered: Mapped[bool] = mapped_column(Boolean, default=False)
    filter_level: Mapped[str] = mapped_column(String(10), default="phi")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ChatResponse(Base):
    """One turn in progress or finished: what ``/api/chat/poll/<id>`` reads."""

    __tablename__ = "brainhair_responses"

    id: Mapped[str] = mapped_column(String(TOKEN_ID_MAX), primary_key=True)
    session_id: Mapped[str] = mapped_column(
        ForeignKey("brainhair_sessions.id", ondelete="CASCADE"), index=True)
    owner_id: Mapped[str] = mapped_column(String(USER_MAX))
    status: Mapped[str] = mapped_column(String(10), default="running", index=True)
    error: Mapped[str | None] = mapped_column(Text)
    #: Set by ``/api/chat/stop``; the worker running the turn sees it and ends the process.
    stop_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class ChatChunk(Base):
    """One piece of a turn's output, numbered from 0 within its response."""

    __tablename__ = "brainhair_chunks"
    __table_args__ = (UniqueConstraint("response_id", "seq"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    response_id: Mapped[str] = mapped_column(
        ForeignKey("brainhair_responses.id", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(10))
    #: Always a JSON object (``{"text": ...}`` for text), never a bare value.
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Approval(Base):
    """A write a tool wants to make, waiting for the session owner's decision."""

    __tablename__ = "brainhair_approvals"

    #: ``secrets.token_urlsafe(24)``: unguessable, never derived from the session or time.
    id: Mapped[str] = mapped_column(String(TOKEN_ID_MAX), primary_key=True)
    session_id: Mapped[str] = mapped_column(
        ForeignKey("brainhair_sessions.id", ondelete="CASCADE"), index=True)
    response_id: Mapped[str | None] = mapped_column(String(TOKEN_ID_MAX), index=True)
    requested_by: Mapped[str] = mapped_column(String(USER_MAX), index=True)
    tool: Mapped[str] = mapped_column(String(100))
    #: One line saying what will happen ("Set Acme's per-user rate to $45.00").
    action: Mapped[str] = mapped_column(Text)
    #: Shown as a table to the approver; filtered like everything else.
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    #: The exact tool input that will run if approved (never shown to the model again).
    tool_input: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(10), default="pending", index=True)
    decided_by: Mapped[str | None] = mapped_column(String(USER_MAX))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class AuditEvent(Base):
    """Who decided what, and who read unfiltered data: kept, never edited."""

    __tablename__ = "brainhair_audit"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(USER_MAX), index=True)
    #: ``approval.approved``, ``approval.denied``, ``approval.expired``, ``filter.none``, ...
    event: Mapped[str] = mapped_column(String(50), index=True)
    session_id: Mapped[str | None] = mapped_column(String(36))
    approval_id: Mapped[str | None] = mapped_column(String(TOKEN_ID_MAX))
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class JobLease(Base):
    """Which process runs a periodic job (idle-session closing) until when: one row per job,
    claimed with one conditional UPDATE so exactly one process per deployment runs it."""

    __tablename__ = "brainhair_job_leases"

    name: Mapped[str] = mapped_column(String(50), primary_key=True)
    holder: Mapped[str] = mapped_column(String(100), default="")
    until: Mapped[datetime] = mapped_column(UTCDateTime)
    last_run_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
