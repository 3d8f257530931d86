"""Scheduled syncs run once per slot across real Codex processes sharing one PostgreSQL.

Two `hivematrix run codex` servers (one of them with two gunicorn workers: three schedulers
in all) tick against the same database with a short ticket schedule, and sync from the
Freshservice contract fake. Whoever inserts a slot's claim row runs it; the others skip it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from hivematrix.cli import main
from hivematrix.codex import SERVICE, scheduler
from hivematrix.codex.models import ScheduleClaim, SyncJob, Ticket
from hivematrix.common.db import Database, utcnow
from hivematrix.common.testing import ServiceProcess, migrated_database
from tests.codex.fakes.freshservice import API_KEY, FreshserviceFake
from tests.codex.test_sync_cli import write_conf

pytestmark = pytest.mark.processes
SLOT_SECONDS = 4
#: Polls of the database (a fifth of a second apart) before giving up on the slots.
MAX_POLLS = 600


@pytest.fixture
def database(pg_url: str) -> Iterator[Database]:
    assert SERVICE.migrations
    with migrated_database(SERVICE.migrations, pg_url):
        found = Database(pg_url)
        yield found
        found.dispose()


def finished_slots(database: Database, since: datetime) -> int:
    """Slots due from ``since`` whose job has been recorded (the claimer writes it in the
    claim when the run ends)."""
    with database.transaction() as session:
        return len(list(session.scalars(select(ScheduleClaim.name).where(
            ScheduleClaim.job_id.is_not(None), ScheduleClaim.due_at >= since))))


def test_each_slot_runs_once_across_processes(hm_home: Path, pg_url: str,
                                              database: Database) -> None:
    assert CliRunner().invoke(main, ["init"]).exit_code == 0
    fake = FreshserviceFake().seed()
    with fake.serve() as url:
        write_conf(hm_home, pg_url,
                   codex={"psa_provider": "freshservice", "outbound_allowlist": "127.0.0.1",
                          "schedule_tickets_seconds": str(SLOT_SECONDS),
                          "schedule_psa_minutes": "0", "schedule_rmm_minutes": "0",
                          "schedule_agents_minutes": "0", "scheduler_tick_seconds": "0.25"},
                   freshservice={"url": url, "api_key": API_KEY})
        with ServiceProcess("codex", hm_home, args=("--workers", "2")) as first, \
                ServiceProcess("codex", hm_home) as second:
            both_up = utcnow()  # from here on, three schedulers compete for every slot
            for _ in range(MAX_POLLS):
                if finished_slots(database, both_up) >= 2:
                    break
                assert first.process and first.process.poll() is None, first.log()
                assert second.process and second.process.poll() is None, second.log()
                time.sleep(0.2)
            else:
                raise AssertionError(f"two slots never finished:\n{first.log()}\n"
                                     f"{second.log()}")
    every = timedelta(seconds=SLOT_SECONDS)
    with database.transaction() as session:
        claims = list(session.scalars(select(ScheduleClaim).order_by(ScheduleClaim.due_at)))
        jobs = {job.id: job for job in session.scalars(select(SyncJob))}
        tickets = len(list(session.scalars(select(Ticket))))
        assert {claim.name for claim in claims} == {"tickets"}  # the only schedule on
        # One claim per slot (the primary key), each on a slot boundary every process agrees on.
        for claim in claims:
            assert scheduler.slot(claim.due_at, every) == claim.due_at
        # A job only starts after its process won the slot's claim: never more jobs than
        # claims, and every recorded claim names a job of its own, run by the claimer.
        assert len(jobs) <= len(claims)
        recorded = [claim for claim in claims if claim.job_id is not None]
        assert len(recorded) >= 2
        assert len({claim.job_id for claim in recorded}) == len(recorded)
        for claim in recorded:
            job = jobs[claim.job_id]
            assert (job.kind, job.status) == ("tickets", "succeeded"), job.log
            assert job.triggered_by == f"schedule ({claim.claimed_by})"
            assert job.started_at >= claim.due_at
        # A run the stop interrupted has a claim but no job recorded in it yet; nothing else.
        unrecorded = set(jobs) - {claim.job_id for claim in recorded}
        assert len(unrecorded) <= len(claims) - len(recorded)
        assert all(jobs[job_id].status == "running" for job_id in unrecorded)
        # Consecutive runs: the first read everything, the next only what changed lately.
        first_job, second_job = (jobs[str(claim.job_id)] for claim in recorded[:2])
        assert first_job.counts["tickets"]["created"] == 6
        assert "tickets: updated since" in second_job.log
    assert tickets == 6
