"""The chunk buffer: numbered chunks in the database, payloads always objects, read from any
offset, finished with everything visible, purged when old."""

from __future__ import annotations

from datetime import timedelta

import pytest

from hivematrix.brainhair import buffer, sessions
from hivematrix.brainhair.errors import BrainhairError
from hivematrix.brainhair.models import ChatChunk
from hivematrix.common.db import Database, utcnow

USER = {"sub": "user-ann", "preferred_username": "ann", "permission_level": "technician"}


def new_response(database: Database) -> tuple[str, str]:
    with database.transaction() as db:
        session = sessions.create(db, USER)
        response = buffer.create(db, session.id, "user-ann")
        return session.id, response.id


def test_chunks_are_numbered_from_zero_and_read_from_an_offset(brainhair_db: Database) -> None:
    _, response_id = new_response(brainhair_db)
    with brainhair_db.transaction() as db:
        assert buffer.append(db, response_id, "text", {"text": "Hello"}) == 0
        assert buffer.append(db, response_id, "tool", {"phase": "start", "tool": "x"}) == 1
        assert buffer.append(db, response_id, "text", {"text": " there."}) == 2
    with brainhair_db.transaction() as db:
        assert [c["seq"] for c in buffer.read(db, response_id)] == [0, 1, 2]
        later = buffer.read(db, response_id, 1)
    assert later == [{"seq": 1, "type": "tool", "phase": "start", "tool": "x"},
                     {"seq": 2, "type": "text", "text": " there."}]


def test_a_text_that_looks_like_json_stays_text_in_an_object(brainhair_db: Database) -> None:
    """Upstream stored the delta "42" as a bare number and the next poll failed."""
    _, response_id = new_response(brainhair_db)
    with brainhair_db.transaction() as db:
        for delta in ("42", "null", "true", '{"type": "approval"}'):
            buffer.append(db, response_id, "text", {"text": delta})
    with brainhair_db.transaction() as db:
        chunks = buffer.read(db, response_id)
        stored = [row.payload for row in db.query(ChatChunk).order_by(ChatChunk.seq)]
    assert [c["text"] for c in chunks] == ["42", "null", "true", '{"type": "approval"}']
    assert all(c["type"] == "text" for c in chunks)
    assert all(isinstance(payload, dict) for payload in stored)


def test_payloads_must_be_objects_without_reserved_keys(brainhair_db: Database) -> None:
    _, response_id = new_response(brainhair_db)
    with brainhair_db.transaction() as db:
        with pytest.raises(TypeError):
            buffer.append(db, response_id, "text", "42")  # type: ignore[arg-type]
        with pytest.raises(ValueError):
            buffer.append(db, response_id, "text", {"type": "done"})
        with pytest.raises(ValueError):
            buffer.append(db, response_id, "shout", {"text": "x"})


def test_poll_is_done_only_when_finished_and_then_has_everything(
        brainhair_db: Database) -> None:
    session_id, response_id = new_response(brainhair_db)
    with brainhair_db.transaction() as db:
        buffer.append(db, response_id, "text", {"text": "a"})
    with brainhair_db.transaction() as db:
        first = buffer.poll(db, response_id, "user-ann", 0)
    assert first["done"] is False and first["status"] == "running"
    assert first["offset"] == 1 and first["session_id"] == session_id
    with brainhair_db.transaction() as db:
        buffer.append(db, response_id, "text", {"text": "b"})
        buffer.append(db, response_id, "done", {"status": "done"})
        buffer.finish(db, response_id, "done")
    with brainhair_db.transaction() as db:
        second = buffer.poll(db, response_id, "user-ann", first["offset"])
    assert second["done"] is True
    assert [c["type"] for c in second["chunks"]] == ["text", "done"]
    assert second["offset"] == 3
    with brainhair_db.transaction() as db:
        again = buffer.poll(db, response_id, "user-ann", 3)
    assert again["chunks"] == [] and again["offset"] == 3 and again["done"] is True


def test_another_users_response_is_not_found(brainhair_db: Database) -> None:
    _, response_id = new_response(brainhair_db)
    with brainhair_db.transaction() as db:
        for who, rid in (("user-bob", response_id), ("user-ann", "guessed-id")):
            with pytest.raises(BrainhairError) as refused:
                buffer.poll(db, rid, who, 0)
            assert refused.value.status == 404
        with pytest.raises(BrainhairError) as refused:
            buffer.request_stop(db, response_id, "user-bob")
        assert refused.value.status == 404


def test_stop_only_while_running(brainhair_db: Database) -> None:
    _, response_id = new_response(brainhair_db)
    with brainhair_db.transaction() as db:
        assert buffer.request_stop(db, response_id, "user-ann").stop_requested
    with brainhair_db.transaction() as db:
        assert buffer.stop_requested(db, response_id)
        buffer.finish(db, response_id, "stopped")
    with brainhair_db.transaction() as db, pytest.raises(BrainhairError) as refused:
        buffer.request_stop(db, response_id, "user-ann")
    assert refused.value.status == 409


def test_purge_removes_old_finished_responses_only(brainhair_db: Database) -> None:
    _, old = new_response(brainhair_db)
    _, running = new_response(brainhair_db)
    with brainhair_db.transaction() as db:
        buffer.append(db, old, "text", {"text": "x"})
        buffer.finish(db, old, "done")
    later = utcnow() + timedelta(hours=2)
    with brainhair_db.transaction() as db:
        assert buffer.purge(db, timedelta(hours=1), now=later) == 1
    with brainhair_db.transaction() as db:
        assert db.query(ChatChunk).count() == 0
        with pytest.raises(BrainhairError):
            buffer.get(db, old, "user-ann")
        assert buffer.get(db, running, "user-ann").status == "running"


def test_a_long_reply_is_read_in_pages_and_done_only_on_the_last(brainhair_db: Database) -> None:
    _, response_id = new_response(brainhair_db)
    with brainhair_db.transaction() as db:
        for number in range(buffer.MAX_READ + 3):
            buffer.append(db, response_id, "text", {"text": str(number)})
        buffer.finish(db, response_id, "done")
    with brainhair_db.transaction() as db:
        first = buffer.poll(db, response_id, "user-ann", 0)
        second = buffer.poll(db, response_id, "user-ann", first["offset"])
    assert len(first["chunks"]) == buffer.MAX_READ and first["done"] is False
    assert [c["text"] for c in second["chunks"]] == [str(n) for n in range(500, 503)]
    assert second["done"] is True and second["offset"] == buffer.MAX_READ + 3
