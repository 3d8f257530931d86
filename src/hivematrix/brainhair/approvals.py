"""Approvals of write tools: stored in the database, decided only by the session's owner.

An approval's id is random (``secrets.token_urlsafe(24)``), never derived from the session or
the time. A decision is one conditional UPDATE ``WHERE status = 'pending'`` and not expired,
so a replayed or racing decision changes nothing and is refused (409). Another user's
approval, or a guessed id, is "not found" — the same answer, so nothing leaks. Service tokens
never decide. Every decision and every expiry is written to :class:`AuditEvent`.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from hivematrix.brainhair.errors import BrainhairError, not_found
from hivematrix.brainhair.models import Approval, AuditEvent, ChatSession
from hivematrix.brainhair.sessions import owner_of
from hivematrix.common.db import Database, utcnow

FINAL = ("approved", "denied", "expired")


def audit(db: Session, actor: str, event: str, *, session_id: str | None = None,
          approval_id: str | None = None, **details: Any) -> None:
    db.add(AuditEvent(actor=actor[:150], event=event, session_id=session_id,
                      approval_id=approval_id, details=details, at=utcnow()))


def create(db: Session, *, session_id: str, user: Mapping[str, Any], tool: str, action: str,
           details: Mapping[str, Any], tool_input: Mapping[str, Any], seconds: float,
           level: str, response_id: str | None = None, allow: Iterable[str] = (),
           now: datetime | None = None) -> Approval:
    """A pending approval of ``tool`` with ``tool_input``, for the session's owner to decide.

    The action text and details are what the approver reads; they are filtered at the turn's
    level like everything else, keeping the identifiers and company names of the input, the
    details and ``allow`` (the turn's tool data) as they are. The input is kept as given: it
    runs only if approved.
    """
    from hivematrix.brainhair.phi import get_filter

    owner = owner_of(user)
    session = db.get(ChatSession, session_id)
    if session is None or session.owner_id != owner:
        raise not_found("session")
    if level == "none":  # an admin's unfiltered turn: works without the filter installed
        shown_action, shown_details = action, dict(details)
    else:
        phi = get_filter()
        terms = {*allow, *phi.protected_terms(dict(tool_input)),
                 *phi.protected_terms(dict(details))}
        shown_action, _ = phi.filter_text(action, level, allow=terms)
        shown_details, _ = phi.filter_data(dict(details), level, allow=terms)
    now = now or utcnow()
    approval = Approval(
        id=secrets.token_urlsafe(24), session_id=session_id, response_id=response_id,
        requested_by=owner, tool=tool, action=shown_action, details=shown_details,
        tool_input=dict(tool_input), status="pending", created_at=now,
        expires_at=now + timedelta(seconds=seconds))
    db.add(approval)
    audit(db, owner, "approval.requested", session_id=session_id, approval_id=approval.id,
          tool=tool)
    db.flush()
    return approval


def get(db: Session, approval_id: str, user: Mapping[str, Any]) -> Approval:
    """The user's own approval; anyone else's, or an unknown id, is not found."""
    owner = owner_of(user)
    approval = db.get(Approval, approval_id) if isinstance(approval_id, str) else None
    if approval is None or approval.requested_by != owner:
        raise not_found("approval")
    session = db.get(ChatSession, approval.session_id)
    if session is None or session.owner_id != owner:
        raise not_found("approval")
    return approval


def decide(db: Session, approval_id: str, user: Mapping[str, Any], approved: bool,
           now: datetime | None = None, *, session_id: str | None = None) -> Approval:
    """Approve or deny, once, while pending and before expiry. The caller commits.

    ``session_id``, when the deciding page names its chat, must be the approval's session:
    a decision sent from another chat is refused like a guessed id.
    """
    if not isinstance(approved, bool):
        raise BrainhairError("approved: expected true or false", field="approved")
    approval = get(db, approval_id, user)
    if session_id is not None and session_id != approval.session_id:
        raise not_found("approval")
    owner = owner_of(user)
    now = now or utcnow()
    if approval.status == "pending" and approval.expires_at <= now:
        expire(db, approval.id, now=now)
        db.refresh(approval)
    status = "approved" if approved else "denied"
    changed = db.execute(
        update(Approval).where(Approval.id == approval.id, Approval.status == "pending",
                               Approval.expires_at > now)
        .values(status=status, decided_by=owner, decided_at=now)
        .execution_options(synchronize_session=False))
    if getattr(changed, "rowcount", 0) != 1:
        db.refresh(approval)
        raise BrainhairError(f"The approval is {approval.status} already; it cannot be decided "
                             "again.", status=409)
    audit(db, owner, f"approval.{status}", session_id=approval.session_id,
          approval_id=approval.id, tool=approval.tool)
    db.flush()
    db.refresh(approval)
    return approval


def expire(db: Session, approval_id: str, *, now: datetime | None = None,
           reason: str = "timeout") -> bool:
    """Mark a pending approval expired (audited); False when it was decided already."""
    now = now or utcnow()
    changed = db.execute(
        update(Approval).where(Approval.id == approval_id, Approval.status == "pending")
        .values(status="expired", decided_at=now).execution_options(synchronize_session=False))
    if getattr(changed, "rowcount", 0) != 1:
        return False
    approval = db.get(Approval, approval_id)
    audit(db, "system", "approval.expired", approval_id=approval_id,
          session_id=approval.session_id if approval else None, reason=reason)
    db.flush()
    return True


def wait(database: Database, approval_id: str, should_stop: Callable[[], bool], *,
         interval: float = 0.2, clock: Callable[[], datetime] = utcnow) -> str:
    """Block until the approval is decided or expires; returns its final status.

    A stopped turn expires its pending approval (nothing will run it any more).
    """
    while True:
        with database.transaction() as db:
            row = db.execute(select(Approval.status, Approval.expires_at)
                             .where(Approval.id == approval_id)).one_or_none()
            if row is None:
                return "expired"
            status, expires_at = row
            if status in FINAL:
                return str(status)
            now = clock()
            if expires_at <= now or should_stop():
                reason = "timeout" if expires_at <= now else "turn stopped"
                if expire(db, approval_id, now=now, reason=reason):
                    return "expired"
                continue  # decided in the meantime: read it again
        time.sleep(interval)


def pending(db: Session, user: Mapping[str, Any], now: datetime | None = None) -> list[Approval]:
    """The user's approvals still waiting for a decision, oldest first (the inbox)."""
    owner = owner_of(user)
    return list(db.scalars(select(Approval).where(
        Approval.requested_by == owner, Approval.status == "pending",
        Approval.expires_at > (now or utcnow())).order_by(Approval.created_at)))


def to_dict(approval: Approval) -> dict[str, Any]:
    return {"id": approval.id, "session_id": approval.session_id,
            "response_id": approval.response_id, "tool": approval.tool,
            "action": approval.action, "details": approval.details, "status": approval.status,
            "created_at": approval.created_at.isoformat(),
            "expires_at": approval.expires_at.isoformat(),
            "decided_at": approval.decided_at.isoformat() if approval.decided_at else None}


def audit_trail(db: Session, *, event: str | None = None, limit: int = 50,
                offset: int = 0) -> tuple[list[AuditEvent], int]:
    """The audit trail, newest first (admins read it)."""
    query = select(AuditEvent)
    if event:
        query = query.where(AuditEvent.event == event)
    total = db.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = db.scalars(query.order_by(AuditEvent.at.desc(), AuditEvent.id.desc())
                      .limit(limit).offset(offset))
    return list(rows), int(total)


def audit_dict(row: AuditEvent) -> dict[str, Any]:
    return {"id": row.id, "at": row.at.isoformat(), "actor": row.actor, "event": row.event,
            "session_id": row.session_id, "approval_id": row.approval_id,
            "details": row.details}
