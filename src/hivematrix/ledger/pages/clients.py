"""The clients table and one client's bill for a month: the breakdown by section, the CSV
download, "Accept bill", and the "Archived" badge once the month is accepted."""

from __future__ import annotations

from typing import Any

from flask import redirect, request, url_for

from hivematrix.common.auth import permission_required
from hivematrix.common.db import get_session
from hivematrix.ledger import archive, fields
from hivematrix.ledger.api import actor, refusals
from hivematrix.ledger.calculation import Receipt
from hivematrix.ledger.errors import LedgerError
from hivematrix.ledger.inputs import SUPPORT_LEVELS, Period
from hivematrix.ledger.pages.base import (
    READERS,
    WRITERS,
    bp,
    company_item,
    dashboard,
    form_period,
    page_period,
    period_args,
    receipt_of,
    render,
    terms_days,
)
from hivematrix.ledger.pages.tables import SORTS, TableQuery, select_rows, sort_rows


@bp.get("/clients")
@permission_required(*READERS)
@refusals
def client_list() -> Any:
    """Every company's bill of the month: search, filters, sort, pages."""
    period = page_period()
    listed = TableQuery(request.args, tuple(SORTS))
    rows = dashboard(period)["companies"]
    chosen = select_rows(rows, q=listed.values.get("q", ""),
                         plan=listed.values.get("plan", ""),
                         support_level=listed.values.get("support_level", ""),
                         errors_only=listed.values.get("errors") == "1")
    pager, shown = listed.window(sort_rows(chosen, listed.sort))
    plans = sorted({str(row["plan_name"]) for row in rows if row["plan_name"]})
    return render("ledger/clients.html", period=period, listed=listed, pager=pager,
                  rows=shown, plans=plans, support_levels=SUPPORT_LEVELS,
                  extra=period_args(period))


def _client_page(account_number: str, period: Period, *, status: int = 200,
                 error: str = "", notes: str = "") -> Any:
    item = company_item(account_number, period.year)
    receipt = receipt_of(item, account_number, period)
    snapshot = archive.live(get_session(), account_number, period.year, period.month)
    return render("ledger/client.html", status, receipt=receipt, period=period,
                  sections=_sections(receipt), snapshot=snapshot, error=error, notes=notes,
                  accepted_now=request.args.get("accepted") == "1")


def _sections(receipt: Receipt) -> dict[str, Any]:
    """The receipt's lines by section; assets also grouped by type, in the receipt's order."""
    by_type: dict[str, list[Any]] = {}
    for line in receipt.section("assets"):
        by_type.setdefault(line.type, []).append(line)
    return {"users": receipt.section("users"), "assets": by_type,
            "backup": receipt.section("backup"), "hours": receipt.section("hours"),
            "custom": receipt.section("custom")}


@bp.get("/clients/<account_number>")
@permission_required(*READERS)
@refusals
def client(account_number: str) -> Any:
    return _client_page(account_number, page_period())


@bp.post("/clients/<account_number>/accept")
@permission_required(*WRITERS)
@refusals
def accept_bill(account_number: str) -> Any:
    """Snapshot this month's bill; "already accepted" (409) and a bill with an error (422)
    come back as a message on the client's page, and nothing is written."""
    period = form_period()
    notes = fields.text({"notes": request.form.get("notes", "")}, "notes",
                        max_length=10_000, default="") or ""
    session = get_session()
    try:
        existing = archive.live(session, account_number, period.year, period.month)
        if existing is not None:
            raise LedgerError(f"This bill is already accepted (invoice "
                              f"{existing.invoice_number}); void it in the archive to "
                              "re-issue it.", status=409)
        receipt = receipt_of(company_item(account_number, period.year), account_number,
                             period)
        archive.accept(session, receipt, accepted_by=actor(), notes=notes,
                       terms_days=terms_days())
    except LedgerError as exc:
        session.rollback()
        if exc.status not in (409, 422):
            raise
        message = str(exc)
        if exc.status == 409 and "already accepted" not in message:
            message = f"This bill is already accepted. {message}"
        return _client_page(account_number, period, status=exc.status, error=message,
                            notes=notes)
    session.commit()
    return redirect(url_for(".client", account_number=account_number, accepted="1",
                            **period_args(period)), 303)
