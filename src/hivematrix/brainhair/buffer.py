"""A turn's output as numbered chunks in the database, so any worker answers a poll.

The worker running a turn appends chunks (``seq`` from 0); ``/api/chat/poll/<id>?offset=n``
reads those from ``n`` on, on whichever worker the request reaches. A chunk's payload is
always a JSON object — a text delta that happens to look like JSON ("42", "null") stays text
inside ``{"text": ...}`` — so a client never has to guess its shape.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from hivematrix.brainhair.errors import BrainhairError, not_found
from hivematrix.brainhair.models import CHUNK_KINDS, ChatChunk, ChatResponse
from hivematrix.common.db import utcnow

#: Keys the poll answer sets on every chunk; a payload may not use them.
RESERVED = frozenset({"seq", "type"})
#: Chunks one poll returns at most (the client asks again from the new offset).
MAX_READ = 500
FINAL_STATUSES = ("done", "error", "stopped")


def create(db: Session, session_id: str, owner_id: str) -> ChatResponse:
    response = ChatResponse(id=secrets.token_urlsafe(24), session_id=session_id,
                            owner_id=owner_id, status="running", stop_requested=False)
    db.add(response)
    db.flush()
    return response


def append(db: Session, response_id: str, kind: str, payload: Mapping[str, Any]) -> int:
    """Add one chunk; returns its ``seq``. The turn's worker is its only writer."""
    if kind not in CHUNK_KINDS:
        raise ValueError(f"unknown chunk kind {kind!r}")
    if not isinstance(payload, Mapping):
        raise TypeError("a chunk's payload must be a JSON object")
    if RESERVED & set(payload):
        raise ValueError(f"a chunk's payload may not set {sorted(RESERVED & set(payload))}")
    last = db.scalar(select(func.max(ChatChunk.seq)).where(ChatChunk.response_id == response_id))
    seq = 0 if last is None else int(last) + 1
    db.add(ChatChunk(response_id=response_id, seq=seq, kind=kind, payload=dict(payload)))
    db.flush()
    return seq


def get(db: Session, response_id: str, owner_id: str) -> ChatResponse:
    """The owner's response; anyone else's is not found."""
    response = db.get(ChatResponse, response_id) if isinstance(response_id, str) else None
    if response is None or response.owner_id != owner_id:
        raise not_found("response")
    return response


def read(db: Session, response_id: str, offset: int = 0,
         limit: int = MAX_READ) -> list[dict[str, Any]]:
    """Chunks from ``offset`` on, each ``{"seq", "type", **payload}``."""
    rows = db.scalars(select(ChatChunk).where(ChatChunk.response_id == response_id,
                                              ChatChunk.seq >= max(offset, 0))
                      .order_by(ChatChunk.seq).limit(limit))
    return [{**row.payload, "seq": row.seq, "type": row.kind} for row in rows]


def text_before(db: Session, response_id: str, offset: int) -> str:
    """The reply's text so far: every ``text`` chunk before ``offset``, in order."""
    rows = db.scalars(select(ChatChunk.payload).where(
        ChatChunk.response_id == response_id, ChatChunk.kind == "text",
        ChatChunk.seq < offset).order_by(ChatChunk.seq))
    return "".join(str(payload.get("text") or "") for payload in rows)


def poll(db: Session, response_id: str, owner_id: str, offset: int = 0) -> dict[str, Any]:
    """What a poll answers. The status is read before the chunks: a turn's last chunks and
    its final status are committed together, so "done" always comes with everything."""
    response = get(db, response_id, owner_id)
    status, error = response.status, response.error
    chunks = read(db, response_id, offset)
    next_offset = chunks[-1]["seq"] + 1 if chunks else max(offset, 0)
    finished = status in FINAL_STATUSES and len(chunks) < MAX_READ
    return {"chunks": chunks, "offset": next_offset, "done": finished, "status": status,
            "error": error, "session_id": response.session_id}


def finish(db: Session, response_id: str, status: str = "done", error: str | None = None,
           now: datetime | None = None) -> None:
    if status not in FINAL_STATUSES:
        raise ValueError(f"not a final status: {status!r}")
    db.execute(update(ChatResponse).where(ChatResponse.id == response_id).values(
        status=status, error=error, finished_at=now or utcnow())
        .execution_options(synchronize_session=False))


def request_stop(db: Session, response_id: str, owner_id: str) -> ChatResponse:
    """Ask the worker running the turn to stop; only while it runs (409 otherwise)."""
    response = get(db, response_id, owner_id)
    changed = db.execute(update(ChatResponse).where(
        ChatResponse.id == response_id, ChatResponse.status == "running").values(
        stop_requested=True).execution_options(synchronize_session=False))
    if getattr(changed, "rowcount", 0) != 1:
        raise BrainhairError("The response is not running.", status=409)
    db.refresh(response)
    return response


def stop_requested(db: Session, response_id: str) -> bool:
    return bool(db.scalar(select(ChatResponse.stop_requested).where(
        ChatResponse.id == response_id)))


def purge(db: Session, older_than: timedelta, now: datetime | None = None) -> int:
    """Delete finished responses (and their chunks) older than ``older_than``; the stored
    messages keep the conversation."""
    cutoff = (now or utcnow()) - older_than
    old = list(db.scalars(select(ChatResponse.id).where(
        ChatResponse.status.in_(FINAL_STATUSES), ChatResponse.created_at < cutoff)))
    if not old:
        return 0
    db.execute(delete(ChatChunk).where(ChatChunk.response_id.in_(old)))
    db.execute(delete(ChatResponse).where(ChatResponse.id.in_(old)))
    return len(old)
