"""The chat API end to end with a scripted model: streamed text is filtered before anyone sees
it, any instance answers a poll, stop works, one turn per session, sessions resume only for
their owner, filter=none is for admins (audited), approvals are decided through the API by the
owner only, and writes denied or expired never run."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from hivematrix.brainhair import sessions
from hivematrix.brainhair.models import AuditEvent, ChatMessage, ChatSession
from hivematrix.codex import SERVICE as CODEX
from hivematrix.codex import create_app as create_codex
from hivematrix.common.db import Database
from hivematrix.common.testing import TokenFactory, migrated_database, serve_wsgi
from tests.brainhair.conftest import (
    Recorder,
    ScriptedBackend,
    Step,
    call,
    poll_until_done,
    say,
    text_of,
    wait_for_chunk,
    wait_for_stop,
)
from tests.codex import seeding

Headers = Callable[..., dict[str, str]]
RATE = {"account_number": "620547", "rate": "45.00"}


def start(client: FlaskClient, headers: dict[str, str], **body: Any) -> dict[str, Any]:
    answer = client.post("/api/chat", json={"message": "Hello", **body}, headers=headers)
    assert answer.status_code == 202, answer.get_json()
    result: dict[str, Any] = answer.get_json()
    return result


def stored(app: Flask, session_id: str) -> list[ChatMessage]:
    database: Database = app.extensions["hivematrix.db"]
    with database.transaction() as db:
        return list(db.query(ChatMessage).filter(ChatMessage.session_id == session_id)
                    .order_by(ChatMessage.id))


def audit(app: Flask) -> list[tuple[str, str]]:
    database: Database = app.extensions["hivematrix.db"]
    with database.transaction() as db:
        return [(e.event, e.actor) for e in db.query(AuditEvent).order_by(AuditEvent.id)]


def test_without_a_model_the_chat_says_so(client: FlaskClient, as_user: Headers,
                                          app: Flask) -> None:
    tech = as_user("technician")
    started = start(client, tech)
    chunks, last = poll_until_done(client, tech, started["response_id"])
    assert "No AI model is configured" in text_of(chunks)
    assert last["status"] == "done" and chunks[-1]["type"] == "done"
    messages = stored(app, started["session_id"])
    assert [m.role for m in messages] == ["user", "assistant"]
    assert "No AI model is configured" in messages[1].content


def test_streamed_text_is_filtered_before_it_is_shown_or_stored(
        make_app: Callable[..., Flask], as_user: Headers) -> None:
    backend = ScriptedBackend([[say("I called John"), say(" Smith at 555-867"), say("-5309 "),
                                say("about ticket T-1001.\n"), say("42")]])
    app = make_app(backend)
    client, tech = app.test_client(), as_user("technician")
    started = start(client, tech, message="Please call Mary Jones about it")
    chunks, _ = poll_until_done(client, tech, started["response_id"])
    shown = text_of(chunks)
    for chunk in chunks:
        assert "Smith" not in json.dumps(chunk) and "867" not in json.dumps(chunk)
    assert "John S." in shown and "T-1001" in shown
    assert chunks[-2] == {"seq": chunks[-2]["seq"], "type": "text", "text": "42"}
    assert "Jones" not in backend.messages[0]  # the model sees the user's message filtered
    user, reply = stored(app, started["session_id"])
    assert "Jones" not in user.content and user.was_filtered and user.filter_level == "phi"
    assert reply.content == shown and reply.was_filtered and reply.filter_level == "phi"


def test_a_second_instance_answers_the_poll_and_the_stop(
        make_app: Callable[..., Flask], as_user: Headers) -> None:
    first = make_app(ScriptedBackend([[say("Working on it. "), wait_for_stop(15),
                                       say("never shown")]]))
    second = make_app()
    tech = as_user("technician")
    started = start(first.test_client(), tech)
    other = second.test_client()
    # text is let out a sentence at a time (the space after it waits for the next one)
    assert wait_for_chunk(other, tech, started["response_id"], "text")["text"] == \
        "Working on it."
    stopped = other.post(f"/api/chat/stop/{started['response_id']}", headers=tech)
    assert stopped.status_code == 200
    chunks, last = poll_until_done(other, tech, started["response_id"])
    assert last["status"] == "stopped" and "never shown" not in text_of(chunks)
    assert {"type": "status", "text": "Stopped by the user."}.items() <= chunks[-2].items()
    again = other.post(f"/api/chat/stop/{started['response_id']}", headers=tech)
    assert again.status_code == 409


def test_one_running_turn_per_session_and_resume_only_by_the_owner(
        make_app: Callable[..., Flask], as_user: Headers) -> None:
    backend = ScriptedBackend([[wait_for_stop(15)], [say("Second answer.")]])
    app = make_app(backend)
    client = app.test_client()
    ann = as_user("technician", preferred_username="ann")
    bob = as_user("technician", preferred_username="bob")
    started = start(client, ann, message="First question")
    session_id = started["session_id"]
    busy = client.post("/api/chat", json={"message": "again", "session_id": session_id},
                       headers=ann)
    assert busy.status_code == 409 and "session_id" in busy.get_json()["errors"]["json"]
    hijack = client.post("/api/chat", json={"message": "mine?", "session_id": session_id},
                         headers=bob)
    assert hijack.status_code == 404
    assert client.get(f"/api/chat/poll/{started['response_id']}",
                      headers=bob).status_code == 404
    assert client.post(f"/api/chat/stop/{started['response_id']}",
                       headers=bob).status_code == 404
    client.post(f"/api/chat/stop/{started['response_id']}", headers=ann)
    poll_until_done(client, ann, started["response_id"])

    resumed = start(client, ann, message="Follow-up", session_id=session_id)
    assert resumed["session_id"] == session_id
    chunks, _ = poll_until_done(client, ann, resumed["response_id"])
    assert text_of(chunks) == "Second answer."
    history = backend.histories[1]
    assert [m.role for m in history] == ["user", "assistant"]
    assert history[0].content == "First question"
    assert [m.role for m in stored(app, session_id)] == ["user", "assistant"] * 2


def test_filter_none_is_for_admins_only_and_audited(make_app: Callable[..., Flask],
                                                    as_user: Headers) -> None:
    app = make_app(ScriptedBackend([[say("John Smith is the contact.")]]))
    client = app.test_client()
    refused = client.post("/api/chat", json={"message": "hi", "filter": "none"},
                          headers=as_user("technician"))
    assert refused.status_code == 403
    assert "filter" in refused.get_json()["errors"]["json"]
    bad = client.post("/api/chat", json={"message": "hi", "filter": "cjis"},
                      headers=as_user("admin"))
    assert bad.status_code == 422 and "filter" in bad.get_json()["errors"]["json"]
    with app.extensions["hivematrix.db"].transaction() as db:
        assert db.query(ChatSession).count() == 0  # nothing half-written

    admin = as_user("admin")
    started = start(client, admin, message="Show me Mary Jones", filter="none")
    chunks, _ = poll_until_done(client, admin, started["response_id"])
    assert text_of(chunks) == "John Smith is the contact."
    user, reply = stored(app, started["session_id"])
    assert user.content == "Show me Mary Jones" and user.filter_level == "none"
    assert not reply.was_filtered and reply.filter_level == "none"
    assert ("filter.none", "user-admin-user") in audit(app)
    trail = client.get("/api/audit?event=filter.none", headers=admin).get_json()
    assert trail["total"] == 1 and trail["events"][0]["session_id"] == started["session_id"]
    assert client.get("/api/audit", headers=as_user("technician")).status_code == 403


def test_client_users_and_services_are_refused(client: FlaskClient, as_user: Headers,
                                               tokens: TokenFactory) -> None:
    client_user = as_user("client", account_number="620547")
    service = tokens.headers(tokens.service("codex", "brainhair"))
    for headers in (client_user, service):
        assert client.post("/api/chat", json={"message": "hi"},
                           headers=headers).status_code == 403
        assert client.get("/api/approvals", headers=headers).status_code == 403
    assert client.post("/api/chat", json={"message": "hi"}).status_code == 401


def test_bad_input_names_the_field(client: FlaskClient, as_user: Headers) -> None:
    tech = as_user("technician")
    for body, field in (({}, "message"), ({"message": "  "}, "message"),
                        ({"message": "x" * 20_001}, "message"),
                        ({"message": "hi", "ticket_number": 5}, "ticket_number"),
                        ([1, 2], "body")):
        answer = client.post("/api/chat", json=body, headers=tech)
        assert answer.status_code == 422, body
        assert answer.content_type == "application/problem+json"
        assert field in answer.get_json()["errors"]["json"]
    bad_offset = client.get("/api/chat/poll/x?offset=-1", headers=tech)
    assert bad_offset.status_code == 400 and "offset" in bad_offset.get_json()["errors"]["query"]


# --- approvals through the API --------------------------------------------------------------

def write_turn(make_app: Callable[..., Flask], **settings: Any) -> tuple[Flask,
                                                                         ScriptedBackend]:
    backend = ScriptedBackend([[say("Changing the rate. "), call("set_rate", **RATE),
                                say("Finished.")]])
    return make_app(backend, **settings), backend


def test_an_approved_write_runs_once_and_forgeries_are_refused(
        make_app: Callable[..., Flask], as_user: Headers, recorder: Recorder) -> None:
    app, backend = write_turn(make_app)
    client = app.test_client()
    ann = as_user("billing", preferred_username="ann")
    bob = as_user("admin", preferred_username="bob")
    with app.extensions["hivematrix.db"].transaction() as db:  # Bob has a chat of his own
        sessions.create(db, {"sub": "user-bob", "preferred_username": "bob"})
    started = start(client, ann, message="Set Acme's rate to 45")
    asked = wait_for_chunk(client, ann, started["response_id"], "approval")
    assert asked["tool"] == "set_rate" and asked["details"]["rate"] == "45.00"
    inbox = client.get("/api/approvals", headers=ann).get_json()["approvals"]
    assert [a["id"] for a in inbox] == [asked["id"]]
    assert client.get("/api/approvals", headers=bob).get_json()["approvals"] == []

    decision = f"/api/approvals/{asked['id']}/decision"
    assert client.post(decision, json={"approved": True}, headers=bob).status_code == 404
    with app.extensions["hivematrix.db"].transaction() as db:  # another chat of Ann's
        anns_other = sessions.create(db, {"sub": "user-ann"}).id
    assert client.post(decision, json={"approved": True, "session_id": anns_other},
                       headers=ann).status_code == 404
    assert client.get(f"/api/approvals/{asked['id']}", headers=bob).status_code == 404
    guessed = f"/api/approvals/{asked['id'][:-2]}xy/decision"
    assert client.post(guessed, json={"approved": True}, headers=ann).status_code == 404
    missing = client.post(decision, json={}, headers=ann)
    assert missing.status_code == 422 and "approved" in missing.get_json()["errors"]["json"]
    assert client.post(decision, json={"approved": "yes"}, headers=ann).status_code == 422
    assert recorder.writes == []

    approved = client.post(decision, json={"approved": True,
                                           "session_id": started["session_id"]}, headers=ann)
    assert approved.status_code == 200 and approved.get_json()["status"] == "approved"
    assert client.post(decision, json={"approved": True}, headers=ann).status_code == 409
    chunks, last = poll_until_done(client, ann, started["response_id"])
    assert last["status"] == "done" and text_of(chunks).endswith("Finished.")
    assert recorder.writes == [RATE]
    assert not backend.results[0].is_error
    settled = [c for c in chunks if c["type"] == "status" and c.get("approval_id")]
    assert [(c["approval_id"], c["status"]) for c in settled] == [(asked["id"], "approved")]
    reply = stored(app, started["session_id"])[-1]
    assert reply.tool_calls is not None and reply.tool_calls[0]["name"] == "set_rate"
    assert reply.tool_results is not None and not reply.tool_results[0]["is_error"]
    assert [e for e, _ in audit(app) if e.startswith("approval.")] == [
        "approval.requested", "approval.approved"]


def test_a_denied_write_is_not_run(make_app: Callable[..., Flask], as_user: Headers,
                                   recorder: Recorder) -> None:
    app, backend = write_turn(make_app)
    client, ann = app.test_client(), as_user("billing", preferred_username="ann")
    started = start(client, ann)
    asked = wait_for_chunk(client, ann, started["response_id"], "approval")
    denied = client.post(f"/api/approvals/{asked['id']}/decision", json={"approved": False},
                         headers=ann)
    assert denied.get_json()["status"] == "denied"
    chunks, _ = poll_until_done(client, ann, started["response_id"])
    assert recorder.writes == []
    assert backend.results[0].is_error and "denied" in backend.results[0].content
    assert {"type": "status", "text": "Denied: nothing was changed."}.items() <= next(
        c for c in chunks if c["type"] == "status").items()


def test_an_expired_write_is_not_run(make_app: Callable[..., Flask], as_user: Headers,
                                     recorder: Recorder) -> None:
    app, backend = write_turn(make_app, BRAINHAIR_APPROVAL_SECONDS=0.5)
    client, ann = app.test_client(), as_user("billing", preferred_username="ann")
    started = start(client, ann)
    asked = wait_for_chunk(client, ann, started["response_id"], "approval")
    poll_until_done(client, ann, started["response_id"])
    assert backend.results[0].is_error and "expired" in backend.results[0].content
    late = client.post(f"/api/approvals/{asked['id']}/decision", json={"approved": True},
                       headers=ann)
    assert late.status_code == 409
    assert client.get(f"/api/approvals/{asked['id']}", headers=ann).get_json()["status"] == \
        "expired"
    time.sleep(0.1)
    assert recorder.writes == []
    assert ("approval.expired", "system") in audit(app)


# --- the company's compliance level, from Codex ---------------------------------------------

@pytest.fixture
def codex_url(service_settings: dict[str, Any], tmp_path: Path, hm_home: Path,
              as_user: Headers) -> Iterator[str]:
    """A real Codex over HTTP with a CJIS company and a HIPAA one."""
    url = f"sqlite:///{tmp_path}/codex.db"
    assert CODEX.migrations
    with migrated_database(CODEX.migrations, url):
        app = create_codex({**service_settings, "DATABASE_URL": url})
        client = app.test_client()
        seeding.company(client, as_user("admin"), "700001", "County Sheriff",
                        compliance_level="cjis")
        seeding.company(client, as_user("admin"), "700002", "Dental Clinic",
                        compliance_level="hipaa")
        with serve_wsgi(app) as base:
            (hm_home / "services.json").write_text(json.dumps({"codex": {"url": base}}))
            yield base
        app.extensions["hivematrix.db"].dispose()


def test_the_level_follows_the_companys_compliance_level(
        codex_url: str, make_app: Callable[..., Flask], as_user: Headers) -> None:
    backend = ScriptedBackend([[say("ok")], [say("ok")], [say("ok")]])
    app = make_app(backend)
    client, tech = app.test_client(), as_user("technician")
    levels = {}
    for account in ("700001", "700002", "799999"):
        started = start(client, tech, account_number=account,
                        message="Mail jane@example.com about it")
        poll_until_done(client, tech, started["response_id"])
        user = stored(app, started["session_id"])[0]
        levels[account] = (user.filter_level, "jane@example.com" in user.content)
    # CJIS keeps e-mail addresses (not in its set); PHI replaces them; an unknown company
    # gets the default (PHI)
    assert levels == {"700001": ("cjis", True), "700002": ("phi", False),
                      "799999": ("phi", False)}
    assert "CJIS" in backend.prompts[0]


def test_steps_are_plain_data() -> None:
    """The scripted model's steps compare by value (used to build scripts above)."""
    assert call("set_rate", **RATE) == Step("tool", tool="set_rate", input=RATE)


