"""The snapshot schedule runs once per deployment across real Ledger processes sharing one
PostgreSQL database.

Core and Codex run as `hivematrix run` servers (Codex's rows written into its database as its
syncs would: the companies here need no user to create them), and two Ledger servers, one of
them with two gunicorn workers, so three schedulers tick every fifth of a second against the
same database. The schedule is switched on while all of them are running, in a transaction
that locks the schedule's table until every scheduler is waiting on it: when it commits, all
three read the due period at the same moment and race for it. Only the process whose
conditional UPDATE of the schedule row wins creates and runs the job. Re-opening the period
(as if it were run again) races them once more, and the new job finds every bill accepted
already.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import Executable, select, text, update

from hivematrix.cli import main
from hivematrix.codex.models import Asset, Company, Contact, ContactRole
from hivematrix.common.config import load_settings
from hivematrix.common.db import Database
from hivematrix.common.testing import ServiceProcess, free_port, migrated_database
from hivematrix.ledger import SERVICE, plans, scheduler
from hivematrix.ledger.models import BillingSnapshot, ScheduledSnapshot, SnapshotJob
from tests.ledger.conftest import GOLD_PLAN, TB

pytestmark = pytest.mark.processes
TICK_SECONDS = "0.2"
#: Polls of the database (a fifth of a second apart) before giving up on a job.
MAX_POLLS = 300
#: Ticks every scheduler gets after a job finished, to show that nobody runs it again.
QUIET_SECONDS = 2.0
#: The schedulers: two workers of the first Ledger server and the second server.
SCHEDULERS = 3
TABLE = ScheduledSnapshot.__tablename__


@pytest.fixture
def database(pg_url: str) -> Iterator[Database]:
    assert SERVICE.migrations
    with migrated_database(SERVICE.migrations, pg_url):
        found = Database(pg_url)
        yield found
        found.dispose()


def seed_codex(home: Path) -> None:
    """Two companies on the Gold plan and one on a plan Ledger does not have."""
    url = load_settings("codex", environ={"HIVEMATRIX_HOME": str(home)})["DATABASE_URL"]
    codex = Database(url)
    try:
        with codex.transaction() as session:
            acme = Company(account_number="620547", name="Acme Dental", billing_plan="Gold",
                           contract_term_length="1 Year")
            beta = Company(account_number="620548", name="Beta Law", billing_plan="Gold",
                           contract_term_length="1 Year")
            gamma = Company(account_number="620549", name="Gamma Shop",
                            billing_plan="Platinum", contract_term_length="1 Year")
            dana = Contact(name="Dana", email="dana@acme.example", active=True)
            eli = Contact(name="Eli", email="eli@acme.example", active=True)
            session.add_all([acme, beta, gamma, dana, eli])
            session.flush()
            session.add_all([
                ContactRole(contact_id=dana.id, company_id=acme.id, role="primary"),
                ContactRole(contact_id=eli.id, company_id=acme.id, role="general"),
                Asset(company_id=acme.id, hostname="SRV1", device_category="Server",
                      billing_type="Server", backup_bytes=3 * TB),
                Asset(company_id=acme.id, hostname="PC1", device_category="Laptop",
                      billing_type="Workstation"),
                Asset(company_id=beta.id, hostname="BPC", device_category="Desktop",
                      billing_type="Workstation")])
    finally:
        codex.dispose()


def previous_month(now: datetime) -> tuple[int, int]:
    return (now.year - 1, 12) if now.month == 1 else (now.year, now.month - 1)


def wait_for_jobs(database: Database, count: int, ledgers: list[ServiceProcess]) -> None:
    """Until ``count`` jobs have finished (and no job is still going)."""
    for _ in range(MAX_POLLS):
        with database.transaction() as session:
            states = list(session.scalars(select(SnapshotJob.status)))
        if len(states) >= count and all(state in ("finished", "failed") for state in states):
            return
        for ledger in ledgers:
            assert ledger.process and ledger.process.poll() is None, ledger.log()
        time.sleep(0.2)
    raise AssertionError(f"{count} job(s) never finished:\n"
                         + "\n".join(ledger.log() for ledger in ledgers))


def waiting_on_schedule(database: Database) -> int:
    """Connections (other than ours) waiting for a lock on the schedule's table."""
    with database.engine.connect() as connection:
        return int(connection.execute(text(
            "SELECT count(*) FROM pg_locks WHERE NOT granted AND relation = CAST(:table AS "
            "regclass)"), {"table": TABLE}).scalar_one())


