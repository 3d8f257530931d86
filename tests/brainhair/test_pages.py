"""Brainhair's pages as a browser without script gets them: the chat form, the stored
transcript (a model's markup shown as text), history with search, and the approvals inbox
deciding a waiting write with a CSRF-protected form."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

from flask import Flask

from hivematrix.brainhair import sessions
from hivematrix.brainhair.pages import HISTORY_PAGE
from hivematrix.common.testing import HTML, csrf_of, get_page, submit_form
from tests.brainhair.conftest import Recorder, ScriptedBackend, call, say

TECH = {"sub": "user-tina", "preferred_username": "tina"}
OTHER = {"sub": "user-olga", "preferred_username": "olga"}


def wait_until(check: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError("the condition never held")


def send(client: Any, headers: dict[str, str], message: str,
         session_id: str = "") -> str:
    """Post the chat form; returns the session id the redirect names."""
    answer = submit_form(client, headers, "/chat", {"message": message,
                                                    "session_id": session_id}, "/")
    assert answer.status_code == 303, answer.get_data(as_text=True)[:2000]
    found = re.search(r"session=([0-9a-f-]{36})", answer.headers["Location"])
    assert found
    return found.group(1)


def finished(client: Any, headers: dict[str, str], session_id: str) -> bool:
    return 'data-testid="running"' not in get_page(client, headers, f"/chat?session={session_id}")


def test_the_chat_form_stores_the_reply_and_shows_markup_as_text(
        make_app: Callable[..., Flask], as_user: Callable[..., dict[str, str]]) -> None:
    backend = ScriptedBackend([[say("**Done.** Here is <img src=x onerror=alert(1)> as "
                                    "requested.\n")]])
    client = make_app(backend=backend).test_client()
    tech = as_user("technician", **TECH)

    page = get_page(client, tech, "/")
    assert "New chat" in page and 'data-chat-form' in page
    session_id = send(client, tech, "Summarise the <b>printer</b> ticket")
    wait_until(lambda: finished(client, tech, session_id))

    page = get_page(client, tech, f"/chat?session={session_id}")
    # The user's words escaped, the reply's markdown rendered and its markup left as text.
    assert "Summarise the &lt;b&gt;printer&lt;/b&gt; ticket" in page
    assert "<strong>Done.</strong>" in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page
    assert "<img src=x" not in page and 'onerror="' not in page
    fragment = get_page(client, tech, f"/chat/transcript/{session_id}")
    assert fragment.count('data-testid="message"') == 2
    assert backend.messages == ["Summarise the <b>printer</b> ticket"]


def test_a_message_needs_text_and_the_page_says_so(
        make_app: Callable[..., Flask], as_user: Callable[..., dict[str, str]]) -> None:
    client = make_app(backend=ScriptedBackend([])).test_client()
    tech = as_user("technician", **TECH)
    answer = submit_form(client, tech, "/chat", {"message": "   "}, "/")
    assert answer.status_code == 422
    page = answer.get_data(as_text=True)
    assert 'class="form__error"' in page and "message" in page


def test_the_form_without_a_token_is_refused(
        make_app: Callable[..., Flask], as_user: Callable[..., dict[str, str]]) -> None:
    backend = ScriptedBackend([[say("never")]])
    client = make_app(backend=backend).test_client()
    answer = client.post("/chat", headers={**HTML, **as_user("technician", **TECH)},
                         data={"message": "hello"})
    assert answer.status_code == 400
    assert backend.messages == []


def test_another_users_chat_is_not_found_and_client_users_are_refused(
        make_app: Callable[..., Flask], as_user: Callable[..., dict[str, str]]) -> None:
    client = make_app(backend=ScriptedBackend([[say("Private answer.")]])).test_client()
    tech = as_user("technician", **TECH)
    session_id = send(client, tech, "my question")
    wait_until(lambda: finished(client, tech, session_id))

    other = as_user("technician", **OTHER)
    page = get_page(client, other, f"/chat?session={session_id}", status=404)
    assert "Private answer" not in page
    get_page(client, other, f"/chat/transcript/{session_id}", status=404)
    get_page(client, as_user("client", sub="user-carl", account_number="620547"), "/",
             status=403)


def test_history_lists_and_searches_only_my_chats(
        make_app: Callable[..., Flask], as_user: Callable[..., dict[str, str]]) -> None:
    backend = ScriptedBackend([[say("About printers.")], [say("About backups.")],
                               [say("Olga's answer.")]])
    client = make_app(backend=backend).test_client()
    tech = as_user("technician", **TECH)
    first = send(client, tech, "the printer jams")
    wait_until(lambda: finished(client, tech, first))
    second = send(client, tech, "backup failed")
    wait_until(lambda: finished(client, tech, second))
    other = as_user("technician", **OTHER)
    theirs = send(client, other, "the printer again")
    wait_until(lambda: finished(client, other, theirs))

    page = get_page(client, tech, "/history")
    assert page.count('data-testid="session"') == 2
    assert theirs not in page
    page = get_page(client, tech, "/history?q=printer")
    assert page.count('data-testid="session"') == 1 and first in page
    assert "No chat matches" in get_page(client, tech, "/history?q=nothing-like-this")


def test_history_pages_through_many_chats(
        make_app: Callable[..., Flask], as_user: Callable[..., dict[str, str]]) -> None:
    app = make_app()
    with app.extensions["hivematrix.db"].transaction() as db:
        for n in range(HISTORY_PAGE + 2):
            sessions.create(db, TECH, title=f"Chat number {n:02d}")
        sessions.create(db, OTHER, title="Someone else's chat")
    client, tech = app.test_client(), as_user("technician", **TECH)

    first = get_page(client, tech, "/history")
    assert first.count('data-testid="session"') == HISTORY_PAGE
    assert f"Showing 1\u2013{HISTORY_PAGE} of {HISTORY_PAGE + 2} chats." in first
    assert 'href="/history?page=2" rel="next"' in first
    second = get_page(client, tech, "/history?page=2")
    assert second.count('data-testid="session"') == 2
    assert f"Showing {HISTORY_PAGE + 1}\u2013{HISTORY_PAGE + 2} of {HISTORY_PAGE + 2}" in second
    assert "Someone else" not in first + second
    # Past the end: the last page, not an empty table; nonsense: the first.
    last = get_page(client, tech, "/history?page=9")
    assert 'aria-current="page">2<' in last and last.count('data-testid="session"') == 2
    assert get_page(client, tech, "/history?page=-3").count('data-testid="session"') == 25
    # The search is kept in the page links.
    searched = get_page(client, tech, "/history?q=number")
    assert 'href="/history?q=number&amp;page=2"' in searched


def test_the_inbox_decides_a_waiting_write(
        make_app: Callable[..., Flask], as_user: Callable[..., dict[str, str]],
        recorder: Recorder) -> None:
    backend = ScriptedBackend([[call("set_rate", account_number="620547", rate="45.00"),
                                say("Rate updated.")]])
    client = make_app(backend=backend).test_client()
    tech = as_user("technician", **TECH)
    session_id = send(client, tech, "set Acme's per-user rate to 45")
    wait_until(lambda: 'data-testid="approval"' in get_page(client, tech, "/approvals"))

    inbox = get_page(client, tech, "/approvals")
    assert "Set the per-user rate of 620547 to 45.00" in inbox
    assert 'data-testid="pending-count">1<' in inbox
    # Another user sees nothing to decide, and cannot decide it with their own form token.
    other = as_user("technician", **OTHER)
    assert 'data-testid="no-approvals"' in get_page(client, other, "/approvals")
    approval_id = re.search(r'action="/approvals/([^"]+)"', inbox)
    assert approval_id
    refused = client.post(f"/approvals/{approval_id.group(1)}", headers={**HTML, **other},
                          data={"csrf_token": csrf_of(get_page(client, other, "/")),
                                "decision": "approve"})
    assert refused.status_code == 404
    assert recorder.writes == []

    answer = submit_form(client, tech, f"/approvals/{approval_id.group(1)}",
                         {"decision": "approve"}, "/approvals")
    assert answer.status_code == 303 and "decided=approved" in answer.headers["Location"]
    wait_until(lambda: finished(client, tech, session_id))
    assert recorder.writes == [{"account_number": "620547", "rate": "45.00"}]
    assert "The change was approved." in get_page(client, tech, "/approvals?decided=approved")
    # A replayed decision is refused.
    again = submit_form(client, tech, f"/approvals/{approval_id.group(1)}",
                        {"decision": "deny"}, "/")
    assert again.status_code == 409


def test_the_poll_renders_the_reply_so_far_as_sanitised_html(
        make_app: Callable[..., Flask], as_user: Callable[..., dict[str, str]]) -> None:
    backend = ScriptedBackend([[say("**Bold** claim. "), say("<img src=x onerror=alert(1)> "
                                                              "stays text.\n")]])
    client = make_app(backend=backend).test_client()
    tech = as_user("technician", **TECH)
    started = client.post("/api/chat", json={"message": "hello"}, headers=tech).get_json()
    path = f"/api/chat/poll/{started['response_id']}"
    wait_until(lambda: client.get(path, headers=tech).get_json()["done"])
    body = client.get(f"{path}?render=html", headers=tech).get_json()
    assert body["html"].startswith("<p><strong>Bold</strong> claim. &lt;img src=x onerror=")
    assert "<img" not in body["html"]
    # Asked from an offset, the html is still everything before the answer's offset.
    later = client.get(f"{path}?offset={body['offset']}&render=html", headers=tech).get_json()
    assert later["chunks"] == [] and later["html"] == body["html"]
    refused = client.get(f"{path}?render=markdown", headers=tech)
    assert refused.status_code == 400
    assert refused.get_json()["errors"] == {"query": {"render": [
        "render: the only choice is html"]}}
