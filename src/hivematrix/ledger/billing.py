"""Gathering bills: one Codex bulk call, Ledger's plans and overrides, the calculation.

Nothing here talks HTTP itself: the caller passes ``fetch`` (a function from a Codex path to
its response), so the same code serves the API, the scheduler and tests.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import date, timedelta
from typing import Any
from urllib.parse import quote

import httpx
import orjson
from sqlalchemy.orm import Session

from hivematrix.ledger import overrides, plans
from hivematrix.ledger.calculation import NO_CENTS, Receipt, calculate
from hivematrix.ledger.errors import LedgerError
from hivematrix.ledger.inputs import (
    InputError,
    Overrides,
    Period,
    from_codex_bulk_item,
    from_codex_bulk_line,
)
from hivematrix.ledger.invoice import DEFAULT_TERMS_DAYS, invoice_number, qbo_csv
from hivematrix.ledger.money import plain

Fetch = Callable[[str], httpx.Response]
#: A streamed read: a Codex path to a context manager around the response being received.
Stream = Callable[[str], AbstractContextManager[httpx.Response]]
#: A contract ending within this many days counts as expiring on the dashboard.
EXPIRING_DAYS = 30


def bulk_path(year: int, account_number: str | None = None) -> str:
    path = f"/api/companies/bulk?include_tickets=true&year={year}"
    return f"{path}&account_number={quote(account_number)}" if account_number else path


def fetch_companies(fetch: Fetch, year: int,
                    account_number: str | None = None) -> list[Mapping[str, Any]]:
    """Every company (or just one) with its assets, contacts and ``year``'s tickets: one
    Codex call."""
    try:
        response = fetch(bulk_path(year, account_number))
    except Exception as exc:  # the kit's ServiceCallError, httpx errors: Codex is not there
        raise LedgerError(f"Codex could not be reached: {exc}", status=502) from None
    if response.status_code != 200:
        raise LedgerError(f"Codex answered {response.status_code} to the bulk read",
                          status=502)
    items = response.json()
    if not isinstance(items, list):
        raise LedgerError("Codex's bulk read was not a list", status=502)
    return items


def all_receipts(session: Session, stream: Stream, period: Period, *,
                 today: date | None = None) -> list[Receipt]:
    """Every company's bill for ``period`` from one streamed Codex bulk read (its billing view,
    one company per line): each bill is calculated as its company arrives, while Codex builds
    the next ones."""
    book = plans.book(session)
    by_account = overrides.load_all(session)
    bills: list[Receipt] = []
    try:
        with stream(f"{bulk_path(period.year)}&view=billing&format=ndjson") as response:
            if response.status_code != 200:
                raise LedgerError(f"Codex answered {response.status_code} to the bulk read",
                                  status=502)
            for line in _lines(response):
                if line.strip():
                    bills.append(receipt_of_line(line, book, by_account, period, today))
    except LedgerError:
        raise
    except Exception as exc:  # the kit's ServiceCallError, httpx errors: Codex is not there
        raise LedgerError(f"Codex could not be reached: {exc}", status=502) from None
    return bills


def _lines(response: httpx.Response) -> Iterator[bytes]:
    """The body's lines as bytes (httpx splits only text); each chunk is scanned once."""
    pending: list[bytes] = []
    for chunk in response.iter_bytes():
        first, *others = chunk.split(b"\n")
        pending.append(first)
        if others:
            yield b"".join(pending)
            yield from others[:-1]
            pending = [others[-1]]
    if any(pending):
        yield b"".join(pending)


def receipt_of_line(line: bytes, book: Mapping[tuple[str, str], Any],
                    by_account: Mapping[str, Overrides], period: Period,
                    today: date | None = None) -> Receipt:
    """:func:`receipt_for` of one line of Codex's ``format=ndjson`` bulk answer."""
    try:
        company = from_codex_bulk_line(line)
    except InputError as exc:
        try:
            item = orjson.loads(line)
        except orjson.JSONDecodeError:
            item = {}
        name = item.get("company", {}).get("name", "") if isinstance(item, Mapping) else ""
        return Receipt(account_number=_account(item), company_name=str(name or ""),
                       period=period, plan_name=None, contract_term=None, support_level=None,
                       error=f"Codex data: {exc}")
    return calculate(company, book, by_account.get(company.account_number, Overrides()),
                     period.year, period.month, today=today)


def _account(item: Any) -> str:
    company = item.get("company") if isinstance(item, Mapping) else None
    number = company.get("account_number") if isinstance(company, Mapping) else None
    return str(number or "")


