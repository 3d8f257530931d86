"""`/archive/...`: accept bills into immutable snapshots, search and read them, void and
re-issue. The read routes also answer on upstream's `/archive/api/...` paths."""

from __future__ import annotations

import threading
from datetime import date
from typing import Any

from apiflask import APIBlueprint
from flask import Flask, Response, current_app, request

from hivematrix.common.auth import permission_required, service_allowed
from hivematrix.common.db import get_db, get_session
from hivematrix.ledger import archive, billing, fields, jobs, scheduler
from hivematrix.ledger.api import (
    READER_SERVICES,
    READERS,
    WRITERS,
    actor,
    fetch_codex,
    json_body,
    query_int,
    refusals,
    stream_codex,
    today,
)
from hivematrix.ledger.errors import LedgerError
from hivematrix.ledger.inputs import Period
from hivematrix.ledger.models import BillingSnapshot

bp = APIBlueprint("ledger_archive", __name__, tag="Archive")


def _terms() -> int:
    return int(current_app.config.get("LEDGER_TERMS_DAYS", 30))


def _query_date(name: str) -> date | None:
    raw = request.args.get(name)
    if not raw:
        return None
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise LedgerError(f"{name}: {raw!r} is not a date (YYYY-MM-DD)", field=name,
                          status=400) from None


def _fresh_receipt(account_number: str, period: Period) -> Any:
    """The bill as it is now: one Codex bulk call, calculated once."""
    items = billing.fetch_companies(fetch_codex, period.year, account_number)
    return billing.one_receipt(get_session(), items, account_number, period, today=today())


