"""Chat sessions: created, listed and searched, retitled and closed by their owner only.

A session belongs to the user who started it (Core's ``sub``). Every read and change takes
that user's claims; another user's session is "not found", so ids leak nothing. Idle sessions
are closed by :func:`close_idle`, run once per deployment under a :class:`JobLease`.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from hivematrix.brainhair import buffer
from hivematrix.brainhair.errors import BrainhairError, not_found
from hivematrix.brainhair.models import TITLE_MAX, ChatMessage, ChatResponse, ChatSession, JobLease
from hivematrix.common.db import Database, utcnow

log = logging.getLogger("hivematrix.brainhair.sessions")

IDLE_JOB = "close_idle_sessions"
MAX_PAGE = 100


def owner_of(user: Mapping[str, Any]) -> str:
    """The owner key of a user's claims; service tokens own nothing."""
    if user.get("type") == "service" or not user.get("sub"):
        raise BrainhairError("Only a signed-in user may do this.", status=403)
    return str(user["sub"])


def create(db: Session, user: Mapping[str, Any], *, ticket_number: str | None = None,
           account_number: str | None = None, title: str = "") -> ChatSession:
    session = ChatSession(
        id=str(uuid.uuid4()), owner_id=owner_of(user),
        owner_username=str(user.get("preferred_username") or "")[:150],
        owner_name=str(user.get("name") or "")[:150], title=title[:TITLE_MAX],
        ticket_number=ticket_number, account_number=account_number, status="active")
    db.add(session)
    db.flush()
    return session


def get(db: Session, session_id: str, user: Mapping[str, Any]) -> ChatSession:
    """The user's own session; anyone else's is not found."""
    owner = owner_of(user)
    session = db.get(ChatSession, session_id) if isinstance(session_id, str) else None
    if session is None or session.owner_id != owner:
        raise not_found("session")
    return session


def messages(db: Session, session_id: str) -> list[ChatMessage]:
    return list(db.scalars(select(ChatMessage).where(ChatMessage.session_id == session_id)
                           .order_by(ChatMessage.created_at, ChatMessage.id)))


def list_sessions(db: Session, user: Mapping[str, Any], *, q: str | None = None,
                  limit: int = 50, offset: int = 0) -> tuple[list[ChatSession], int]:
    """The user's sessions, newest activity first; ``q`` matches titles and message text."""
    owner = owner_of(user)
    query = select(ChatSession).where(ChatSession.owner_id == owner)
    if q:
        pattern = f"%{escape_like(q.lower())}%"
        in_messages = select(ChatMessage.session_id).where(
            func.lower(ChatMessage.content).like(pattern, escape="\\"))
        query = query.where(or_(func.lower(ChatSession.title).like(pattern, escape="\\"),
                                func.lower(ChatSession.ticket_number).like(pattern, escape="\\"),
                                ChatSession.id.in_(in_messages)))
    total = db.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = db.scalars(query.order_by(ChatSession.updated_at.desc(), ChatSession.id)
                      .limit(min(max(limit, 1), MAX_PAGE)).offset(max(offset, 0)))
    return list(rows), int(total)


def escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def clean_title(raw: Any) -> str:
    if not isinstance(raw, str) or not raw.strip():
        raise BrainhairError("title: expected a non-empty string", field="title")
    title = " ".join(raw.split())
    if len(title) > TITLE_MAX:
        raise BrainhairError(f"title: longer than {TITLE_MAX} characters", field="title")
    return title


def set_title(db: Session, session_id: str, user: Mapping[str, Any], title: Any) -> ChatSession:
    """Retitle the user's own session (the ``set_chat_title`` tool runs as that user too)."""
    session = get(db, session_id, user)
    session.title = clean_title(title)
    session.updated_at = utcnow()
    db.flush()
    return session


def close(db: Session, session_id: str, user: Mapping[str, Any]) -> ChatSession:
    session = get(db, session_id, user)
    if session.status != "closed":
        session.status = "closed"
        session.ended_at = utcnow()
        db.flush()
    return session


def touch(db: Session, session: ChatSession) -> None:
    """A turn started: the session is active again and its idle clock restarts."""
    session.status = "active"
    session.ended_at = None
    session.updated_at = utcnow()


def to_dict(session: ChatSession, *, message_count: int | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": session.id, "title": session.title, "status": session.status,
        "ticket_number": session.ticket_number, "account_number": session.account_number,
        "owner": session.owner_username or session.owner_id,
        "created_at": session.created_at.isoformat(),
        "updated_at": session.updated_at.isoformat(),
        "ended_at": session.ended_at.isoformat() if session.ended_at else None,
        "running_response_id": session.running_response_id,
    }
    if message_count is not None:
        data["message_count"] = message_count
    return data


