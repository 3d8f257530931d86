"""The scheduler runs each due sync once per deployment, however many processes tick."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select

from hivematrix.codex import scheduler
from hivematrix.codex.models import ScheduleClaim
from hivematrix.common.db import Database

CONFIG = {"CODEX_PSA_PROVIDER": "freshservice", "CODEX_RMM_PROVIDER": "",
          "CODEX_SCHEDULE_TICKETS_MINUTES": 5, "CODEX_SCHEDULE_PSA_MINUTES": 1440,
          "CODEX_SCHEDULE_RMM_MINUTES": 60, "CODEX_SCHEDULE_AGENTS_MINUTES": 0}


def test_slots_are_the_same_in_every_process() -> None:
    every = timedelta(minutes=5)
    moment = datetime(2026, 12, 1, 13, 7, 59, tzinfo=UTC)
    assert scheduler.slot(moment, every) == datetime(2026, 12, 1, 13, 5, tzinfo=UTC)
    assert scheduler.slot(datetime(2026, 12, 1, 13, 10, tzinfo=UTC), every) == datetime(
        2026, 12, 1, 13, 10, tzinfo=UTC)
    assert scheduler.slot(moment, timedelta(days=1)) == datetime(2026, 12, 1, tzinfo=UTC)
    assert scheduler.interval({"CODEX_SCHEDULE_RMM_MINUTES": 0}, "rmm") is None


def test_concurrent_ticks_run_each_slot_once(codex_db: Database) -> None:
    ran: list[tuple[str, str]] = []
    lock = threading.Lock()

    def record(config: Mapping[str, Any], database: Database, kind: str,
               who: str) -> tuple[str, str]:
        with lock:
            ran.append((kind, who))
        return f"job-{kind}-{who}", "succeeded"

    now = datetime(2026, 12, 1, 13, 7, tzinfo=UTC)
    barrier = threading.Barrier(4)

    def worker(name: str) -> None:
        barrier.wait()
        scheduler.tick(CONFIG, codex_db, now, name, run=record)

    threads = [threading.Thread(target=worker, args=(f"w{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # PSA and tickets are configured (RMM has no provider, agents are switched off).
    assert sorted(kind for kind, _ in ran) == ["psa", "tickets"]
    with codex_db.transaction() as session:
        claims = {row.name: row.job_id for row in session.scalars(select(ScheduleClaim))}
    assert set(claims) == {"psa", "tickets"}
    assert all(job_id and job_id.startswith("job-") for job_id in claims.values())
    # The same slot again: nothing; the next ticket slot: tickets only.
    assert scheduler.tick(CONFIG, codex_db, now + timedelta(minutes=2), "w9", run=record) == []
    later = scheduler.tick(CONFIG, codex_db, now + timedelta(minutes=3), "w9", run=record)
    assert [kind for kind, _, _ in later] == ["tickets"]


def test_a_failing_start_does_not_stop_the_others(codex_db: Database) -> None:
    def flaky(config: Mapping[str, Any], database: Database, kind: str,
              who: str) -> tuple[str, str]:
        if kind == "tickets":
            raise RuntimeError("vendor down")
        return "job-psa", "succeeded"

    done = scheduler.tick(CONFIG, codex_db, datetime(2026, 12, 1, tzinfo=UTC), "w", run=flaky)
    assert [kind for kind, _, _ in done] == ["psa"]
