"""Snapshot jobs: accept many bills of one period in the background, with progress.

One streamed Codex bulk read for the whole job (each bill is calculated as its company
arrives, never the whole answer in memory); each company is accepted in its own transaction, so a
company that fails is recorded and the rest continue. A company whose period is accepted
already is skipped, so re-running a period is idempotent.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from hivematrix.common.db import Database, utcnow
from hivematrix.ledger import archive, billing
from hivematrix.ledger.errors import LedgerError, not_found
from hivematrix.ledger.inputs import Period
from hivematrix.ledger.invoice import DEFAULT_TERMS_DAYS
from hivematrix.ledger.models import SnapshotJob

TRIGGERS = ("manual", "schedule")


def create(session: Session, period: Period, *, trigger: str, triggered_by: str,
           account_numbers: Sequence[str] | None = None) -> SnapshotJob:
    if trigger not in TRIGGERS:
        raise LedgerError(f"trigger: must be one of {', '.join(TRIGGERS)}", field="trigger")
    job = SnapshotJob(year=period.year, month=period.month, status="queued", trigger=trigger,
                      triggered_by=triggered_by, errors=[],
                      total=0 if account_numbers is None else len(account_numbers))
    session.add(job)
    session.flush()
    return job


def run(database: Database, job_id: int, stream: billing.Stream, *,
        account_numbers: Sequence[str] | None = None, today: date | None = None,
        terms_days: int = DEFAULT_TERMS_DAYS) -> None:
    """Execute a queued job to the end; never raises (failures land on the job)."""
    with database.transaction() as session:
        job = session.get(SnapshotJob, job_id)
        if job is None:
            raise not_found(f"snapshot job {job_id}")
        job.status, job.started_at = "running", utcnow()
        period = Period(job.year, job.month)
        by = f"job:{job.id} ({job.triggered_by})"
    try:
        with database.transaction() as session:
            bills = billing.all_receipts(session, stream, period, today=today)
    except Exception as exc:  # Codex down, bad data: the job failed as a whole
        _finish(database, job_id, "failed", [{"account_number": "", "error": str(exc)}])
        return
    wanted = set(account_numbers) if account_numbers is not None else None
    bills = [receipt for receipt in bills if wanted is None or receipt.account_number in wanted]
    missing = sorted(wanted - {receipt.account_number for receipt in bills}) if wanted else []
    with database.transaction() as session:
        job = session.get(SnapshotJob, job_id)
        assert job is not None
        job.total = len(bills) + len(missing)
    errors: list[dict[str, str]] = [
        {"account_number": number, "error": "no such company in Codex"} for number in missing]
    counts = {"created": 0, "skipped": 0, "failed": len(missing)}
    for receipt in bills:
        outcome = "created"
        try:
            with database.transaction() as session:
                archive.accept(session, receipt, accepted_by=by, terms_days=terms_days)
        except LedgerError as exc:
            outcome = "skipped" if exc.status == 409 else "failed"
            if outcome == "failed":
                errors.append({"account_number": receipt.account_number, "error": str(exc)})
        except Exception as exc:  # one company's failure must not stop the rest
            outcome = "failed"
            errors.append({"account_number": receipt.account_number, "error": str(exc)})
        counts[outcome] += 1
        with database.transaction() as session:
            job = session.get(SnapshotJob, job_id)
            assert job is not None
            job.processed += 1
            job.created, job.skipped, job.failed = (counts["created"], counts["skipped"],
                                                    counts["failed"])
            job.errors = list(errors)
    _finish(database, job_id, "finished", errors)


def _finish(database: Database, job_id: int, status: str, errors: list[dict[str, str]]) -> None:
    with database.transaction() as session:
        job = session.get(SnapshotJob, job_id)
        assert job is not None
        job.status, job.finished_at, job.errors = status, utcnow(), list(errors)
        job.failed = max(job.failed, len(errors))


def to_dict(job: SnapshotJob) -> dict[str, Any]:
    return {"id": job.id, "period": f"{job.year:04d}-{job.month:02d}", "status": job.status,
            "trigger": job.trigger, "triggered_by": job.triggered_by,
            "total": job.total, "processed": job.processed, "created": job.created,
            "skipped": job.skipped, "failed": job.failed, "errors": list(job.errors or []),
            "created_at": job.created_at.isoformat(),
            "started_at": job.started_at.isoformat() if job.started_at else None,
            "finished_at": job.finished_at.isoformat() if job.finished_at else None}


def recent(session: Session, limit: int = 50, offset: int = 0) -> list[SnapshotJob]:
    return list(session.scalars(select(SnapshotJob).order_by(SnapshotJob.id.desc())
                                .limit(limit).offset(offset)))


def get(session: Session, job_id: int) -> SnapshotJob:
    job = session.get(SnapshotJob, job_id)
    if job is None:
        raise not_found(f"snapshot job {job_id}")
    return job