def message_counts(db: Session, ids: list[str]) -> dict[str, int]:
    if not ids:
        return {}
    rows = db.execute(select(ChatMessage.session_id, func.count()).where(
        ChatMessage.session_id.in_(ids)).group_by(ChatMessage.session_id))
    return {session_id: int(count) for session_id, count in rows}


def message_dict(message: ChatMessage) -> dict[str, Any]:
    return {"id": message.id, "role": message.role, "content": message.content,
            "tool_calls": message.tool_calls or [], "tool_results": message.tool_results or [],
            "was_filtered": message.was_filtered, "filter_level": message.filter_level,
            "created_at": message.created_at.isoformat()}


# --- the idle job, once per deployment ------------------------------------------------------

def claim_lease(database: Database, name: str, holder: str, every: timedelta,
                now: datetime) -> bool:
    """Win the job ``name`` until ``now + every``: one conditional UPDATE, so however many
    processes try at once, exactly one changes the row and runs the job."""
    with database.transaction() as db:
        if db.get(JobLease, name) is None:
            try:
                with db.begin_nested():
                    db.add(JobLease(name=name, holder="", until=datetime(1970, 1, 1, tzinfo=UTC)))
            except IntegrityError:
                pass  # another process created it first: fine, the UPDATE decides
        changed = db.execute(
            update(JobLease).where(JobLease.name == name, JobLease.until <= now)
            .values(holder=holder[:100], until=now + every, last_run_at=now)
            .execution_options(synchronize_session=False))
        return getattr(changed, "rowcount", 0) == 1


def close_idle(database: Database, minutes: int, *, now: datetime | None = None,
               holder: str | None = None, every: timedelta = timedelta(minutes=1),
               stale_turn: timedelta = timedelta(hours=1),
               keep_responses: timedelta = timedelta(hours=24)) -> int | None:
    """Close sessions idle for ``minutes``; ``None`` when another process holds the job.

    Also ends turns still "running" long after any turn could (their worker died), so their
    sessions accept a new turn again, and purges finished replies' chunks older than
    ``keep_responses`` (the stored messages keep the conversation).
    """
    now = now or utcnow()
    if not claim_lease(database, IDLE_JOB, holder or default_holder(), every, now):
        return None
    with database.transaction() as db:
        dead = list(db.scalars(select(ChatResponse.id).where(
            ChatResponse.status == "running", ChatResponse.created_at < now - stale_turn)))
        if dead:
            db.execute(update(ChatResponse).where(ChatResponse.id.in_(dead)).values(
                status="error", error="The turn was abandoned.", finished_at=now)
                .execution_options(synchronize_session=False))
            db.execute(update(ChatSession).where(ChatSession.running_response_id.in_(dead))
                       .values(running_response_id=None)
                       .execution_options(synchronize_session=False))
        closed = db.execute(
            update(ChatSession).where(ChatSession.status == "active",
                                      ChatSession.running_response_id.is_(None),
                                      ChatSession.updated_at < now - timedelta(minutes=minutes))
            .values(status="closed", ended_at=now).execution_options(synchronize_session=False))
        count = int(getattr(closed, "rowcount", 0) or 0)
        buffer.purge(db, keep_responses, now=now)
    if count:
        log.info("closed %d idle chat sessions", count)
    return count


def default_holder() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}"


class IdleCloser:
    """The loop each Brainhair process runs in a daemon thread; the lease picks one."""

    def __init__(self, app: Any, tick_seconds: float = 60.0) -> None:
        self.app = app
        self.tick_seconds = tick_seconds
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._loop, name="brainhair-idle", daemon=True)

    def start(self) -> IdleCloser:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.stopped.set()

    def _loop(self) -> None:
        database: Database = self.app.extensions["hivematrix.db"]
        minutes = int(self.app.config["BRAINHAIR_SESSION_IDLE_MINUTES"])
        keep = float(self.app.config["BRAINHAIR_RESPONSE_KEEP_HOURS"])
        while not self.stopped.wait(self.tick_seconds):
            try:
                close_idle(database, minutes, every=timedelta(seconds=self.tick_seconds),
                           keep_responses=timedelta(hours=keep))
            except Exception:  # the loop must survive one bad tick
                log.exception("idle session job failed")
