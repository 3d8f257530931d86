"""`/api/chat`: start a turn, poll its chunks, stop it."""

from __future__ import annotations

from typing import Any

from apiflask import APIBlueprint
from flask import current_app, request

from hivematrix.brainhair import buffer, chat, sessions
from hivematrix.brainhair.api import STAFF, current_user, json_body, query_int, refusals
from hivematrix.brainhair.errors import BrainhairError
from hivematrix.common import ratelimit
from hivematrix.common.auth import bearer_token, permission_required
from hivematrix.common.db import get_session
from hivematrix.common.markdown import render_untrusted

bp = APIBlueprint("chat", __name__, tag="Chat")


@bp.post("/api/chat")
@bp.doc(summary="Send a message; the reply runs in the background",
        description="Body: `message` (required), `session_id` (continue one of your sessions; "
                    "another user's is 404), `ticket_number` and `account_number` (what a new "
                    "chat is about: the company's Codex compliance level picks the filter), "
                    "`filter: \"none\"` (admins only, audited; 403 for anyone else). Answers "
                    "`{response_id, session_id}`; poll `/api/chat/poll/<response_id>`. 409 "
                    "while a reply is still running in the session. Staff users only.")
@permission_required(*STAFF)
@refusals
def start() -> Any:
    token = bearer_token() or ""
    return chat.start_turn(current_app, get_session(), current_user(), token, json_body()), 202


@bp.get("/api/chat/poll/<response_id>")
@bp.doc(summary="New chunks of a reply",
        description="`offset`: the number of chunks already received (the last answer's "
                    "`offset`). Answers `{chunks, offset, done, status, error, session_id}`; "
                    "each chunk is `{seq, type, ...}` with type `text` (`text`), `tool` "
                    "(`phase` start or end with `tool`, `id`, `is_error`; or approval with "
                    "`tool`, `approval_id`, `status` pending), `approval` (`id`, `tool`, "
                    "`action`, `details`, `expires_at`: show the approval dialog), `status` "
                    "(`text`; after a decision also `approval_id` and `status` approved, "
                    "denied or expired), `error` (`text`) or `done` (`status`). Any worker "
                    "answers. Your own replies only (404 otherwise). With `render=html` the "
                    "answer also has `html`: the reply's text so far as sanitised HTML (its "
                    "markdown rendered, any markup in it shown as text), for the chat page.")
@permission_required(*STAFF)
@ratelimit.exempt
@refusals
def poll(response_id: str) -> Any:
    offset = query_int("offset", 0, 0, 10**9)
    render = request.args.get("render")
    if render not in (None, "", "html"):
        raise BrainhairError("render: the only choice is html", field="render", status=400)
    owner = sessions.owner_of(current_user())
    answer = buffer.poll(get_session(), response_id, owner, offset)
    if render == "html":
        text = buffer.text_before(get_session(), response_id, answer["offset"])
        answer["html"] = render_untrusted(text)
    return answer


@bp.post("/api/chat/stop/<response_id>")
@bp.doc(summary="Stop a running reply",
        description="The worker running it stops the model and ends the reply with status "
                    "`stopped`; a pending approval of it expires. 409 when it is not running.")
@permission_required(*STAFF)
@refusals
def stop(response_id: str) -> Any:
    owner = sessions.owner_of(current_user())
    response = buffer.request_stop(get_session(), response_id, owner)
    get_session().commit()
    return {"response_id": response.id, "stop_requested": True, "status": response.status}