def receipt_for(item: Mapping[str, Any], book: Mapping[tuple[str, str], Any],
                by_account: Mapping[str, Overrides], period: Period,
                today: date | None = None) -> Receipt:
    """One company's bill; Codex data Ledger cannot read is the bill's error, not a crash."""
    try:
        company = from_codex_bulk_item(item)
    except InputError as exc:
        name = item.get("company", {}).get("name", "") if isinstance(item, Mapping) else ""
        return Receipt(account_number=_account(item), company_name=str(name or ""),
                       period=period, plan_name=None, contract_term=None, support_level=None,
                       error=f"Codex data: {exc}")
    return calculate(company, book, by_account.get(company.account_number, Overrides()),
                     period.year, period.month, today=today)


def one_receipt(session: Session, items: Sequence[Mapping[str, Any]], account_number: str,
                period: Period, *, today: date | None = None) -> Receipt:
    for item in items:
        if _account(item) == account_number:
            return receipt_for(item, plans.book(session),
                               {account_number: overrides.load(session, account_number)},
                               period, today)
    raise LedgerError(f"There is no company with account number '{account_number}'.",
                      status=404)


def period_of(year: int | None, month: int | None, today: date) -> Period:
    """The requested month; the current one when neither is given."""
    try:
        return Period(year or today.year, month or today.month)
    except InputError as exc:
        raise LedgerError(str(exc), field="month", status=400) from None


# --- the dashboard -------------------------------------------------------------------------

def dashboard_row(receipt: Receipt, today: date, accepted: bool) -> dict[str, Any]:
    end = receipt.contract_end_date
    hours = receipt.hours
    return {
        "account_number": receipt.account_number, "company_name": receipt.company_name,
        "plan_name": receipt.plan_name, "contract_term": receipt.contract_term,
        "support_level": receipt.support_level, "total": plain(receipt.total),
        "subtotals": {name: plain(value) for name, value in receipt.subtotals.items()},
        "user_count": sum(receipt.user_quantities.values()),
        "asset_count": sum(receipt.asset_quantities.values()),
        "hours": plain(hours.hours) if hours else "0",
        "billable_hours": plain(hours.billable_hours) if hours else "0",
        "contract_end_date": end.isoformat() if end else None,
        "contract_expired": receipt.contract_expired,
        "contract_expiring_soon": end is not None and today <= end <= today + timedelta(
            days=EXPIRING_DAYS),
        "error": receipt.error, "warnings": list(receipt.warnings), "accepted": accepted}


def dashboard(bills: Sequence[Receipt], period: Period, today: date,
              accepted_accounts: set[str]) -> dict[str, Any]:
    rows = [dashboard_row(receipt, today, receipt.account_number in accepted_accounts)
            for receipt in bills]
    revenue = sum((receipt.total for receipt in bills if receipt.ok), NO_CENTS)
    return {
        "period": str(period),
        "summary": {
            "companies": len(rows), "revenue": plain(revenue),
            "billed": sum(1 for receipt in bills if receipt.ok),
            "errors": sum(1 for receipt in bills if not receipt.ok),
            "active_contracts": sum(1 for row in rows if row["contract_end_date"]
                                    and not row["contract_expired"]),
            "expiring_within_30_days": sum(1 for row in rows if row["contract_expiring_soon"]),
            "accepted": sum(1 for row in rows if row["accepted"]),
        },
        "companies": rows}


# --- invoices ------------------------------------------------------------------------------

def bulk_zip(bills: Sequence[Receipt], *, terms_days: int = DEFAULT_TERMS_DAYS) -> bytes:
    """A ZIP with each billable company's QuickBooks CSV (``<invoice number>.csv``) and, when
    some bills could not be calculated, ``errors.txt`` naming them and why."""
    buffer = io.BytesIO()
    errors: list[str] = []
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for receipt in bills:
            if not receipt.ok:
                errors.append(f"{receipt.account_number} {receipt.company_name}: "
                              f"{receipt.error}")
                continue
            name = invoice_number(receipt.account_number, receipt.period)
            archive.writestr(f"{safe_file_name(name)}.csv", qbo_csv(receipt, terms_days=terms_days))
        if errors:
            archive.writestr("errors.txt", "\n".join(errors) + "\n")
    return buffer.getvalue()


def safe_file_name(name: str) -> str:
    """A file name without path separators (account numbers come from Codex)."""
    return "".join(char if char.isalnum() or char in "-_." else "_" for char in name)
