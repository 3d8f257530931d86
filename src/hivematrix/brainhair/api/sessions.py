"""`/api/sessions`: your chat history — list and search, read, retitle, close."""

from __future__ import annotations

from typing import Any

from apiflask import APIBlueprint
from flask import request

from hivematrix.brainhair import sessions
from hivematrix.brainhair.api import STAFF, current_user, json_body, query_int, refusals
from hivematrix.brainhair.errors import BrainhairError
from hivematrix.common.auth import permission_required
from hivematrix.common.db import get_session

bp = APIBlueprint("sessions", __name__, tag="Sessions")


@bp.get("/api/sessions")
@bp.doc(summary="Your chat sessions, newest activity first",
        description="`q` searches titles, ticket numbers and message text; `limit` (1 to 100, "
                    "default 50), `offset`. Answers `{sessions, total, limit, offset}`.")
@permission_required(*STAFF)
@refusals
def list_sessions() -> Any:
    limit = query_int("limit", 50, 1, sessions.MAX_PAGE)
    offset = query_int("offset", 0, 0, 10**9)
    q = request.args.get("q", "").strip()
    if len(q) > 200:
        raise BrainhairError("q: longer than 200 characters", field="q", status=400)
    db = get_session()
    rows, total = sessions.list_sessions(db, current_user(), q=q or None, limit=limit,
                                         offset=offset)
    counts = sessions.message_counts(db, [row.id for row in rows])
    return {"sessions": [sessions.to_dict(row, message_count=counts.get(row.id, 0))
                         for row in rows],
            "total": total, "limit": limit, "offset": offset}


@bp.get("/api/sessions/<session_id>")
@bp.doc(summary="One of your sessions with its messages",
        description="Messages as stored (filtered), with `tool_calls`, `tool_results`, "
                    "`was_filtered` and `filter_level`. Another user's session is 404.")
@permission_required(*STAFF)
@refusals
def get_session_view(session_id: str) -> Any:
    db = get_session()
    session = sessions.get(db, session_id, current_user())
    data = sessions.to_dict(session)
    data["messages"] = [sessions.message_dict(m) for m in sessions.messages(db, session.id)]
    data["message_count"] = len(data["messages"])
    return data


@bp.put("/api/sessions/<session_id>/title")
@bp.doc(summary="Retitle one of your sessions",
        description="Body: `{title}` (1 to 255 characters).")
@permission_required(*STAFF)
@refusals
def set_title(session_id: str) -> Any:
    body = json_body()
    if not isinstance(body, dict):
        raise BrainhairError("The body must be a JSON object.", field="body")
    session = sessions.set_title(get_session(), session_id, current_user(), body.get("title"))
    get_session().commit()
    return sessions.to_dict(session)


@bp.post("/api/sessions/<session_id>/close")
@bp.doc(summary="Close one of your sessions",
        description="A closed session can be continued later (a new message reopens it).")
@permission_required(*STAFF)
@refusals
def close(session_id: str) -> Any:
    session = sessions.close(get_session(), session_id, current_user())
    get_session().commit()
    return sessions.to_dict(session)
