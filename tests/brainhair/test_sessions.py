"""Sessions: the owner's only, searched over titles and messages, retitled and closed by the
owner, closed when idle by exactly one process however many try."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient

from hivematrix.brainhair import buffer, sessions
from hivematrix.brainhair.errors import BrainhairError
from hivematrix.brainhair.models import ChatMessage, ChatSession
from hivematrix.common.db import Database, utcnow
from hivematrix.common.testing import TokenFactory

ANN = {"sub": "user-ann", "preferred_username": "ann", "name": "Ann", "permission_level": "admin"}
BOB = {"sub": "user-bob", "preferred_username": "bob", "permission_level": "technician"}
SERVICE = {"sub": "service:codex", "type": "service", "calling_service": "codex"}


def test_another_users_session_is_not_found(brainhair_db: Database) -> None:
    with brainhair_db.transaction() as db:
        session = sessions.create(db, ANN, ticket_number="T-9")
    with brainhair_db.transaction() as db:
        assert sessions.get(db, session.id, ANN).ticket_number == "T-9"
        for action in (lambda: sessions.get(db, session.id, BOB),
                       lambda: sessions.set_title(db, session.id, BOB, "Mine now"),
                       lambda: sessions.close(db, session.id, BOB),
                       lambda: sessions.get(db, "no-such-session", ANN)):
            with pytest.raises(BrainhairError) as refused:
                action()
            assert refused.value.status == 404


def test_service_tokens_own_nothing_and_cannot_retitle(brainhair_db: Database) -> None:
    with brainhair_db.transaction() as db:
        session = sessions.create(db, ANN)
    with brainhair_db.transaction() as db:
        with pytest.raises(BrainhairError) as refused:
            sessions.set_title(db, session.id, SERVICE, "Hijacked")
        assert refused.value.status == 403
        assert sessions.get(db, session.id, ANN).title == ""


def add_message(database: Database, session_id: str, content: str, minutes_ago: int) -> None:
    with database.transaction() as db:
        db.add(ChatMessage(session_id=session_id, role="user", content=content,
                           filter_level="phi"))
        row = db.get(ChatSession, session_id)
        assert row is not None
        row.updated_at = utcnow() - timedelta(minutes=minutes_ago)


def test_list_is_newest_first_paged_and_searches_titles_and_messages(
        brainhair_db: Database) -> None:
    ids = []
    with brainhair_db.transaction() as db:
        for title in ("Printer jam", "Backup failing", "VPN setup"):
            ids.append(sessions.create(db, ANN, title=title).id)
        sessions.create(db, BOB, title="Backup of Bob")
    add_message(brainhair_db, ids[0], "the printer on floor 2", 30)
    add_message(brainhair_db, ids[1], "Veeam job fails at 100%_done", 20)
    add_message(brainhair_db, ids[2], "the backup tunnel drops", 10)
    with brainhair_db.transaction() as db:
        rows, total = sessions.list_sessions(db, ANN)
        assert [r.title for r in rows] == ["VPN setup", "Backup failing", "Printer jam"]
        assert total == 3
        page, total = sessions.list_sessions(db, ANN, limit=1, offset=1)
        assert [r.title for r in page] == ["Backup failing"] and total == 3
        found, total = sessions.list_sessions(db, ANN, q="BACKUP")
        # title match and message match, never Bob's session
        assert [r.title for r in found] == ["VPN setup", "Backup failing"] and total == 2
        # LIKE wildcards in the query are literal
        literal, _ = sessions.list_sessions(db, ANN, q="100%_d")
        assert [r.title for r in literal] == ["Backup failing"]
        assert sessions.list_sessions(db, ANN, q="a%p")[1] == 0  # unescaped: "Backup"


def test_set_title_and_close(brainhair_db: Database) -> None:
    with brainhair_db.transaction() as db:
        session = sessions.create(db, ANN)
    with brainhair_db.transaction() as db:
        assert sessions.set_title(db, session.id, ANN, "  Acme   backup  review ").title == \
            "Acme backup review"
        with pytest.raises(BrainhairError) as refused:
            sessions.set_title(db, session.id, ANN, "")
        assert refused.value.field == "title"
        closed = sessions.close(db, session.id, ANN)
        assert closed.status == "closed" and closed.ended_at is not None


def test_idle_sessions_close_exactly_once_with_two_claimers(brainhair_db_url: str) -> None:
    first, second = Database(brainhair_db_url), Database(brainhair_db_url)
    try:
        with first.transaction() as db:
            idle = sessions.create(db, ANN)
            busy = sessions.create(db, ANN)
            fresh = sessions.create(db, BOB)
            idle.updated_at = busy.updated_at = utcnow() - timedelta(minutes=45)
            response = buffer.create(db, busy.id, ANN["sub"])
            busy.running_response_id = response.id
        barrier = threading.Barrier(2)
        results: dict[str, int | None] = {}

        def claim(name: str, database: Database) -> None:
            barrier.wait()
            results[name] = sessions.close_idle(database, 30, holder=name)

        threads = [threading.Thread(target=claim, args=(name, database))
                   for name, database in (("a", first), ("b", second))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert sorted(results.values(), key=lambda v: -1 if v is None else v) == [None, 1]
        with first.transaction() as db:
            assert db.get(ChatSession, idle.id).status == "closed"  # type: ignore[union-attr]
            assert db.get(ChatSession, busy.id).status == "active"  # type: ignore[union-attr]
            assert db.get(ChatSession, fresh.id).status == "active"  # type: ignore[union-attr]
        # within the lease nobody runs it again; after it, one does
        assert sessions.close_idle(second, 30, holder="b") is None
        later = utcnow() + timedelta(minutes=2)
        assert sessions.close_idle(second, 30, holder="b", now=later) == 0
    finally:
        first.dispose()
        second.dispose()


def test_a_turn_abandoned_by_a_dead_worker_frees_its_session(brainhair_db: Database) -> None:
    with brainhair_db.transaction() as db:
        session = sessions.create(db, ANN)
        response = buffer.create(db, session.id, ANN["sub"])
        response.created_at = utcnow() - timedelta(hours=2)
        session.running_response_id = response.id
    sessions.close_idle(brainhair_db, 30, holder="x")
    with brainhair_db.transaction() as db:
        assert db.get(ChatSession, session.id).running_response_id is None  # type: ignore[union-attr]
        assert buffer.get(db, response.id, ANN["sub"]).status == "error"


# --- the API --------------------------------------------------------------------------------

def test_sessions_api(app: Flask, client: FlaskClient, tokens: TokenFactory,
                      as_user: Callable[..., dict[str, str]]) -> None:
    ann = as_user("technician", preferred_username="ann")
    bob = as_user("technician", preferred_username="bob")
    database: Database = app.extensions["hivematrix.db"]
    with database.transaction() as db:
        mine = sessions.create(db, {"sub": "user-ann", "preferred_username": "ann"},
                               title="Acme printers")
        sessions.create(db, {"sub": "user-bob"}, title="Bob's")
    add_message(database, mine.id, "toner for the Acme printer", 1)

    listed = client.get("/api/sessions?q=toner", headers=ann).get_json()
    assert [s["id"] for s in listed["sessions"]] == [mine.id]
    assert listed["sessions"][0]["message_count"] == 1 and listed["total"] == 1
    one = client.get(f"/api/sessions/{mine.id}", headers=ann).get_json()
    assert one["messages"][0]["content"] == "toner for the Acme printer"
    assert client.get(f"/api/sessions/{mine.id}", headers=bob).status_code == 404

    retitled = client.put(f"/api/sessions/{mine.id}/title", json={"title": "Acme toner"},
                          headers=ann)
    assert retitled.status_code == 200 and retitled.get_json()["title"] == "Acme toner"
    assert client.put(f"/api/sessions/{mine.id}/title", json={"title": "x"},
                      headers=bob).status_code == 404
    service = tokens.headers(tokens.service("codex", "brainhair"))
    assert client.put(f"/api/sessions/{mine.id}/title", json={"title": "x"},
                      headers=service).status_code == 403
    bad = client.put(f"/api/sessions/{mine.id}/title", json={"title": 5}, headers=ann)
    assert bad.status_code == 422
    assert bad.get_json()["errors"] == {"json": {"title": ["title: expected a non-empty string"]}}
    bad_limit = client.get("/api/sessions?limit=0", headers=ann)
    assert bad_limit.status_code == 400 and "limit" in bad_limit.get_json()["errors"]["query"]

    closed = client.post(f"/api/sessions/{mine.id}/close", headers=ann).get_json()
    assert closed["status"] == "closed"
    assert client.get("/api/sessions", headers=as_user("client")).status_code == 403


def test_the_migration_matches_the_models(brainhair_db_url: str) -> None:
    from hivematrix.brainhair.models import Base
    from hivematrix.common.testing import assert_migrations_match_models

    assert_migrations_match_models("hivematrix.brainhair", Base.metadata, brainhair_db_url)


def test_the_api_is_documented(client: FlaskClient) -> None:
    spec = client.get("/apispec.json").get_json()
    paths = set(spec["paths"])
    assert {"/api/chat", "/api/chat/poll/{response_id}", "/api/chat/stop/{response_id}",
            "/api/sessions", "/api/sessions/{session_id}", "/api/sessions/{session_id}/title",
            "/api/sessions/{session_id}/close", "/api/approvals", "/api/approvals/{approval_id}",
            "/api/approvals/{approval_id}/decision"} <= paths
    assert spec["paths"]["/api/chat"]["post"]["security"] == [{"BearerAuth": []}]