def race(database: Database, change: Executable, ledgers: list[ServiceProcess]) -> None:
    """Apply ``change`` to the schedule once every scheduler is blocked reading it, so all of
    them see the change at the same moment."""
    with database.transaction() as session:
        # Nobody reads the table until this commits (plain reads wait for this lock mode).
        session.execute(text(f"LOCK TABLE {TABLE} IN ACCESS EXCLUSIVE MODE"))
        session.execute(change)
        for _ in range(MAX_POLLS):
            if waiting_on_schedule(database) >= SCHEDULERS:
                break
            for ledger in ledgers:
                assert ledger.process and ledger.process.poll() is None, ledger.log()
            time.sleep(0.05)
        else:
            raise AssertionError(f"fewer than {SCHEDULERS} schedulers ever waited")


def claims_in_logs(ledgers: list[ServiceProcess], job_id: int) -> int:
    """How many schedulers said they started this job (the winner logs it once)."""
    return sum(ledger.log().count(f"scheduled snapshot job {job_id} started")
               for ledger in ledgers)


def test_a_due_period_is_snapshotted_once_across_processes(hm_home: Path, pg_url: str,
                                                           database: Database) -> None:
    names = ("core", "codex", "ledger")
    ports = {name: free_port() for name in names}
    (hm_home / "services.json").write_text(json.dumps({
        name: {"url": f"http://127.0.0.1:{port}", "port": port, "title": name.title()}
        for name, port in ports.items()}))
    result = CliRunner().invoke(main, ["init"])
    assert result.exit_code == 0, result.output
    with database.transaction() as session:
        plans.create(session, GOLD_PLAN)
        # Due whenever it is on: from the first hour of the month, for the month before.
        scheduler.update_config(session, {"enabled": False, "day_of_month": 1, "hour": 0,
                                          "period": "previous"})
    ledger_env = {"LEDGER_DATABASE_URL": pg_url, "LEDGER_SCHEDULER_TICK_SECONDS": TICK_SECONDS}
    with ServiceProcess("core", hm_home, port=ports["core"]), \
            ServiceProcess("codex", hm_home, port=ports["codex"],
                           env={"CODEX_SCHEDULER": "false"}):
        seed_codex(hm_home)
        with ServiceProcess("ledger", hm_home, port=ports["ledger"], env=ledger_env,
                            args=("--workers", "2")) as first, \
                ServiceProcess("ledger", hm_home, env=ledger_env) as second:
            ledgers = [first, second]
            with database.transaction() as session:
                assert session.scalars(select(SnapshotJob)).all() == []
            # Every scheduler finds nothing due; then the period falls due for all at once.
            race(database, update(ScheduledSnapshot).values(enabled=True), ledgers)
            year, month = previous_month(datetime.now(UTC))
            wait_for_jobs(database, 1, ledgers)
            time.sleep(QUIET_SECONDS)
            with database.transaction() as session:
                jobs = session.scalars(select(SnapshotJob)).all()
                assert len(jobs) == 1
                job = jobs[0]
                assert (job.trigger, job.triggered_by, job.year, job.month) == (
                    "schedule", "scheduler", year, month)
                # Gamma's bill has an error: recorded, and the other two accepted.
                assert (job.status, job.total, job.processed, job.created, job.skipped,
                        job.failed) == ("finished", 3, 3, 2, 0, 1)
                assert [error["account_number"] for error in job.errors] == ["620549"]
                assert "no plan 'Platinum' for term '1 Year'" in job.errors[0]["error"]
                assert scheduler.config(session).last_run_period == f"{year:04d}-{month:02d}"
                first_run = {snap.invoice_number: (snap.id, snap.total_amount, snap.accepted_by)
                             for snap in session.scalars(select(BillingSnapshot))}
                first_job = job.id
            stamp = f"{year:04d}{month:02d}"
            by = f"job:{first_job} (scheduler)"
            # Acme: two users 50, a server and a workstation 150, backup 50 + 2 TB over at 20.
            assert {number: (total, who) for number, (_id, total, who) in first_run.items()} == {
                f"620547-{stamp}": (Decimal("290.00"), by),
                f"620548-{stamp}": (Decimal("30.00"), by)}
            assert claims_in_logs(ledgers, first_job) == 1

            # Run the period again: the schedulers race again, one job runs, and it finds
            # both bills accepted already (nothing new, nothing changed).
            race(database, update(ScheduledSnapshot).values(last_run_period=None), ledgers)
            wait_for_jobs(database, 2, ledgers)
            time.sleep(QUIET_SECONDS)
            with database.transaction() as session:
                jobs = session.scalars(select(SnapshotJob).order_by(SnapshotJob.id)).all()
                assert len(jobs) == 2
                again = jobs[1]
                assert (again.year, again.month, again.status, again.created, again.skipped,
                        again.failed) == (year, month, "finished", 0, 2, 1)
                assert {snap.invoice_number: (snap.id, snap.total_amount, snap.accepted_by)
                        for snap in session.scalars(select(BillingSnapshot))} == first_run
                assert scheduler.config(session).last_run_period == f"{year:04d}-{month:02d}"
                second_job = again.id
            assert claims_in_logs(ledgers, second_job) == 1
