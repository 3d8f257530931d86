"""The snapshot scheduler: accept a period's bills on a day and hour of the month, exactly once
per deployment however many Ledger processes run.

Each process looks every ``LEDGER_SCHEDULER_TICK_SECONDS``. When the configured moment has
passed and the period it covers has not been run, a process claims it with one conditional
UPDATE of the config row (``last_run_period`` from anything else to this period): the database
lets exactly one such UPDATE change the row, and only that process creates and runs the job.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from hivematrix.common.db import Database
from hivematrix.ledger import billing, fields, jobs
from hivematrix.ledger.errors import LedgerError
from hivematrix.ledger.inputs import Period
from hivematrix.ledger.models import ScheduledSnapshot

log = logging.getLogger("hivematrix.ledger.scheduler")
PERIOD_CHOICES = ("previous", "current")


def config(session: Session) -> ScheduledSnapshot:
    """The one schedule row (created disabled on first use)."""
    row = session.scalar(select(ScheduledSnapshot).order_by(ScheduledSnapshot.id).limit(1))
    if row is None:
        row = ScheduledSnapshot(enabled=False, day_of_month=1, hour=2, period="previous",
                                account_numbers=None)
        session.add(row)
        session.flush()
    return row


def to_dict(row: ScheduledSnapshot) -> dict[str, Any]:
    return {"enabled": row.enabled, "day_of_month": row.day_of_month, "hour": row.hour,
            "period": row.period, "account_numbers": row.account_numbers,
            "last_run_period": row.last_run_period}


def update_config(session: Session, data: Any) -> ScheduledSnapshot:
    data = fields.body(data)
    row = config(session)
    if "enabled" in data:
        row.enabled = fields.boolean(data, "enabled")
    day = fields.integer(data, "day_of_month", minimum=1, maximum=28)
    hour = fields.integer(data, "hour", minimum=0, maximum=23)
    row.day_of_month = row.day_of_month if day is None else day
    row.hour = row.hour if hour is None else hour
    row.period = fields.choice(data, "period", PERIOD_CHOICES) or row.period
    if "account_numbers" in data:
        numbers = data["account_numbers"]
        if numbers is not None and (not isinstance(numbers, list) or not all(
                isinstance(number, str) and number for number in numbers)):
            raise LedgerError("account_numbers: expected null (every company) or a list of "
                              "account numbers", field="account_numbers")
        row.account_numbers = numbers
    session.flush()
    return row


def due_period(row: ScheduledSnapshot, now: datetime) -> Period | None:
    """The period to run at ``now``, or None (disabled, too early, or run already)."""
    if not row.enabled:
        return None
    now = now.astimezone(UTC)
    if (now.day, now.hour) < (row.day_of_month, row.hour):
        return None
    this = Period(now.year, now.month)
    period = this if row.period == "current" else (
        Period(now.year - 1, 12) if now.month == 1 else Period(now.year, now.month - 1))
    return None if row.last_run_period == str(period) else period


def claim(database: Database, now: datetime) -> tuple[int, list[str] | None] | None:
    """Claim the due period and create its job; (job id, selection) for the winner only."""
    with database.transaction() as session:
        row = config(session)
        period = due_period(row, now)
        if period is None:
            return None
        changed = session.execute(
            update(ScheduledSnapshot)
            .where(ScheduledSnapshot.id == row.id,
                   or_(ScheduledSnapshot.last_run_period.is_(None),
                       ScheduledSnapshot.last_run_period != str(period)))
            .values(last_run_period=str(period)).execution_options(synchronize_session=False))
        if getattr(changed, "rowcount", 0) != 1:
            return None
        selection = list(row.account_numbers) if row.account_numbers is not None else None
        job = jobs.create(session, period, trigger="schedule", triggered_by="scheduler",
                          account_numbers=selection)
        return job.id, selection


def tick(database: Database, stream: billing.Stream, now: datetime,
         settings: Mapping[str, Any]) -> int | None:
    """One look at the schedule; runs the job when this process won it. Returns its id."""
    claimed = claim(database, now)
    if claimed is None:
        return None
    job_id, selection = claimed
    log.info("scheduled snapshot job %s started", job_id)
    jobs.run(database, job_id, stream, account_numbers=selection, today=now.date(),
             terms_days=int(settings.get("LEDGER_TERMS_DAYS", 30)))
    return job_id


class Scheduler:
    """The loop each Ledger process runs in a daemon thread."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._loop, name="ledger-scheduler", daemon=True)

    def start(self) -> Scheduler:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.stopped.set()

    def _loop(self) -> None:
        from hivematrix.common.db import get_db
        from hivematrix.ledger.api import stream_codex

        every = float(self.app.config["LEDGER_SCHEDULER_TICK_SECONDS"])
        while not self.stopped.wait(every):
            try:
                with self.app.app_context():
                    tick(get_db(), stream_codex, datetime.now(UTC), self.app.config)
            except Exception:  # the loop must survive one bad tick
                log.exception("scheduler tick failed")
