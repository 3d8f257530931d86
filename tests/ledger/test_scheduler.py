"""The snapshot schedule: when a period is due, the claim one process wins (threads racing on
SQLite and PostgreSQL), the job it runs against a real Codex, and the config routes."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from hivematrix.common.db import Database, get_db
from hivematrix.ledger import scheduler
from hivematrix.ledger.api import stream_codex
from hivematrix.ledger.inputs import Period
from hivematrix.ledger.models import BillingSnapshot, ScheduledSnapshot, SnapshotJob
from tests.ledger.conftest import GOLD_PLAN, Codex

Headers = Callable[..., dict[str, str]]


def at(year: int, month: int, day: int, hour: int = 0) -> datetime:
    return datetime(year, month, day, hour, 30, tzinfo=UTC)


def schedule(**fields: Any) -> ScheduledSnapshot:
    values: dict[str, Any] = {"enabled": True, "day_of_month": 3, "hour": 6,
                              "period": "previous", "last_run_period": None}
    values.update(fields)
    return ScheduledSnapshot(**values)


def test_due_period() -> None:
    assert scheduler.due_period(schedule(enabled=False), at(2026, 4, 10)) is None
    assert scheduler.due_period(schedule(), at(2026, 4, 3, 5)) is None  # an hour early
    assert scheduler.due_period(schedule(), at(2026, 4, 2, 23)) is None
    assert scheduler.due_period(schedule(), at(2026, 4, 3, 6)) == Period(2026, 3)
    assert scheduler.due_period(schedule(), at(2026, 4, 28)) == Period(2026, 3)  # caught up
    assert scheduler.due_period(schedule(), at(2026, 1, 5)) == Period(2025, 12)
    assert scheduler.due_period(schedule(period="current"), at(2026, 4, 5)) == Period(2026, 4)
    assert scheduler.due_period(schedule(last_run_period="2026-03"), at(2026, 4, 5)) is None


def _enable(database: Database, **fields: Any) -> None:
    with database.transaction() as session:
        scheduler.update_config(session, {"enabled": True, "day_of_month": 1, "hour": 0,
                                          **fields})


def test_one_claim_wins_however_many_race(ledger_db: Database) -> None:
    _enable(ledger_db)
    now = at(2026, 4, 2)
    results: list[Any] = []
    start = threading.Barrier(4)

    def race() -> None:
        start.wait()
        results.append(scheduler.claim(ledger_db, now))

    workers = [threading.Thread(target=race) for _ in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    winners = [result for result in results if result is not None]
    assert len(results) == 4 and len(winners) == 1
    with ledger_db.transaction() as session:
        assert session.scalar(select(func.count(SnapshotJob.id))) == 1
        job = session.scalars(select(SnapshotJob)).one()
        assert (job.trigger, job.year, job.month) == ("schedule", 2026, 3)
        assert scheduler.config(session).last_run_period == "2026-03"
    assert scheduler.claim(ledger_db, at(2026, 4, 20)) is None
    assert scheduler.claim(ledger_db, at(2026, 5, 1)) is not None  # next month's turn


def test_a_tick_runs_the_job_against_codex(client: FlaskClient, ledger_app: Flask,
                                           as_user: Headers, codex: Codex) -> None:
    assert client.post("/api/plans", json=GOLD_PLAN,
                       headers=as_user("billing")).status_code == 201
    with ledger_app.app_context():
        _enable(get_db(), account_numbers=["620547", "620549"])
        job_id = scheduler.tick(get_db(), stream_codex, at(2026, 4, 1, 3), ledger_app.config)
        assert job_id is not None
        assert scheduler.tick(get_db(), stream_codex, at(2026, 4, 1, 4), ledger_app.config) is None
        with get_db().transaction() as session:
            job = session.get(SnapshotJob, job_id)
            assert (job.status, job.total, job.created, job.failed) == ("finished", 2, 1, 1)
            snapshot = session.scalars(select(BillingSnapshot)).one()
            assert snapshot.invoice_number == "620547-202603"
            assert snapshot.accepted_by == f"job:{job_id} (scheduler)"


def test_config_routes(client: FlaskClient, as_user: Headers, codex: Codex) -> None:
    billing = as_user("billing")
    default = client.get("/archive/scheduler/config", headers=billing).get_json()
    assert default == {"enabled": False, "day_of_month": 1, "hour": 2, "period": "previous",
                       "account_numbers": None, "last_run_period": None}
    changed = client.put("/archive/scheduler/config", headers=billing,
                         json={"enabled": True, "day_of_month": 5, "period": "current"})
    assert changed.status_code == 200
    assert changed.get_json()["day_of_month"] == 5 and changed.get_json()["hour"] == 2
    upstream = client.post("/archive/api/scheduler/config", headers=as_user("admin"),
                           json={"hour": 7})
    assert upstream.get_json()["hour"] == 7
    assert client.get("/archive/api/scheduler/config", headers=as_user("technician")
                      ).get_json()["period"] == "current"
    refused = client.put("/archive/scheduler/config", headers=billing, json={"hour": 24})
    assert refused.status_code == 422
    assert refused.get_json()["errors"]["json"] == {"hour": ["hour: must be between 0 and 23"]}
    for level in ("technician", "client"):
        assert client.put("/archive/scheduler/config", headers=as_user(level),
                          json={"hour": 1}).status_code == 403
    assert client.get("/archive/scheduler/config", headers=as_user("client")).status_code == 403


@pytest.mark.parametrize("value", ["620547", [1], [""]])
def test_config_refuses_bad_selections(client: FlaskClient, as_user: Headers, codex: Codex,
                                       value: Any) -> None:
    response = client.put("/archive/scheduler/config", headers=as_user("billing"),
                          json={"account_numbers": value})
    assert response.status_code == 422
    assert list(response.get_json()["errors"]["json"]) == ["account_numbers"]