def test_a_silent_model_is_ended_but_waiting_for_an_approval_is_not_silence(
        make_app: Callable[..., Flask], as_user: Headers, recorder: Recorder) -> None:
    backend = ScriptedBackend([[say("Thinking. "), wait_for_stop(15), say("late")],
                               [call("set_rate", **RATE), say("Done.")]])
    app = make_app(backend, BRAINHAIR_TURN_IDLE_SECONDS=0.4)
    client, ann = app.test_client(), as_user("billing", preferred_username="ann")
    silent = start(client, ann)
    chunks, last = poll_until_done(client, ann, silent["response_id"])
    assert last["status"] == "error" and "no output" in last["error"]
    assert chunks[-2]["type"] == "error" and "late" not in text_of(chunks)

    waiting = start(client, ann, session_id=silent["session_id"])
    asked = wait_for_chunk(client, ann, waiting["response_id"], "approval")
    time.sleep(0.8)  # twice the idle limit, spent waiting for the human
    assert client.post(f"/api/approvals/{asked['id']}/decision", json={"approved": True},
                       headers=ann).status_code == 200
    chunks, last = poll_until_done(client, ann, waiting["response_id"])
    assert last["status"] == "done" and text_of(chunks) == "Done."
    assert recorder.writes == [RATE]


