"""Brainhair's web pages: the chat, its history and the approvals inbox.

Thin views over the same modules as the JSON API. The chat page streams replies with
``static/chat.js`` through the API; without script its form still posts here and the page
shows the reply once stored. The inbox decides approvals with plain forms, so a write waiting
for its human never depends on a chat being open.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from apiflask import APIBlueprint
from flask import current_app, g, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from hivematrix.brainhair import approvals, chat, sessions
from hivematrix.brainhair.api import refusals
from hivematrix.brainhair.errors import BrainhairError
from hivematrix.brainhair.models import ChatMessage, ChatSession
from hivematrix.brainhair.phi import FilterUnavailable
from hivematrix.common.auth import bearer_token, permission_required
from hivematrix.common.db import get_session
from hivematrix.common.markdown import render_untrusted
from hivematrix.common.paging import Pager

bp = APIBlueprint("brainhair_pages", __name__, enable_openapi=False)
STAFF = ("admin", "technician", "billing")
HISTORY_PAGE = 25


@dataclass(frozen=True)
class HistorySearch:
    """What the history page lists by, as the kit's pagination macro links to it."""

    q: str

    def link_args(self, page: int) -> dict[str, Any]:
        return {"q": self.q or None, "page": page}


def _render(template: str, status: int = 200, **context: Any) -> tuple[str, int]:
    db = get_session()
    context.setdefault("pending_count", len(approvals.pending(db, g.user)))
    context.setdefault("errors", {})
    return render_template(f"brainhair/{template}", user=g.user, **context), status


def _messages(db: Any, session: ChatSession) -> list[dict[str, Any]]:
    shown: list[dict[str, Any]] = []
    for message in sessions.messages(db, session.id):
        row: ChatMessage = message
        shown.append({"role": row.role, "content": row.content,
                      "html": render_untrusted(row.content) if row.role == "assistant" else "",
                      "tool_calls": row.tool_calls or []})
    return shown


def _chat_page(session: ChatSession | None, *, status: int = 200,
               errors: dict[str, list[str]] | None = None) -> tuple[str, int]:
    db = get_session()
    backend = chat.backend_for(current_app)
    return _render("chat.html", status, section="chat", chat_session=session,
                   messages=_messages(db, session) if session else [],
                   running=session.running_response_id if session else None,
                   notice=backend.available(), message_max=chat.MAX_MESSAGE,
                   errors=errors or {})


@bp.get("/")
@bp.get("/chat")
@permission_required(*STAFF)
@refusals
def chat_page() -> tuple[str, int]:
    session_id = request.args.get("session", "").strip()
    session = sessions.get(get_session(), session_id, g.user) if session_id else None
    return _chat_page(session)


@bp.post("/chat")
@permission_required(*STAFF)
@refusals
def send() -> Response | tuple[str, int]:
    """The chat form without script: start the turn, then show the session."""
    db = get_session()
    body = {"message": request.form.get("message", ""),
            "session_id": request.form.get("session_id") or None}
    try:
        started = chat.start_turn(current_app, db, g.user, bearer_token() or "", body)
    except BrainhairError as exc:
        # Shown beside the message box: why it was not sent (a missing filter too: the page
        # still works, only the chat is refused).
        if exc.field not in ("message", "session_id") and not isinstance(exc, FilterUnavailable):
            raise
        db.rollback()
        session = (sessions.get(db, body["session_id"], g.user) if body["session_id"]
                   and exc.status != 404 else None)
        return _chat_page(session, status=exc.status, errors={"message": [str(exc)]})
    return redirect(url_for("brainhair_pages.chat_page", session=started["session_id"]), 303)


@bp.get("/chat/transcript/<session_id>")
@permission_required(*STAFF)
@refusals
def transcript(session_id: str) -> tuple[str, int]:
    """The stored messages as the page shows them: what the script swaps in after a turn."""
    db = get_session()
    session = sessions.get(db, session_id, g.user)
    return render_template("brainhair/_transcript.html", messages=_messages(db, session)), 200


@bp.get("/history")
@permission_required(*STAFF)
@refusals
def history() -> tuple[str, int]:
    db = get_session()
    query = request.args.get("q", "").strip()[:200]
    page = request.args.get("page", "1")
    number = int(page) if page.isdigit() and 0 < int(page) < 1_000_000 else 1
    rows, pager = _history_page(db, query, number)
    if not rows and number > pager.pages:  # past the end: show the last page
        rows, pager = _history_page(db, query, pager.pages)
    counts = sessions.message_counts(db, [row.id for row in rows])
    listed = [sessions.to_dict(row, message_count=counts.get(row.id, 0)) for row in rows]
    return _render("history.html", section="history", sessions=listed, query=query,
                   pager=pager, search=HistorySearch(query))


def _history_page(db: Any, query: str, number: int) -> tuple[list[ChatSession], Pager]:
    """Page ``number`` of the user's chats (matching ``query``), with its pager."""
    rows, total = sessions.list_sessions(db, g.user, q=query or None, limit=HISTORY_PAGE,
                                         offset=(number - 1) * HISTORY_PAGE)
    return rows, Pager(number, HISTORY_PAGE, total)


@bp.get("/approvals")
@permission_required(*STAFF)
@refusals
def approvals_page() -> tuple[str, int]:
    db = get_session()
    waiting = [approvals.to_dict(row) for row in approvals.pending(db, g.user)]
    flashed = []
    decided = request.args.get("decided")
    if decided in ("approved", "denied"):
        flashed.append({"tone": "success" if decided == "approved" else "info",
                        "text": f"The change was {decided}."})
    return _render("approvals.html", section="approvals", approvals=waiting, flashed=flashed,
                   pending_count=len(waiting))


@bp.post("/approvals/<approval_id>")
@permission_required(*STAFF)
@refusals
def decide(approval_id: str) -> Response | tuple[str, int]:
    decision = request.form.get("decision")
    if decision not in ("approve", "deny"):
        raise BrainhairError("decision: expected approve or deny", field="decision", status=400)
    db = get_session()
    approval = approvals.decide(db, approval_id, g.user, decision == "approve")
    db.commit()
    return redirect(url_for("brainhair_pages.approvals_page", decided=approval.status), 303)
