"""`/api/approvals`: writes waiting for your decision — the inbox, one, and the decision."""

from __future__ import annotations

from typing import Any

from apiflask import APIBlueprint
from flask import request

from hivematrix.brainhair import approvals
from hivematrix.brainhair.api import STAFF, current_user, json_body, query_int, refusals
from hivematrix.brainhair.errors import BrainhairError
from hivematrix.common.auth import permission_required
from hivematrix.common.db import get_session

bp = APIBlueprint("approvals", __name__, tag="Approvals")


@bp.get("/api/approvals")
@bp.doc(summary="Your pending approvals, oldest first",
        description="Also those of replies no longer being polled (the inbox). "
                    "Answers `{approvals: [...]}`.")
@permission_required(*STAFF)
@refusals
def inbox() -> Any:
    rows = approvals.pending(get_session(), current_user())
    return {"approvals": [approvals.to_dict(row) for row in rows]}


@bp.get("/api/approvals/<approval_id>")
@bp.doc(summary="One of your approvals",
        description="`status`: pending, approved, denied or expired. Another user's approval "
                    "and an unknown id are both 404.")
@permission_required(*STAFF)
@refusals
def get_approval(approval_id: str) -> Any:
    return approvals.to_dict(approvals.get(get_session(), approval_id, current_user()))


@bp.post("/api/approvals/<approval_id>/decision")
@bp.doc(summary="Approve or deny",
        description="Body: `{approved: true|false, session_id?}`. Only the user whose chat "
                    "asked (404 for anyone else, and for a `session_id` other than the "
                    "approval's chat), once, while pending and before it expires (409 "
                    "otherwise: a replayed or late decision changes nothing). Audited.")
@permission_required(*STAFF)
@refusals
def decide(approval_id: str) -> Any:
    body = json_body()
    if not isinstance(body, dict) or "approved" not in body:
        raise BrainhairError("approved: missing", field="approved")
    session_id = body.get("session_id")
    if session_id is not None and not isinstance(session_id, str):
        raise BrainhairError("session_id: expected a string", field="session_id")
    db = get_session()
    try:
        approval = approvals.decide(db, approval_id, current_user(), body["approved"],
                                    session_id=session_id)
    except BrainhairError as exc:
        if exc.status == 409:
            db.commit()  # keep an expiry found on the way
        raise
    db.commit()
    return approvals.to_dict(approval)


@bp.get("/api/audit")
@bp.doc(summary="The audit trail: approvals requested, decided and expired; filter=none",
        description="Admins only. `event` (e.g. `approval.denied`, `filter.none`), `limit` "
                    "(1 to 200, default 50), `offset`; newest first. Answers "
                    "`{events, total, limit, offset}`.")
@permission_required("admin")
@refusals
def audit_trail() -> Any:
    limit = query_int("limit", 50, 1, 200)
    offset = query_int("offset", 0, 0, 10**9)
    event = request.args.get("event", "").strip()[:50] or None
    rows, total = approvals.audit_trail(get_session(), event=event, limit=limit, offset=offset)
    return {"events": [approvals.audit_dict(row) for row in rows], "total": total,
            "limit": limit, "offset": offset}