def test_the_idle_job_runs_in_a_thread_outside_tests(make_app: Callable[..., Flask]) -> None:
    tested = make_app()
    assert "brainhair.idle_closer" not in tested.extensions
    live = make_app(TESTING=False, BRAINHAIR_SCHEDULER=True)
    closer = live.extensions["brainhair.idle_closer"]
    try:
        assert closer.thread.is_alive()
    finally:
        closer.stop()
        closer.thread.join(5)
    assert not closer.thread.is_alive()


def test_the_model_titles_the_chat_and_tool_results_are_stored_filtered(
        make_app: Callable[..., Flask], as_user: Headers, tokens: TokenFactory) -> None:
    backend = ScriptedBackend([[call("lookup_company", account_number="620547"),
                                say("Acme's contact is John S."),
                                call("set_chat_title", title="Acme contact lookup")]])
    app = make_app(backend)
    client = app.test_client()
    token = tokens.user("technician", preferred_username="ann")
    ann = tokens.headers(token)
    started = start(client, ann)
    chunks, _ = poll_until_done(client, ann, started["response_id"])
    assert [(c["phase"], c["tool"]) for c in chunks if c["type"] == "tool"] == [
        ("start", "lookup_company"), ("end", "lookup_company"),
        ("start", "set_chat_title"), ("end", "set_chat_title")]
    assert "set_chat_title" in backend.offered[0] and "admin_only_read" not in backend.offered[0]
    session = client.get(f"/api/sessions/{started['session_id']}", headers=ann).get_json()
    assert session["title"] == "Acme contact lookup"
    reply = session["messages"][-1]
    assert [c["name"] for c in reply["tool_calls"]] == ["lookup_company", "set_chat_title"]
    assert "620547" in reply["tool_results"][0]["output"]
    assert "Smith" not in json.dumps(reply) and reply["was_filtered"] is True

    # the user's token is only ever in the worker's memory, never in the database
    database: Database = app.extensions["hivematrix.db"]
    with database.engine.connect() as connection:
        from hivematrix.brainhair.models import Base

        for table in Base.metadata.sorted_tables:
            for row in connection.execute(table.select()):
                assert token not in repr(tuple(row)), table.name


