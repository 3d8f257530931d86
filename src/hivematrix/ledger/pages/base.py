"""What every Ledger page shares: the blueprint, who may do what, the period picker, reading
bills, and rendering.

Pages call the same business modules as the JSON API (no HTTP round trip to Ledger itself);
Codex is read with one bulk call per page, as the API does.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from datetime import date
from decimal import Decimal
from typing import Any

from apiflask import APIBlueprint
from flask import Flask, current_app, g, render_template, request

from hivematrix.common.db import get_db, get_session
from hivematrix.ledger import archive, billing, jobs
from hivematrix.ledger.api import (
    READERS,
    WRITERS,
    actor,
    fetch_codex,
    query_period,
    stream_codex,
    today,
)
from hivematrix.ledger.calculation import Receipt
from hivematrix.ledger.errors import LedgerError
from hivematrix.ledger.inputs import Period
from hivematrix.ledger.money import money_text

bp = APIBlueprint("ledger_pages", __name__, enable_openapi=False)

__all__ = ["READERS", "WRITERS", "bp"]
MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August",
          "September", "October", "November", "December")


def level() -> str:
    return str(g.user.get("permission_level", ""))


def can_write() -> bool:
    return level() in WRITERS


def render(template: str, status: int = 200, **context: Any) -> tuple[str, int]:
    """A page, with what the navigation and the permission checks in templates need."""
    page = render_template(template, user=g.user, level=level(), can_write=can_write(),
                           months=MONTHS, **context)
    return page, status


def terms_days() -> int:
    return int(current_app.config.get("LEDGER_TERMS_DAYS", 30))


def page_period() -> Period:
    """``?year=&month=`` (default: this month); a bad one is a 400 naming it."""
    return query_period()


def form_period() -> Period:
    """The period a form posts (``year``, ``month``), both required."""
    values: dict[str, int] = {}
    for name, low, high in (("year", 1970, 9999), ("month", 1, 12)):
        raw = request.form.get(name, "").strip()
        if not raw.isdigit() or not low <= int(raw) <= high:
            raise LedgerError(f"{name}: must be a whole number between {low} and {high}",
                              field=name, status=400)
        values[name] = int(raw)
    return Period(values["year"], values["month"])


def period_args(period: Period) -> dict[str, Any]:
    return {"year": period.year, "month": period.month}


# --- reading bills -------------------------------------------------------------------------

def all_receipts(period: Period) -> list[Receipt]:
    """Every company's bill for ``period``: one Codex bulk call."""
    return billing.all_receipts(get_session(), stream_codex, period, today=today())


def dashboard(period: Period) -> dict[str, Any]:
    session = get_session()
    return billing.dashboard(all_receipts(period), period, today(),
                             archive.accepted_accounts(session, period.year, period.month))


def company_item(account_number: str, year: int) -> Mapping[str, Any]:
    """One company's Codex bulk item (its assets, contacts and ``year``'s tickets); 404 when
    Codex does not know it."""
    for item in billing.fetch_companies(fetch_codex, year, account_number):
        company = item.get("company") if isinstance(item, Mapping) else None
        if isinstance(company, Mapping) and company.get("account_number") == account_number:
            return item
    raise LedgerError(f"There is no company with account number '{account_number}'.",
                      status=404)


def receipt_of(item: Mapping[str, Any], account_number: str, period: Period) -> Receipt:
    return billing.one_receipt(get_session(), [item], account_number, period, today=today())


# --- background jobs -----------------------------------------------------------------------

def _run_job(app: Flask, job_id: int, account_numbers: Sequence[str] | None) -> None:
    with app.app_context():
        jobs.run(get_db(), job_id, stream_codex, account_numbers=account_numbers,
                 today=today(), terms_days=terms_days())


def start_job(period: Period, account_numbers: Sequence[str] | None = None) -> int:
    """Record an "accept every bill" job and run it in a thread (as ``POST /archive/jobs``);
    its id. The request only creates the job; the work happens outside it."""
    session = get_session()
    job = jobs.create(session, period, trigger="manual", triggered_by=actor(),
                      account_numbers=account_numbers)
    session.commit()
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    worker = threading.Thread(target=_run_job, args=(app, job.id, account_numbers),
                              name=f"ledger-job-{job.id}", daemon=True)
    # Tests join these threads before the database goes away.
    app.extensions.setdefault("ledger.job_threads", []).append(worker)
    worker.start()
    return job.id


# --- template helpers ----------------------------------------------------------------------

def money(value: Any) -> str:
    """An amount as on an invoice, with thousands separators: ``1,234.50``."""
    if value is None or value == "":
        return ""
    return f"{Decimal(money_text(Decimal(str(value)))):,.2f}"


def quantity(value: Any) -> str:
    """A quantity without trailing zeros (``2``, ``0.25``, ``1.5``)."""
    number = Decimal(str(value))
    text = format(number.normalize(), "f") if number else "0"
    return text


def field_errors(exc: LedgerError, names: Sequence[str]) -> dict[str, list[str]]:
    """A refusal as field → messages; a field the form does not show goes to "form"."""
    key = exc.field if exc.field is not None and exc.field in names else "form"
    return {key: [str(exc)]}


def today_date() -> date:
    return today()


@bp.record_once
def _template_helpers(state: Any) -> None:
    state.app.jinja_env.filters["money"] = money
    state.app.jinja_env.filters["quantity"] = quantity
