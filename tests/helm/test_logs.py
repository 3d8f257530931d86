"""Helm's central log: storage, ingest rules, queries, deduplication, the tailer, retention,
the metrics sampler and background jobs — on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from alembic.script import ScriptDirectory
from apiflask import APIBlueprint
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from hivematrix.common import create_service_app, db, logship
from hivematrix.common.db import Database
from hivematrix.common.testing import (
    FakeCore,
    ServiceProcess,
    TokenFactory,
    assert_migrations_match_models,
    assert_single_migration_head,
)
from hivematrix.helm import SERVICE, create_app, jobs, logstore
from hivematrix.helm.models import Base, LogCursor, LogEntry, ServiceSample
from hivematrix.helm.tailer import tail_once

from .conftest import RecordMaker, write_lines

INGEST = "/api/logs/ingest"


def entry(message: str = "hello", level: str = "INFO", **fields: Any) -> dict[str, Any]:
    return {"level": level, "message": message, **fields}


def stored(database: Database) -> list[LogEntry]:
    with database.sessionmaker() as session:
        return list(session.scalars(select(LogEntry).order_by(LogEntry.id)))


def count(database: Database) -> int:
    with database.sessionmaker() as session:
        return session.scalar(select(func.count()).select_from(LogEntry)) or 0


def push(client: FlaskClient, headers: dict[str, str], *entries: dict[str, Any]) -> Any:
    return client.post(INGEST, headers=headers, json={"logs": list(entries)})


# --- model and migrations ------------------------------------------------------------------

def test_single_head() -> None:
    assert SERVICE.migrations
    assert_single_migration_head(SERVICE.migrations)


def test_migrations_match_models(helm_db_url: str) -> None:
    assert SERVICE.migrations
    assert_migrations_match_models(SERVICE.migrations, Base.metadata, helm_db_url)


def test_upgrade_records_the_head_revision(helm_db_url: str) -> None:
    assert SERVICE.migrations
    script = ScriptDirectory.from_config(db.alembic_config(SERVICE.migrations, helm_db_url))
    assert db.current_revision(SERVICE.migrations, helm_db_url) == script.get_current_head()


def test_timestamps_come_back_timezone_aware(helm_db: Database) -> None:
    when = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    with helm_db.transaction() as session:
        row = logstore.row_from_record({"level": "INFO", "message": "m",
                                        "timestamp": when.isoformat()},
                                       service="codex", source="push")
        assert logstore.store(session, [row]) == 1
    [found] = stored(helm_db)
    assert found.timestamp == when and found.timestamp.utcoffset() == timedelta(0)


def test_service_is_registered_for_discovery() -> None:
    from hivematrix.common.registry import discover_services

    spec = discover_services()["helm"]
    assert (spec.port, spec.admin_only, spec.visible) == (5004, True, True)
    assert spec.depends_on == ("core",)


def test_settings_have_defaults(helm_app: Flask) -> None:
    config = helm_app.config
    assert config["HELM_LOG_RETENTION_DAYS"] == 30
    assert config["HELM_TAIL_LOGS"] is True
    assert config["HELM_TAIL_INTERVAL_SECONDS"] == 1.0
    assert config["HELM_METRICS_INTERVAL_SECONDS"] == 30


# --- ingest: who may push ------------------------------------------------------------------

@pytest.mark.parametrize("level", ["admin", "technician", "billing", "client"])
def test_user_tokens_cannot_ingest(helm_client: FlaskClient, helm_db: Database, as_user,
                                   level: str) -> None:
    response = push(helm_client, as_user(level), entry())
    assert response.status_code == 403
    assert response.content_type == "application/problem+json"
    assert count(helm_db) == 0


def test_ingest_without_token_is_401(helm_client: FlaskClient) -> None:
    assert helm_client.post(INGEST, json={"logs": [entry()]}).status_code == 401


def test_service_token_for_another_service_is_refused(helm_client: FlaskClient,
                                                      tokens: TokenFactory) -> None:
    headers = tokens.headers(tokens.service("codex", "ledger"))
    assert push(helm_client, headers, entry()).status_code == 401


def test_service_name_comes_from_the_token(helm_client: FlaskClient, helm_db: Database,
                                           as_service) -> None:
    response = push(helm_client, as_service("codex"),
                    entry("spoof?", service="core", correlation_id="c-1", user="u-1",
                          logger="codex.sync", pid=7, seq=1, method="GET", status=200))
    assert response.status_code == 200
    assert response.json == {"received": 1, "stored": 1, "duplicates": 0}
    [found] = stored(helm_db)
    assert found.service == "codex"
    assert (found.correlation_id, found.user, found.logger, found.source) == (
        "c-1", "u-1", "codex.sync", "push")
    assert found.context == {"method": "GET", "status": 200, "pid": 7, "seq": 1}
    assert "service" not in found.context


# --- ingest: limits and bad input ----------------------------------------------------------

def test_more_than_ten_thousand_entries_is_413(helm_client: FlaskClient, helm_db: Database,
                                               as_service) -> None:
    response = push(helm_client, as_service("codex"), *[entry()] * 10_001)
    assert response.status_code == 413
    assert response.content_type == "application/problem+json"
    assert "logs" in response.json["detail"]
    assert "logs" in response.json["errors"]["json"]
    assert count(helm_db) == 0


def test_ten_thousand_entries_are_accepted(helm_client: FlaskClient, helm_db: Database,
                                           as_service) -> None:
    batch = [entry(f"line {n}", pid=1, seq=n, timestamp="2026-01-01T00:00:00+00:00")
             for n in range(10_000)]
    response = push(helm_client, as_service("codex"), *batch)
    assert response.status_code == 200
    assert response.json["stored"] == 10_000
    assert count(helm_db) == 10_000


def test_long_messages_are_cut_and_marked(helm_client: FlaskClient, helm_db: Database,
                                          as_service) -> None:
    response = push(helm_client, as_service("codex"), entry("x" * 12_345))
    assert response.status_code == 200
    [found] = stored(helm_db)
    assert len(found.message) == 10_000
    assert found.context["truncated"] is True
    assert found.context["message_length"] == 12_345


@pytest.mark.parametrize(("bad", "field"), [
    ({"message": "no level"}, "level"),
    ({"level": "LOUD", "message": "m"}, "level"),
    ({"level": 40, "message": "m"}, "level"),
    ({"level": "INFO"}, "message"),
    ({"level": "INFO", "message": ["not", "text"]}, "message"),
    ({"level": "INFO", "message": "m", "timestamp": "yesterday"}, "timestamp"),
    ({"level": "INFO", "message": "m", "pid": "seven"}, "pid"),
    ({"level": "INFO", "message": "m", "seq": -1}, "seq"),
    ({"level": "INFO", "message": "m", "context": ["a"]}, "context"),
    ({"level": "INFO", "message": "m", "correlation_id": "c" * 129}, "correlation_id"),
    ({"level": "INFO", "message": "m", "user": 5}, "user"),
    ("just a string", "entry"),
])
def test_a_bad_entry_refuses_the_whole_batch(helm_client: FlaskClient, helm_db: Database,
                                             as_service, bad: Any, field: str) -> None:
    response = push(helm_client, as_service("codex"), entry("fine"), entry("fine too"), bad)
    assert response.status_code == 422
    assert response.content_type == "application/problem+json"
    assert f"logs[2].{field}" in response.json["detail"]
    assert f"logs.2.{field}" in response.json["errors"]["json"]
    assert count(helm_db) == 0


@pytest.mark.parametrize("body", [{}, {"logs": "many"}, {"logs": {"0": {}}}, []])
def test_the_batch_itself_must_be_a_list(helm_client: FlaskClient, as_service,
                                         body: Any) -> None:
    response = helm_client.post(INGEST, headers=as_service("codex"), json=body)
    assert response.status_code == 422
    assert "logs" in response.json["detail"]


def test_levels_are_normalised(helm_client: FlaskClient, helm_db: Database,
                               as_service) -> None:
    push(helm_client, as_service("codex"), entry(level="warn"), entry(level="fatal"),
         entry(level="debug"))
    assert sorted(found.level for found in stored(helm_db)) == ["CRITICAL", "DEBUG", "WARNING"]


def test_nul_characters_are_stored_safely(helm_client: FlaskClient, helm_db: Database,
                                          as_service) -> None:
    response = push(helm_client, as_service("codex"),
                    entry("a\x00b", user="u\x00", context={"k": "v\x00"}))
    assert response.status_code == 200
    [found] = stored(helm_db)
    assert found.message == "a\ufffdb"


# --- deduplication -------------------------------------------------------------------------

def test_the_same_record_pushed_twice_is_stored_once(helm_client: FlaskClient,
                                                     helm_db: Database, as_service) -> None:
    record = RecordMaker("codex").record("synced", correlation_id="c-9")
    first = push(helm_client, as_service("codex"), record)
    again = push(helm_client, as_service("codex"), record, record)
    assert first.json["stored"] == 1
    assert again.json == {"received": 2, "stored": 0, "duplicates": 2}
    assert count(helm_db) == 1


def test_same_pid_and_seq_from_two_services_are_two_records(helm_client: FlaskClient,
                                                            helm_db: Database,
                                                            as_service) -> None:
    record = entry(pid=1, seq=1, timestamp="2026-01-01T00:00:00Z")
    push(helm_client, as_service("codex"), record)
    push(helm_client, as_service("ledger"), record)
    assert sorted(found.service for found in stored(helm_db)) == ["codex", "ledger"]


def test_records_without_pid_and_seq_are_never_merged(helm_client: FlaskClient,
                                                      helm_db: Database, as_service) -> None:
    push(helm_client, as_service("codex"), entry("same"), entry("same"))
    assert count(helm_db) == 2


@pytest.mark.parametrize("push_first", [True, False])
def test_push_and_file_copies_are_stored_once(helm_client: FlaskClient, helm_db: Database,
                                              as_service, hm_home: Path,
                                              push_first: bool) -> None:
    maker = RecordMaker("codex")
    records = [maker.record("first", correlation_id="c-1"),
               maker.record("second", level=40, correlation_id="c-1")]
    logs = hm_home / "logs"

    def from_file() -> None:
        write_lines(logs / "codex.log", *(maker.line(record) for record in records))
        with helm_db.sessionmaker() as session:
            tail_once(session, logs)

    def by_push() -> None:
        assert push(helm_client, as_service("codex"), *records).status_code == 200

    steps = [by_push, from_file] if push_first else [from_file, by_push]
    for step in steps:
        step()
    found = stored(helm_db)
    assert [(e.message, e.level) for e in found] == [("first", "INFO"), ("second", "ERROR")]
    assert {e.source for e in found} == {"push" if push_first else "file"}


# --- queries -------------------------------------------------------------------------------

@pytest.fixture
def sample_logs(helm_client: FlaskClient, as_service) -> None:
    base = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)

    def at(minutes: int) -> str:
        return (base + timedelta(minutes=minutes)).isoformat()

    push(helm_client, as_service("codex"),
         entry("debug detail", "DEBUG", timestamp=at(0)),
         entry("synced 5 companies", "INFO", timestamp=at(1), correlation_id="req-1",
               user="alice"),
         entry("slow PSA answer", "WARNING", timestamp=at(2), correlation_id="req-1"),
         entry("100% done_ok", "INFO", timestamp=at(3)))
    push(helm_client, as_service("ledger"),
         entry("invoice failed", "ERROR", timestamp=at(4), correlation_id="req-2",
               user="bob"),
         entry("disk gone", "CRITICAL", timestamp=at(5)))


def messages(response: Any) -> list[str]:
    assert response.status_code == 200, response.json
    return [item["message"] for item in response.json["logs"]]


@pytest.mark.usefixtures("sample_logs")
@pytest.mark.parametrize(("query", "expected"), [
    ("", ["disk gone", "invoice failed", "100% done_ok", "slow PSA answer",
          "synced 5 companies", "debug detail"]),
    ("service=ledger", ["disk gone", "invoice failed"]),
    ("level=WARNING", ["disk gone", "invoice failed", "slow PSA answer"]),
    ("level=error", ["disk gone", "invoice failed"]),
    ("level=DEBUG&service=codex", ["100% done_ok", "slow PSA answer", "synced 5 companies",
                                   "debug detail"]),
    ("correlation_id=req-1", ["slow PSA answer", "synced 5 companies"]),
    ("user=bob", ["invoice failed"]),
    ("since=2026-05-01T12:02:00Z&until=2026-05-01T12:04:00%2B00:00",
     ["invoice failed", "100% done_ok", "slow PSA answer"]),
    ("since=2026-05-01T12:04:00", ["disk gone", "invoice failed"]),
    ("q=SYNCED", ["synced 5 companies"]),
    ("q=%25", ["100% done_ok"]),
    ("q=_", ["100% done_ok"]),
    ("limit=2", ["disk gone", "invoice failed"]),
])
def test_filters(helm_client: FlaskClient, as_user, query: str, expected: list[str]) -> None:
    assert messages(helm_client.get(f"/api/logs?{query}", headers=as_user("admin"))) == expected


@pytest.mark.usefixtures("sample_logs")
@pytest.mark.parametrize(("query", "field"), [
    ("since=last-tuesday", "since"), ("until=2026-13-01", "until"), ("level=LOUD", "level"),
    ("limit=1001", "limit"), ("limit=0", "limit"), ("limit=ten", "limit"),
    ("before_id=-3", "before_id"), ("after_id=x", "after_id"),
    ("before_id=999999", "before_id"), ("before_id=1&after_id=1", "after_id"),
])
def test_bad_filters_are_400_naming_the_field(helm_client: FlaskClient, as_user, query: str,
                                              field: str) -> None:
    response = helm_client.get(f"/api/logs?{query}", headers=as_user("admin"))
    assert response.status_code == 400
    assert response.content_type == "application/problem+json"
    assert response.json["detail"].startswith(f"{field}:")
    assert field in response.json["errors"]["query"]


@pytest.mark.usefixtures("sample_logs")
def test_before_id_pages_through_everything_once(helm_client: FlaskClient, as_user) -> None:
    seen: list[str] = []
    url = "/api/logs?limit=4"
    while True:
        page = helm_client.get(url, headers=as_user("admin")).json
        seen += [item["message"] for item in page["logs"]]
        if not page["has_more"]:
            break
        url = f"/api/logs?limit=4&before_id={page['next_before_id']}"
    assert seen == messages(helm_client.get("/api/logs", headers=as_user("admin")))


@pytest.mark.usefixtures("sample_logs")
def test_after_id_returns_what_arrived_since(helm_client: FlaskClient, as_user,
                                             as_service) -> None:
    first = helm_client.get("/api/logs", headers=as_user("admin")).json
    latest = first["latest_id"]
    assert latest == max(item["id"] for item in first["logs"])
    push(helm_client, as_service("codex"), entry("new one", timestamp="2020-01-01T00:00:00Z"),
         entry("new two", "ERROR"))
    response = helm_client.get(f"/api/logs?after_id={latest}", headers=as_user("admin"))
    assert messages(response) == ["new two", "new one"]
    filtered = helm_client.get(f"/api/logs?after_id={latest}&level=ERROR",
                               headers=as_user("admin"))
    assert messages(filtered) == ["new two"]


@pytest.mark.usefixtures("sample_logs")
def test_one_entry_by_id(helm_client: FlaskClient, as_user) -> None:
    newest = helm_client.get("/api/logs?limit=1", headers=as_user("admin")).json["logs"][0]
    response = helm_client.get(f"/api/logs/{newest['id']}", headers=as_user("admin"))
    assert response.status_code == 200
    assert response.json == newest
    missing = helm_client.get("/api/logs/999999", headers=as_user("admin"))
    assert missing.status_code == 404
    assert missing.content_type == "application/problem+json"


@pytest.mark.parametrize("level", ["technician", "billing", "client"])
def test_queries_are_for_admins_only(helm_client: FlaskClient, as_user, as_service,
                                     level: str) -> None:
    assert helm_client.get("/api/logs", headers=as_user(level)).status_code == 403
    assert helm_client.get("/api/logs", headers=as_service("codex")).status_code == 403


def test_openapi_documents_the_log_api(helm_client: FlaskClient) -> None:
    spec = helm_client.get("/apispec.json").json
    paths = spec["paths"]
    assert {"/api/logs", "/api/logs/ingest", "/api/logs/{entry_id}"} <= set(paths)
    assert paths["/api/logs/ingest"]["post"]["security"] == [{"BearerAuth": []}]
    assert paths["/api/logs/ingest"]["post"]["requestBody"]
    parameters = {item["name"] for item in paths["/api/logs"]["get"]["parameters"]}
    assert {"service", "level", "correlation_id", "user", "since", "until", "q", "limit",
            "before_id"} <= parameters
    assert "/" not in paths and "/logs" not in paths  # pages stay out of the API document


# --- the tailer ----------------------------------------------------------------------------

def tail(database: Database, logs: Path) -> int:
    with database.sessionmaker() as session:
        return tail_once(session, logs)


def cursor_of(database: Database, name: str) -> LogCursor:
    with database.sessionmaker() as session:
        found = session.scalar(select(LogCursor).where(LogCursor.path == name))
        assert found is not None
        return found


def test_tailer_reads_only_new_whole_lines(helm_db: Database, hm_home: Path) -> None:
    logs = hm_home / "logs"
    maker = RecordMaker("codex")
    path = logs / "codex.log"
    write_lines(path, maker.line(maker.record("one")))
    assert tail(helm_db, logs) == 1
    assert tail(helm_db, logs) == 0
    second = maker.line(maker.record("two"))
    with open(path, "a", encoding="utf-8") as out:
        out.write(second[:10])  # still being written
    assert tail(helm_db, logs) == 0
    with open(path, "a", encoding="utf-8") as out:
        out.write(second[10:])
    assert tail(helm_db, logs) == 1
    assert [e.message for e in stored(helm_db)] == ["one", "two"]
    assert cursor_of(helm_db, "codex.log").offset == path.stat().st_size


def test_tailer_keeps_levels_from_json_and_never_guesses(helm_db: Database,
                                                         hm_home: Path) -> None:
    logs = hm_home / "logs"
    maker = RecordMaker("codex")
    write_lines(logs / "codex.log",
                maker.line(maker.record("an error occurred, but this is only INFO")),
                "Traceback (most recent call last):",
                '  File "x.py", line 1, in <module>',
                "RuntimeError: ERROR CRITICAL fatal",
                "",
                '{"not": "a record", "level": "LOUD"}',
                "[2026-01-01 10:00:00 +0000] [12] [INFO] Booting worker with pid: 12")
    assert tail(helm_db, logs) == 6
    found = stored(helm_db)
    assert [(e.level, e.message[:14]) for e in found] == [
        ("INFO", "an error occur"), ("UNKNOWN", "Traceback (mos"), ("UNKNOWN", '  File "x.py",'),
        ("UNKNOWN", "RuntimeError: "), ("UNKNOWN", ""), ("UNKNOWN", "[2026-01-01 10")]
    assert all(e.source == "file" and e.service == "codex" for e in found)
    raw = found[1]
    assert raw.context["raw"] is True and raw.context["file"] == "codex.log"
    assert found[4].context == {"not": "a record", "level_name": "LOUD"}


def test_tailer_survives_rotation(helm_db: Database, hm_home: Path) -> None:
    logs = hm_home / "logs"
    maker = RecordMaker("codex")
    path = logs / "codex.log"
    write_lines(path, maker.line(maker.record("before rotation")))
    tail(helm_db, logs)
    # More lines land in the old file after the last read, then the supervisor rotates.
    write_lines(path, maker.line(maker.record("late in the old file")), "plain late line")
    os.replace(path, logs / "codex.log.1")
    write_lines(path, maker.line(maker.record("first in the new file")))
    tail(helm_db, logs)
    assert [e.message for e in stored(helm_db)] == [
        "before rotation", "late in the old file", "plain late line", "first in the new file"]
    assert cursor_of(helm_db, "codex.log").inode == path.stat().st_ino
    assert tail(helm_db, logs) == 0


def test_tailer_finds_a_file_rotated_twice(helm_db: Database, hm_home: Path) -> None:
    logs = hm_home / "logs"
    path = logs / "codex.log"
    write_lines(path, "one")
    tail(helm_db, logs)
    write_lines(path, "two")
    os.replace(path, logs / "codex.log.1")
    write_lines(path, "three")
    os.replace(logs / "codex.log.1", logs / "codex.log.2")
    os.replace(path, logs / "codex.log.1")
    write_lines(path, "four")
    tail(helm_db, logs)
    # The backup in between was never read under the live name: it is read whole.
    assert [e.message for e in stored(helm_db)] == ["one", "two", "three", "four"]


def test_tailer_starts_over_after_truncation(helm_db: Database, hm_home: Path) -> None:
    logs = hm_home / "logs"
    path = logs / "codex.log"
    write_lines(path, "a fairly long first line", "and a second one")
    tail(helm_db, logs)
    write_lines(path, "new", mode="w")  # truncated and rewritten: shorter than the offset
    tail(helm_db, logs)
    assert [e.message for e in stored(helm_db)] == [
        "a fairly long first line", "and a second one", "new"]
    # The same text again at the same offset after another truncation is a new line too.
    write_lines(path, "different", mode="w")
    tail(helm_db, logs)
    assert [e.message for e in stored(helm_db)][-1] == "different"


def test_reading_again_from_the_start_stores_nothing_twice(helm_db: Database,
                                                           hm_home: Path) -> None:
    logs = hm_home / "logs"
    maker = RecordMaker("codex")
    write_lines(logs / "codex.log", maker.line(maker.record("json")), "plain")
    write_lines(logs / "ledger.log", "ledger plain")
    assert tail(helm_db, logs) == 3
    with helm_db.transaction() as session:
        session.execute(LogCursor.__table__.delete())
    assert tail(helm_db, logs) == 0
    assert count(helm_db) == 3


@pytest.mark.parametrize("name", ["Core.log", "with space.log", "x" * 51 + ".log"])
def test_tailer_ignores_files_that_name_no_service(helm_db: Database, hm_home: Path,
                                                   name: str) -> None:
    write_lines(hm_home / "logs" / name, "hello")
    assert tail(helm_db, hm_home / "logs") == 0


def test_tailer_uses_the_file_name_as_service(helm_db: Database, hm_home: Path) -> None:
    maker = RecordMaker("nexus")  # the line claims nexus; the file is core's
    write_lines(hm_home / "logs" / "core.log", maker.line(maker.record("claimed")))
    tail(helm_db, hm_home / "logs")
    assert [e.service for e in stored(helm_db)] == ["core"]


# --- retention -----------------------------------------------------------------------------

def test_retention_deletes_old_entries_in_batches(helm_db: Database) -> None:
    now = datetime(2026, 6, 1, tzinfo=UTC)
    rows = [logstore.row_from_record(
        {"level": "INFO", "message": f"old {n}",
         "timestamp": (now - timedelta(days=31, minutes=n)).isoformat()},
        service="codex", source="push") for n in range(7)]
    rows.append(logstore.row_from_record(
        {"level": "INFO", "message": "recent",
         "timestamp": (now - timedelta(days=29)).isoformat()}, service="codex", source="push"))
    with helm_db.transaction() as session:
        logstore.store(session, rows)
        session.add(ServiceSample(service="codex", timestamp=now - timedelta(days=40),
                                  state="running"))
        session.add(ServiceSample(service="codex", timestamp=now, state="running"))
    with helm_db.sessionmaker() as session:
        assert logstore.retention_once(session, 30, now=now, batch_size=3) == 7
    assert [e.message for e in stored(helm_db)] == ["recent"]
    with helm_db.sessionmaker() as session:
        assert session.scalar(select(func.count()).select_from(ServiceSample)) == 1
        assert logstore.retention_once(session, 0, now=now + timedelta(days=400)) == 0
    assert count(helm_db) == 1


# --- metrics sampler and jobs --------------------------------------------------------------

def test_sampler_stores_one_sample_per_service(helm_db: Database, hm_home: Path) -> None:
    services = {"core": {"url": "http://127.0.0.1:9", "port": 9},
                "broken": {"title": "no url"}}
    when = datetime(2026, 6, 1, tzinfo=UTC)
    with helm_db.sessionmaker() as session:
        assert jobs.sample_services(session, hm_home, services, now=when) == 1
    with helm_db.sessionmaker() as session:
        [sample] = session.scalars(select(ServiceSample)).all()
    assert (sample.service, sample.state, sample.timestamp) == ("core", "stopped", when)
    assert sample.cpu_percent is None and sample.memory_mb is None


def test_file_lock_admits_one_holder(tmp_path: Path) -> None:
    first, second = jobs.FileLock(tmp_path / "x.lock"), jobs.FileLock(tmp_path / "x.lock")
    assert first.acquire() and first.acquire()
    assert not second.acquire()
    first.release()
    assert second.acquire()
    second.release()


def test_only_one_of_two_jobs_on_one_lock_runs(tmp_path: Path) -> None:
    runs: list[str] = []
    lock_path = tmp_path / "run" / "helm-x.lock"
    one = jobs.Job("x", 0.05, lambda: runs.append("one"), jobs.FileLock(lock_path))
    two = jobs.Job("x", 0.05, lambda: runs.append("two"), jobs.FileLock(lock_path))
    one.start()
    deadline = time.monotonic() + 5
    while "one" not in runs and time.monotonic() < deadline:
        time.sleep(0.02)
    two.start()
    time.sleep(0.3)
    one.stop()
    two.stop()
    assert "one" in runs and "two" not in runs


def test_a_failing_step_does_not_stop_the_job(tmp_path: Path) -> None:
    calls: list[int] = []

    def step() -> None:
        calls.append(1)
        raise RuntimeError("database down")

    job = jobs.Job("failing", 0.05, step, jobs.FileLock(tmp_path / "f.lock"))
    job.start()
    deadline = time.monotonic() + 5
    while len(calls) < 3 and time.monotonic() < deadline:
        time.sleep(0.02)
    job.stop()
    assert len(calls) >= 3 and job.is_alive() is False


@pytest.mark.parametrize("helm_db_url", ["sqlite"], indirect=True)
def test_app_runs_the_tailer_when_asked(service_settings: dict[str, Any], helm_db_url: str,
                                        hm_home: Path) -> None:
    write_lines(hm_home / "logs" / "codex.log", "from a file")
    app = create_app({**service_settings, "DATABASE_URL": helm_db_url,
                      "HELM_BACKGROUND_JOBS": "true", "HELM_TAIL_INTERVAL_SECONDS": 0.05,
                      "HELM_METRICS_INTERVAL_SECONDS": 0})
    started = app.extensions["helm.jobs"]
    try:
        assert sorted(job.job for job in started) == ["retention", "tailer"]
        database = Database(helm_db_url)
        deadline = time.monotonic() + 10
        while count(database) == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert [e.message for e in stored(database)] == ["from a file"]
        assert (hm_home / "run" / "helm-tailer.lock").exists()
        database.dispose()
    finally:
        for job in started:
            job.stop()
        app.extensions["hivematrix.db"].dispose()
    assert not any(job.is_alive() for job in started)


def test_no_jobs_when_switched_off(helm_app: Flask) -> None:
    assert "helm.jobs" not in helm_app.extensions


@pytest.mark.parametrize("helm_db_url", ["sqlite"], indirect=True)
def test_no_jobs_in_apps_made_for_tests_unless_asked(service_settings: dict[str, Any],
                                                     helm_db_url: str) -> None:
    app = create_app({**service_settings, "DATABASE_URL": helm_db_url})
    assert app.testing and "helm.jobs" not in app.extensions
    app.extensions["hivematrix.db"].dispose()


@pytest.mark.parametrize("helm_db_url", ["sqlite"], indirect=True)
def test_a_bad_jobs_setting_is_named(service_settings: dict[str, Any], helm_db_url: str) -> None:
    from hivematrix.common.config import SettingsError

    with pytest.raises(SettingsError, match="HELM_BACKGROUND_JOBS"):
        create_app({**service_settings, "DATABASE_URL": helm_db_url,
                    "HELM_BACKGROUND_JOBS": "sometimes"})


def test_fingerprints_are_stable_and_distinct() -> None:
    when = datetime(2026, 1, 1, tzinfo=UTC)
    same = logstore.record_fingerprint("codex", 1, 2, when)
    assert same == logstore.record_fingerprint(
        "codex", 1, 2, datetime.fromisoformat("2026-01-01T01:00:00+01:00"))
    assert len({same, logstore.record_fingerprint("ledger", 1, 2, when),
                logstore.record_fingerprint("codex", 1, 3, when),
                logstore.record_fingerprint("codex", 2, 2, when),
                logstore.position_fingerprint("codex", 1, 2, b"x")}) == 5
    assert json.dumps(same)  # plain hex text


# --- the kit's shipper against a real Helm process -----------------------------------------

work_log = logging.getLogger("hivematrix.tests.work")
work = APIBlueprint("work", __name__)


@work.get("/work")
def do_work() -> dict[str, str]:
    work_log.warning("working on %s", "invoices")
    return {}


@pytest.fixture
def helm_process(hm_home: Path, fake_core: FakeCore) -> Iterator[ServiceProcess]:
    process = ServiceProcess("helm", hm_home, env={
        "CORE_SERVICE_URL": fake_core.url, "HELM_TAIL_LOGS": "false",
        "HELM_METRICS_INTERVAL_SECONDS": "0"})
    (hm_home / "services.json").write_text(json.dumps(
        {"helm": {"url": process.url, "port": process.port}}))
    with process:
        yield process
    logship.detach()


def shipping_app(name: str, home: Path, fake_core: FakeCore) -> Flask:
    """A service in this process whose logs go to Helm through the kit's shipper."""
    fake_core.secrets[name] = f"{name}-secret"
    app = create_service_app(name, {
        "HIVEMATRIX_HOME": str(home), "CORE_SERVICE_URL": fake_core.url,
        "SERVICE_SECRET": f"{name}-secret", "SECRET_KEY": "k", "TESTING": True,
        "LOG_SHIPPING_INTERVAL_SECONDS": 0.1,
        "DISK_DEGRADED_PERCENT": 100.0, "DISK_UNHEALTHY_PERCENT": 100.0,
    }, blueprints=[work], database=False)
    shipper = app.extensions["hivematrix.logship"]
    shipper.first_backoff, shipper.max_backoff = 0.1, 0.5
    return app