def test_the_platforms_tools_load_by_default(make_app: Callable[..., Flask],
                                             as_user: Headers) -> None:
    backend = ScriptedBackend([[say("ok")]])
    app = make_app(backend)
    del app.extensions["brainhair.registry"]  # what a deployment has: every tool
    client, tech = app.test_client(), as_user("technician")
    started = start(client, tech)
    poll_until_done(client, tech, started["response_id"])
    offered = backend.offered[0]
    assert "set_chat_title" in offered and len(offered) > 5
    assert offered.count("set_chat_title") == 1


def test_polling_is_not_rate_limited(make_app: Callable[..., Flask], as_user: Headers) -> None:
    app = make_app(ScriptedBackend([[say("ok")]]), RATELIMIT_DEFAULT="5 per minute")
    client, tech = app.test_client(), as_user("technician")
    started = client.post("/api/chat", json={"message": "hi"}, headers=tech).get_json()
    for _ in range(12):
        assert client.get(f"/api/chat/poll/{started['response_id']}",
                          headers=tech).status_code == 200
    statuses = {client.get("/api/sessions", headers=tech).status_code for _ in range(6)}
    assert 429 in statuses


def test_an_unfiltered_turn_is_filtered_again_for_a_later_filtered_one(
        make_app: Callable[..., Flask], as_user: Headers) -> None:
    backend = ScriptedBackend([[say("Noted.")], [say("Noted.")]])
    app = make_app(backend)
    client, admin = app.test_client(), as_user("admin")
    first = start(client, admin, message="The caller was Mary Jones", filter="none")
    poll_until_done(client, admin, first["response_id"])
    second = start(client, admin, message="Who called?", session_id=first["session_id"])
    poll_until_done(client, admin, second["response_id"])
    assert backend.histories[1][0].content != "The caller was Mary Jones"
    assert "Jones" not in backend.histories[1][0].content
    assert stored(app, first["session_id"])[0].content == "The caller was Mary Jones"


