"""The archive: search accepted bills, read one snapshot (its lines, the CSV as accepted),
and void or re-issue it. The work is :mod:`hivematrix.ledger.archive`', as for the API."""

from __future__ import annotations

from datetime import date
from typing import Any

from flask import redirect, request, url_for
from sqlalchemy import select

from hivematrix.common.auth import permission_required
from hivematrix.common.db import get_session
from hivematrix.ledger import archive, fields
from hivematrix.ledger.api import actor, refusals
from hivematrix.ledger.errors import LedgerError
from hivematrix.ledger.inputs import Period
from hivematrix.ledger.models import BillingSnapshot
from hivematrix.ledger.pages.base import (
    READERS,
    WRITERS,
    bp,
    company_item,
    receipt_of,
    render,
    terms_days,
)
from hivematrix.ledger.pages.tables import TableQuery, integer

SEARCH_FIELDS = ("company", "year", "month", "invoice_number", "from_date", "to_date")


def _date(name: str, raw: str | None) -> date | None:
    if not raw:
        return None
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise LedgerError(f"{name}: {raw!r} is not a date (YYYY-MM-DD)", field=name,
                          status=400) from None


def _number(name: str, raw: str | None, low: int, high: int) -> int | None:
    return integer(name, raw, minimum=low, maximum=high) if raw else None


@bp.get("/archive")
@permission_required(*READERS)
@refusals
def archive_search() -> Any:
    """Snapshots by company (account number or part of the name), period, invoice number
    and the date they were accepted; newest period first."""
    listed = TableQuery(request.args, ("period",), SEARCH_FIELDS)
    values = listed.values
    total, found = archive.search(
        get_session(), company=values.get("company"),
        year=_number("year", values.get("year"), 1970, 9999),
        month=_number("month", values.get("month"), 1, 12),
        invoice_number=values.get("invoice_number"),
        date_from=_date("from_date", values.get("from_date")),
        date_to=_date("to_date", values.get("to_date")),
        limit=listed.per_page, offset=(listed.page - 1) * listed.per_page)
    return render("ledger/archive.html", listed=listed, pager=listed.pager(total),
                  snapshots=found)


def _snapshot_page(snapshot: BillingSnapshot, *, status: int = 200, error: str = "",
                   reason: str = "") -> Any:
    session = get_session()
    successor = session.scalar(select(BillingSnapshot).where(
        BillingSnapshot.replaces_id == snapshot.id))
    replaced = session.get(BillingSnapshot, snapshot.replaces_id) if snapshot.replaces_id else None
    return render("ledger/snapshot.html", status, snapshot=snapshot, successor=successor,
                  replaced=replaced, error=error, reason=reason,
                  done=request.args.get("done", ""))


@bp.get("/archive/invoices/<int:snapshot_id>")
@permission_required(*READERS)
@refusals
def snapshot(snapshot_id: int) -> Any:
    return _snapshot_page(archive.get(get_session(), snapshot_id))


def _reason() -> str:
    return fields.text({"reason": request.form.get("reason", "")}, "reason",
                       max_length=10_000) or ""


@bp.post("/archive/invoices/<int:snapshot_id>/void")
@permission_required(*WRITERS)
@refusals
def void_snapshot(snapshot_id: int) -> Any:
    session = get_session()
    found = archive.get(session, snapshot_id)
    reason = _reason()
    try:
        archive.void(session, found, reason=reason, voided_by=actor())
    except LedgerError as exc:
        session.rollback()
        return _snapshot_page(archive.get(session, snapshot_id), status=exc.status,
                              error=str(exc), reason=reason)
    session.commit()
    return redirect(url_for(".snapshot", snapshot_id=snapshot_id, done="voided"), 303)


@bp.post("/archive/invoices/<int:snapshot_id>/reissue")
@permission_required(*WRITERS)
@refusals
def reissue_snapshot(snapshot_id: int) -> Any:
    """Void the snapshot (unless it is already) and accept the bill as it is now, numbered
    ``-R<n>``; the original stays as it was."""
    session = get_session()
    found = archive.get(session, snapshot_id)
    reason = _reason()
    try:
        if not reason.strip():
            raise LedgerError("reason: say why the bill is re-issued", field="reason")
        period = Period(found.year, found.month)
        receipt = receipt_of(company_item(found.account_number, period.year),
                             found.account_number, period)
        new = archive.reissue(session, found, receipt, reason=reason, by=actor(),
                              terms_days=terms_days())
    except LedgerError as exc:
        session.rollback()
        if exc.status in (404, 502):
            raise
        return _snapshot_page(archive.get(session, snapshot_id), status=exc.status,
                              error=str(exc), reason=reason)
    session.commit()
    return redirect(url_for(".snapshot", snapshot_id=new.id, done="reissued"), 303)