def _csv(snapshot: BillingSnapshot) -> Response:
    name = billing.safe_file_name(snapshot.invoice_number)
    return Response(snapshot.invoice_csv, mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="{name}.csv"'})


@bp.get("/archive/snapshots")
@bp.get("/archive/api/snapshots/search")
@bp.doc(summary="Search snapshots",
        description="Query: `account_number`, `year`, `month`, `invoice_number` (part of), "
                    "`from_date`, `to_date` (accepted on, inclusive), `limit` (≤ 1000, "
                    "default 100), `offset`. Newest period first.")
@permission_required(*READERS)
@service_allowed(*READER_SERVICES)
@refusals
def search() -> Any:
    limit = query_int("limit", 1, archive.SEARCH_LIMIT_MAX) or 100
    offset = query_int("offset", 0, 10**9) or 0
    total, page = archive.search(
        get_session(), account_number=request.args.get("account_number") or None,
        year=query_int("year", 1970, 9999), month=query_int("month", 1, 12),
        invoice_number=request.args.get("invoice_number") or None,
        date_from=_query_date("from_date"), date_to=_query_date("to_date"),
        limit=limit, offset=offset)
    return {"total": total, "limit": limit, "offset": offset,
            "results": [archive.summary(snapshot) for snapshot in page]}


@bp.get("/archive/snapshots/company/<account_number>")
@bp.get("/archive/api/snapshots/company/<account_number>")
@bp.doc(summary="Every snapshot of one company, newest period first")
@permission_required(*READERS)
@service_allowed(*READER_SERVICES)
@refusals
def company(account_number: str) -> Any:
    _, page = archive.search(get_session(), account_number=account_number,
                             limit=archive.SEARCH_LIMIT_MAX)
    return [archive.summary(snapshot) for snapshot in page]


@bp.post("/archive/snapshots")
@bp.doc(summary="Accept a bill",
        description="Body: `account_number`, `year`, `month`, `notes`. Calculates the bill "
                    "once and keeps its lines, receipt and invoice CSV. 409 when the period "
                    "is accepted already; 422 when the bill has an error.")
@permission_required(*WRITERS)
@refusals
def accept() -> Any:
    data = fields.body(json_body())
    account_number = fields.text(data, "account_number", required=True, max_length=50)
    year = fields.integer(data, "year", minimum=1970, maximum=9999, required=True)
    month = fields.integer(data, "month", minimum=1, maximum=12, required=True)
    notes = fields.text(data, "notes", max_length=10_000, default="") or ""
    assert account_number is not None and year is not None and month is not None
    session = get_session()
    # Refuse before calling Codex when the answer is known.
    existing = archive.live(session, account_number, year, month)
    if existing is not None:
        raise LedgerError(f"The bill of {account_number} for {year:04d}-{month:02d} is "
                          f"accepted already (invoice {existing.invoice_number}).", status=409)
    receipt = _fresh_receipt(account_number, Period(year, month))
    snapshot = archive.accept(session, receipt, accepted_by=actor(), notes=notes,
                              terms_days=_terms())
    session.commit()
    return archive.detail(snapshot), 201


@bp.get("/archive/snapshots/<int:snapshot_id>")
@bp.doc(summary="One snapshot with its line items and receipt")
@permission_required(*READERS)
@service_allowed(*READER_SERVICES)
@refusals
def detail(snapshot_id: int) -> Any:
    return archive.detail(archive.get(get_session(), snapshot_id))


@bp.get("/archive/snapshots/<int:snapshot_id>/csv")
@bp.doc(summary="The invoice CSV exactly as accepted")
@permission_required(*READERS)
@service_allowed(*READER_SERVICES)
@refusals
def csv(snapshot_id: int) -> Any:
    return _csv(archive.get(get_session(), snapshot_id))


@bp.get("/archive/api/snapshot/<invoice_number>")
@bp.doc(summary="One snapshot by invoice number (upstream's path)")
@permission_required(*READERS)
@service_allowed(*READER_SERVICES)
@refusals
def detail_by_number(invoice_number: str) -> Any:
    return archive.detail(archive.by_invoice_number(get_session(), invoice_number))


@bp.get("/archive/api/snapshot/<invoice_number>/csv")
@bp.doc(summary="A snapshot's invoice CSV by invoice number (upstream's path)")
@permission_required(*READERS)
@service_allowed(*READER_SERVICES)
@refusals
def csv_by_number(invoice_number: str) -> Any:
    return _csv(archive.by_invoice_number(get_session(), invoice_number))


def _reason() -> str:
    data = fields.body(json_body())
    return fields.text(data, "reason", required=True, max_length=10_000) or ""


@bp.post("/archive/snapshots/<int:snapshot_id>/void")
@bp.doc(summary="Void a snapshot", description="Body: `reason`. The snapshot is kept; the "
                                               "period can then be accepted again.")
@permission_required(*WRITERS)
@refusals
def void(snapshot_id: int) -> Any:
    session = get_session()
    snapshot = archive.get(session, snapshot_id)
    archive.void(session, snapshot, reason=_reason(), voided_by=actor())
    session.commit()
    return archive.summary(snapshot)


@bp.post("/archive/snapshots/<int:snapshot_id>/reissue")
@bp.doc(summary="Void a snapshot and accept its bill again",
        description="Body: `reason`. The new snapshot is numbered `<account>-<YYYYMM>-R<n>`.")
@permission_required(*WRITERS)
@refusals
def reissue(snapshot_id: int) -> Any:
    session = get_session()
    snapshot = archive.get(session, snapshot_id)
    reason = _reason()
    receipt = _fresh_receipt(snapshot.account_number, Period(snapshot.year, snapshot.month))
    new = archive.reissue(session, snapshot, receipt, reason=reason, by=actor(),
                          terms_days=_terms())
    session.commit()
    return archive.detail(new), 201


# --- background jobs: accept many bills ----------------------------------------------------

def _run_job(app: Flask, job_id: int, account_numbers: list[str] | None) -> None:
    with app.app_context():
        jobs.run(get_db(), job_id, stream_codex, account_numbers=account_numbers,
                 today=today(), terms_days=_terms())


@bp.post("/archive/jobs")
@bp.doc(summary="Accept every bill of a period in the background",
        description="Body: `year`, `month`, optional `account_numbers` (default: every "
                    "company). Answers 202 with the job; follow it at `/archive/jobs/<id>`. "
                    "Companies already accepted are skipped; one that fails is recorded and "
                    "the rest continue.")
@permission_required(*WRITERS)
@refusals
def start_job() -> Any:
    data = fields.body(json_body())
    year = fields.integer(data, "year", minimum=1970, maximum=9999, required=True)
    month = fields.integer(data, "month", minimum=1, maximum=12, required=True)
    numbers = data.get("account_numbers")
    if numbers is not None and (not isinstance(numbers, list) or not all(
            isinstance(number, str) and number for number in numbers)):
        raise LedgerError("account_numbers: expected a list of account numbers",
                          field="account_numbers")
    assert year is not None and month is not None
    session = get_session()
    job = jobs.create(session, Period(year, month), trigger="manual", triggered_by=actor(),
                      account_numbers=numbers)
    session.commit()
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    worker = threading.Thread(target=_run_job, args=(app, job.id, numbers),
                              name=f"ledger-job-{job.id}", daemon=True)
    app.extensions.setdefault("ledger.job_threads", []).append(worker)
    worker.start()
    return jobs.to_dict(job), 202


@bp.get("/archive/jobs")
@bp.get("/archive/api/scheduler/jobs")
@bp.doc(summary="Recent snapshot jobs, newest first", description="`limit` (≤ 100), `offset`.")
@permission_required(*READERS)
@refusals
def list_jobs() -> Any:
    limit = query_int("limit", 1, 100) or 50
    offset = query_int("offset", 0, 10**9) or 0
    return [jobs.to_dict(job) for job in jobs.recent(get_session(), limit, offset)]


@bp.get("/archive/jobs/<int:job_id>")
@bp.get("/archive/api/scheduler/jobs/<int:job_id>")
@bp.doc(summary="One snapshot job: progress, counts and errors")
@permission_required(*READERS)
@refusals
def get_job(job_id: int) -> Any:
    return jobs.to_dict(jobs.get(get_session(), job_id))


@bp.get("/archive/scheduler/config")
@bp.get("/archive/api/scheduler/config")
@bp.doc(summary="The snapshot schedule",
        description="`enabled`, `day_of_month` (1-28), `hour` (UTC), `period` (previous or "
                    "current month), `account_numbers` (null: every company), "
                    "`last_run_period`.")
@permission_required(*READERS)
@refusals
def get_schedule() -> Any:
    session = get_session()
    row = scheduler.config(session)
    session.commit()
    return scheduler.to_dict(row)


@bp.put("/archive/scheduler/config")
@bp.post("/archive/api/scheduler/config")
@bp.doc(summary="Change the snapshot schedule", description="Fields left out keep their values.")
@permission_required(*WRITERS)
@refusals
def put_schedule() -> Any:
    session = get_session()
    row = scheduler.update_config(session, json_body())
    session.commit()
    return scheduler.to_dict(row)
