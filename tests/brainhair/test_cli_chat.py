"""The chat API with the real Claude Code CLI backend, driven by the stand-in ``claude``.

Every tool call goes API turn -> stand-in CLI -> MCP (stdio) -> bridge -> tool socket -> the
turn's executor (levels, schema validation, filtering, approvals) and back, so these are the
chat's read and write flows with nothing of Brainhair replaced.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from flask import Flask
from flask.testing import FlaskClient

from hivematrix.brainhair.backends.claude_cli import ClaudeCliBackend
from hivematrix.brainhair.models import ChatMessage
from hivematrix.common.db import Database
from tests.brainhair.conftest import Recorder, poll_until_done, text_of, wait_for_chunk
from tests.fakes import claude_cli as fake

Headers = Callable[..., dict[str, str]]
RATE = {"account_number": "620547", "rate": "45.00"}


def _app(make_app: Callable[..., Flask], tmp_path: Path, steps: list[dict[str, Any]]) -> Flask:
    wrapper = fake.install(tmp_path, {"steps": steps})
    return make_app(ClaudeCliBackend(executable=str(wrapper), install_dir=None))


def _start(client: FlaskClient, headers: dict[str, str], message: str) -> dict[str, Any]:
    answer = client.post("/api/chat", json={"message": message}, headers=headers)
    assert answer.status_code == 202, answer.get_json()
    result: dict[str, Any] = answer.get_json()
    return result


def _reply(app: Flask, session_id: str) -> ChatMessage:
    database: Database = app.extensions["hivematrix.db"]
    with database.transaction() as db:
        return db.query(ChatMessage).filter(ChatMessage.session_id == session_id) \
            .order_by(ChatMessage.id.desc()).first()


def test_a_read_question_is_answered_from_filtered_tool_data(
        make_app: Callable[..., Flask], as_user: Headers, tmp_path: Path) -> None:
    app = _app(make_app, tmp_path, [
        {"tool": "lookup_company", "input": {"account_number": "620547"}},
        {"say_from_result": "Account {account_number}, ticket {ticket_number}: "
                            "contact {contact}."},
    ])
    client = app.test_client()
    ann = as_user("technician", preferred_username="ann")
    started = _start(client, ann, "-p Who is the contact for 620547?")
    chunks, last = poll_until_done(client, ann, started["response_id"], timeout=60)
    assert last["status"] == "done", chunks
    text = text_of(chunks)
    # The model saw the filtered result (a name shortened), identifiers intact.
    assert "Account 620547, ticket T-1001" in text
    assert "John S." in text and "Smith" not in text
    tools = [chunk for chunk in chunks if chunk["type"] == "tool"]
    assert [(c["phase"], c["tool"]) for c in tools] == [("start", "lookup_company"),
                                                        ("end", "lookup_company")]
    seen = fake.record_of(tmp_path / "claude")
    assert not any("Who is the contact" in arg for arg in seen["argv"])
    reply = _reply(app, started["session_id"])
    assert reply.role == "assistant" and "Smith" not in reply.content


def test_an_approved_write_runs_once(make_app: Callable[..., Flask], as_user: Headers,
                                     recorder: Recorder, tmp_path: Path) -> None:
    app = _app(make_app, tmp_path, [
        {"tool": "set_rate", "input": RATE, "say_before": "Changing the rate. "},
        {"say": "Finished."},
    ])
    client = app.test_client()
    ann = as_user("billing", preferred_username="ann")
    started = _start(client, ann, "Set Acme's rate to 45")
    asked = wait_for_chunk(client, ann, started["response_id"], "approval", timeout=60)
    assert asked["tool"] == "set_rate" and recorder.writes == []
    decided = client.post(f"/api/approvals/{asked['id']}/decision", json={"approved": True},
                          headers=ann)
    assert decided.status_code == 200
    chunks, last = poll_until_done(client, ann, started["response_id"], timeout=60)
    assert last["status"] == "done" and text_of(chunks).endswith("Finished.")
    assert recorder.writes == [RATE]
    ends = [c for c in chunks if c["type"] == "tool" and c["phase"] == "end"]
    assert len(ends) == 1 and ends[0]["is_error"] is False


def test_a_denied_write_is_not_run(make_app: Callable[..., Flask], as_user: Headers,
                                   recorder: Recorder, tmp_path: Path) -> None:
    app = _app(make_app, tmp_path, [
        {"tool": "set_rate", "input": RATE},
        {"say_from_result": "The change was not made: {result}"},
    ])
    client = app.test_client()
    ann = as_user("billing", preferred_username="ann")
    started = _start(client, ann, "Set Acme's rate to 45")
    asked = wait_for_chunk(client, ann, started["response_id"], "approval", timeout=60)
    client.post(f"/api/approvals/{asked['id']}/decision", json={"approved": False},
                headers=ann)
    chunks, last = poll_until_done(client, ann, started["response_id"], timeout=60)
    assert last["status"] == "done", (last, chunks)
    assert recorder.writes == []
    assert "not made" in text_of(chunks) and "denied" in text_of(chunks)
    ends = [c for c in chunks if c["type"] == "tool" and c["phase"] == "end"]
    assert ends[0]["is_error"] is True
