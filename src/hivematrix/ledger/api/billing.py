"""`/api/billing/*`: one company's receipt and invoice, every company's invoices as a ZIP,
and the dashboard. Each answer is built from one Codex bulk call."""

from __future__ import annotations

from typing import Any

from apiflask import APIBlueprint
from flask import Response, current_app, request

from hivematrix.common.auth import permission_required, service_allowed
from hivematrix.common.db import get_session
from hivematrix.ledger import archive, billing
from hivematrix.ledger.api import (
    READER_SERVICES,
    READERS,
    fetch_codex,
    query_period,
    refusals,
    stream_codex,
    today,
)
from hivematrix.ledger.errors import LedgerError
from hivematrix.ledger.invoice import InvoiceError, invoice_number, qbd_iif, qbo_csv

bp = APIBlueprint("ledger_billing", __name__, tag="Billing")


def _terms() -> int:
    return int(current_app.config.get("LEDGER_TERMS_DAYS", 30))


def _receipt(account_number: str) -> Any:
    period = query_period()
    items = billing.fetch_companies(fetch_codex, period.year, account_number)
    return billing.one_receipt(get_session(), items, account_number, period, today=today())


@bp.get("/api/billing/calculate/<account_number>")
@bp.doc(summary="One company's bill for a month",
        description="Query: `year`, `month` (default: this month). The receipt: every line "
                    "with name, type, source, quantity, rate and amount, sub-totals, total, "
                    "effective rates, features, prepaid hours, backup, warnings; `error` set "
                    "when no bill can be calculated (plan not found). Money as strings.")
@permission_required(*READERS)
@service_allowed(*READER_SERVICES)
@refusals
def calculate(account_number: str) -> Any:
    return _receipt(account_number).to_json()


@bp.get("/api/billing/invoice/<account_number>")
@bp.doc(summary="One company's invoice (QuickBooks Online CSV, or Desktop IIF)",
        description="Query: `year`, `month`, `format` (`csv`, default, or `iif`). 422 when "
                    "the bill has an error.")
@permission_required(*READERS)
@service_allowed(*READER_SERVICES)
@refusals
def invoice(account_number: str) -> Any:
    kind = request.args.get("format", "csv")
    if kind not in ("csv", "iif"):
        raise LedgerError("format: must be csv or iif", field="format", status=400)
    receipt = _receipt(account_number)
    try:
        text = (qbo_csv if kind == "csv" else qbd_iif)(receipt, terms_days=_terms())
    except InvoiceError as exc:
        raise LedgerError(str(exc), field="account_number") from None
    name = billing.safe_file_name(invoice_number(receipt.account_number, receipt.period))
    return Response(text, mimetype="text/csv" if kind == "csv" else "text/plain",
                    headers={"Content-Disposition": f'attachment; filename="{name}.{kind}"'})


@bp.get("/api/billing/bulk-invoices")
@bp.doc(summary="Every company's invoice CSV in one ZIP",
        description="Query: `year`, `month`. Companies whose bill has an error are listed in "
                    "`errors.txt` inside the ZIP.")
@permission_required(*READERS)
@refusals
def bulk_invoices() -> Any:
    period = query_period()
    data = billing.bulk_zip(billing.all_receipts(get_session(), stream_codex, period,
                                                 today=today()), terms_days=_terms())
    return Response(data, mimetype="application/zip", headers={
        "Content-Disposition": f'attachment; filename="invoices-{period}.zip"'})


@bp.get("/api/billing/dashboard")
@bp.doc(summary="Every company's bill at a glance",
        description="Query: `year`, `month`. `summary` (companies, revenue, billed, errors, "
                    "active and expiring contracts, accepted) and one row per company: totals, "
                    "counts, hours, contract expiry, error, whether the bill is accepted.")
@permission_required(*READERS)
@service_allowed(*READER_SERVICES)
@refusals
def dashboard() -> Any:
    period = query_period()
    session = get_session()
    return billing.dashboard(billing.all_receipts(session, stream_codex, period, today=today()),
                             period, today(), archive.accepted_accounts(session, period.year,
                                                                        period.month))