def test_two_server_processes_share_a_turn(hm_home: Path, pg_url: str, fake_core: Any,
                                           as_user: Headers) -> None:
    """Started on one gunicorn server, polled, listed and stopped-checked on another: every
    piece of a turn's state is in the shared database, none in a process."""
    import httpx

    from hivematrix.brainhair import SERVICE as BRAINHAIR
    from hivematrix.common.testing import ServiceProcess, free_port

    assert BRAINHAIR.migrations
    port = free_port()
    (hm_home / "services.json").write_text(json.dumps(
        {"brainhair": {"url": f"http://127.0.0.1:{port}", "port": port}}))
    env = {"BRAINHAIR_DATABASE_URL": pg_url, "CORE_SERVICE_URL": fake_core.url,
           "SECRET_KEY": "process-test-secret", "BRAINHAIR_SCHEDULER": "false",
           "LOG_SHIPPING": "false"}
    tech = as_user("technician")
    with migrated_database(BRAINHAIR.migrations, pg_url), \
            ServiceProcess("brainhair", hm_home, port=port, env=env) as first, \
            ServiceProcess("brainhair", hm_home, env=env) as second:
        answer = httpx.post(f"{first.url}/api/chat", json={"message": "Hello"}, headers=tech,
                            timeout=30)
        assert answer.status_code == 202, answer.text
        started = answer.json()
        text, offset, body = "", 0, {}
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            body = httpx.get(f"{second.url}/api/chat/poll/{started['response_id']}",
                             params={"offset": offset}, headers=tech, timeout=30).json()
            text += "".join(c["text"] for c in body["chunks"] if c["type"] == "text")
            offset = body["offset"]
            if body["done"]:
                break
            time.sleep(0.1)
        assert body.get("done"), first.log() + second.log()
        assert "No AI model is configured" in text
        listed = httpx.get(f"{second.url}/api/sessions", headers=tech, timeout=30).json()
        assert [s["id"] for s in listed["sessions"]] == [started["session_id"]]
        assert listed["sessions"][0]["message_count"] == 2
        late_stop = httpx.post(f"{second.url}/api/chat/stop/{started['response_id']}",
                               headers=tech, timeout=30)
        assert late_stop.status_code == 409


def test_titles_and_initials_do_not_split_a_name_from_the_filter() -> None:
    from hivematrix.brainhair.chat import StreamFilter

    stream = StreamFilter("phi")
    shown = [stream.feed(piece) for piece in ("Please ask Mr.", " Smith and John S.",
                                              " Smith today. ", "Thanks.")]
    shown.append(stream.flush())
    assert "Smith" not in "".join(shown)
    assert shown[:2] == ["", ""]  # nothing let out before the sentence is complete
    assert stream.text == "".join(shown)


def test_the_backend_is_chosen_by_setting() -> None:
    from hivematrix.brainhair.backends.none import NOT_CONFIGURED, NoneBackend
    from hivematrix.brainhair.backends.select import make_backend

    none = make_backend({"BRAINHAIR_BACKEND": "none"})
    assert isinstance(none, NoneBackend) and none.reason == NOT_CONFIGURED
    wrong = make_backend({"BRAINHAIR_BACKEND": "gpt-9"})
    assert isinstance(wrong, NoneBackend) and "'gpt-9'" in wrong.reason
    assert make_backend({"BRAINHAIR_BACKEND": "claude-cli"}).name != "none"