def chain(helm: ServiceProcess, tokens: TokenFactory, correlation_id: str) -> list[dict]:
    response = httpx.get(f"{helm.url}/api/logs", params={"correlation_id": correlation_id},
                         headers=tokens.headers(tokens.user("admin")), timeout=10)
    assert response.status_code == 200, response.text
    return list(reversed(response.json()["logs"]))


def wait_until(condition: Any, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.1)


@pytest.mark.processes
def test_shipper_delivers_two_services_logs_to_a_real_helm(
        helm_process: ServiceProcess, fake_core: FakeCore, tokens: TokenFactory,
        hm_home: Path) -> None:
    for name in ("codex", "ledger"):
        app = shipping_app(name, hm_home, fake_core)
        app.test_client().get("/work", headers={"X-Correlation-ID": "chain-1"})
        shipper = app.extensions["hivematrix.logship"]
        wait_until(lambda shipper=shipper: shipper.sent >= 2 and shipper.pending == 0)
    found = chain(helm_process, tokens, "chain-1")
    assert sorted((e["service"], e["message"]) for e in found) == [
        ("codex", "request"), ("codex", "working on invoices"),
        ("ledger", "request"), ("ledger", "working on invoices")]
    assert {e["source"] for e in found} == {"push"}
    assert {e["level"] for e in found if e["message"] != "request"} == {"WARNING"}
    # One service token per target, fetched once and reused.
    assert fake_core.count("/service-token") == 2


@pytest.mark.processes
def test_shipper_buffers_a_helm_outage(helm_process: ServiceProcess, fake_core: FakeCore,
                                       tokens: TokenFactory, hm_home: Path) -> None:
    app = shipping_app("codex", hm_home, fake_core)
    shipper = app.extensions["hivematrix.logship"]
    client = app.test_client()
    client.get("/work", headers={"X-Correlation-ID": "before"})
    wait_until(lambda: shipper.sent >= 2 and shipper.pending == 0)
    helm_process.stop()
    for _ in range(3):
        client.get("/work", headers={"X-Correlation-ID": "during"})
    wait_until(lambda: shipper.failures >= 1)
    assert shipper.pending >= 6
    helm_process.start()
    wait_until(lambda: shipper.pending == 0)
    during = chain(helm_process, tokens, "during")
    assert [e["message"] for e in during].count("working on invoices") == 3
    assert len(during) == 6 and shipper.dropped == 0
