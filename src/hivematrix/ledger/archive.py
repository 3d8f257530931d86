"""The archive: accepted bills as immutable snapshots.

Accepting stores the receipt's lines, its JSON and the exact invoice CSV, all from the one
:class:`~hivematrix.ledger.calculation.Receipt` passed in (calculated once). A period holds at
most one live snapshot per company (409 otherwise); a correction voids it — a row of its own,
the snapshot stays as it was — and re-issues the bill as ``<account>-<YYYYMM>-R<n>``.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import Select, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from hivematrix.common.db import utcnow
from hivematrix.ledger.calculation import Receipt
from hivematrix.ledger.errors import LedgerError, not_found
from hivematrix.ledger.invoice import DEFAULT_TERMS_DAYS, due_date, invoice_date, invoice_number
from hivematrix.ledger.invoice import qbo_csv as render_csv
from hivematrix.ledger.models import BillingSnapshot, SnapshotLineItem, SnapshotVoid
from hivematrix.ledger.money import ROUNDING, plain

QUANTITY = Decimal("0.0001")
SEARCH_LIMIT_MAX = 1000


def live(session: Session, account_number: str, year: int, month: int) -> BillingSnapshot | None:
    """The period's snapshot that is not voided, if any."""
    return session.scalar(
        select(BillingSnapshot).outerjoin(SnapshotVoid)
        .where(BillingSnapshot.account_number == account_number,
               BillingSnapshot.year == year, BillingSnapshot.month == month,
               SnapshotVoid.id.is_(None)))


def accepted_accounts(session: Session, year: int, month: int) -> set[str]:
    return set(session.scalars(
        select(BillingSnapshot.account_number).outerjoin(SnapshotVoid)
        .where(BillingSnapshot.year == year, BillingSnapshot.month == month,
               SnapshotVoid.id.is_(None))))


def accept(session: Session, receipt: Receipt, *, accepted_by: str, notes: str = "",
           terms_days: int = DEFAULT_TERMS_DAYS,
           replaces: BillingSnapshot | None = None) -> BillingSnapshot:
    """Snapshot ``receipt``. 409 when the period is accepted already; 422 for a bill with an
    error (there is no invoice to keep)."""
    if receipt.error is not None:
        raise LedgerError(f"{receipt.account_number} {receipt.period}: {receipt.error}",
                          status=422, field="account_number")
    year, month = receipt.period.year, receipt.period.month
    existing = live(session, receipt.account_number, year, month)
    if existing is not None:
        raise LedgerError(f"The bill of {receipt.account_number} for {receipt.period} is "
                          f"accepted already (invoice {existing.invoice_number}); void it to "
                          "re-issue.", status=409)
    revision = session.scalar(select(func.count(BillingSnapshot.id)).where(
        BillingSnapshot.account_number == receipt.account_number,
        BillingSnapshot.year == year, BillingSnapshot.month == month)) or 0
    subtotals = receipt.subtotals
    snapshot = BillingSnapshot(
        account_number=receipt.account_number, company_name=receipt.company_name,
        year=year, month=month, revision=revision,
        invoice_number=invoice_number(receipt.account_number, receipt.period, revision),
        replaces_id=replaces.id if replaces else None, plan_name=receipt.plan_name,
        contract_term=receipt.contract_term, support_level=receipt.support_level,
        total_users=subtotals["users"], total_assets=subtotals["assets"],
        total_backup=subtotals["backup"], total_hours=subtotals["hours"],
        total_custom=subtotals["custom"], total_amount=receipt.total,
        user_count=sum(receipt.user_quantities.values()),
        asset_count=sum(receipt.asset_quantities.values()),
        billable_hours=(receipt.hours.billable_hours if receipt.hours else Decimal(0)),
        invoice_date=invoice_date(receipt.period).isoformat(),
        due_date=due_date(receipt.period, terms_days).isoformat(),
        receipt_json=receipt.to_json(),
        invoice_csv=render_csv(receipt, revision=revision, terms_days=terms_days),
        notes=notes, accepted_by=accepted_by, accepted_at=utcnow())
    snapshot.line_items = [
        SnapshotLineItem(position=position, section=line.section, name=line.name[:255],
                         type=line.type[:50], source=line.source,
                         quantity=line.quantity.quantize(QUANTITY, context=ROUNDING),
                         rate=line.rate, amount=line.amount, ref=line.ref,
                         description=line.description)
        for position, line in enumerate(receipt.lines)]
    session.add(snapshot)
    try:
        session.flush()
    except IntegrityError:
        # Someone accepted the same period between our check and our insert.
        raise LedgerError(f"The bill of {receipt.account_number} for {receipt.period} is "
                          "accepted already.", status=409) from None
    return snapshot


def get(session: Session, snapshot_id: int) -> BillingSnapshot:
    snapshot = session.get(BillingSnapshot, snapshot_id)
    if snapshot is None:
        raise not_found(f"snapshot {snapshot_id}")
    return snapshot


def by_invoice_number(session: Session, number: str) -> BillingSnapshot:
    snapshot = session.scalar(select(BillingSnapshot).where(
        BillingSnapshot.invoice_number == number))
    if snapshot is None:
        raise not_found(f"snapshot with invoice number '{number}'")
    return snapshot


def void(session: Session, snapshot: BillingSnapshot, *, reason: str,
         voided_by: str) -> SnapshotVoid:
    if not reason.strip():
        raise LedgerError("reason: say why the bill is voided", field="reason")
    if snapshot.void is not None:
        raise LedgerError(f"Invoice {snapshot.invoice_number} is voided already.", status=409)
    record = SnapshotVoid(snapshot_id=snapshot.id, reason=reason.strip(), voided_by=voided_by,
                          voided_at=utcnow())
    session.add(record)
    session.flush()
    session.refresh(snapshot)
    return record


def reissue(session: Session, snapshot: BillingSnapshot, receipt: Receipt, *, reason: str,
            by: str, terms_days: int = DEFAULT_TERMS_DAYS) -> BillingSnapshot:
    """Void ``snapshot`` (unless it is already) and accept ``receipt`` as its successor."""
    if (receipt.account_number, receipt.period.year, receipt.period.month) != (
            snapshot.account_number, snapshot.year, snapshot.month):
        raise LedgerError("The new bill is not for the voided bill's company and period.")
    if snapshot.void is None:
        void(session, snapshot, reason=reason, voided_by=by)
    elif live(session, snapshot.account_number, snapshot.year, snapshot.month) is not None:
        raise LedgerError(f"Invoice {snapshot.invoice_number} has been re-issued already.",
                          status=409)
    return accept(session, receipt, accepted_by=by, notes=reason.strip(),
                  terms_days=terms_days, replaces=snapshot)


# --- reading -------------------------------------------------------------------------------

def search(session: Session, *, account_number: str | None = None, year: int | None = None,
           month: int | None = None, invoice_number: str | None = None,
           date_from: date | None = None, date_to: date | None = None,
           company: str | None = None,
           limit: int = 100, offset: int = 0) -> tuple[int, list[BillingSnapshot]]:
    """Snapshots matching every given filter (accepted between ``date_from`` and ``date_to``,
    both inclusive; ``company``: the account number, or part of the company's name in any
    case), newest period first; returns (total, page)."""
    query: Select[Any] = select(BillingSnapshot)
    if account_number:
        query = query.where(BillingSnapshot.account_number == account_number)
    if company:
        query = query.where(or_(
            BillingSnapshot.account_number == company,
            func.lower(BillingSnapshot.company_name).contains(company.lower(), autoescape=True)))
    if year is not None:
        query = query.where(BillingSnapshot.year == year)
    if month is not None:
        query = query.where(BillingSnapshot.month == month)
    if invoice_number:
        query = query.where(BillingSnapshot.invoice_number.contains(invoice_number,
                                                                    autoescape=True))
    if date_from is not None:
        query = query.where(BillingSnapshot.accepted_at >= _start_of(date_from))
    if date_to is not None:
        query = query.where(BillingSnapshot.accepted_at < _start_of(date_to + timedelta(days=1)))
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    page = session.scalars(
        query.options(selectinload(BillingSnapshot.void))
        .order_by(BillingSnapshot.year.desc(), BillingSnapshot.month.desc(),
                  BillingSnapshot.account_number, BillingSnapshot.revision.desc())
        .limit(limit).offset(offset))
    return total, list(page)


def _start_of(day: date) -> datetime:
    return datetime.combine(day, time(), tzinfo=UTC)


def summary(snapshot: BillingSnapshot) -> dict[str, Any]:
    void_record = snapshot.void
    return {
        "id": snapshot.id, "account_number": snapshot.account_number,
        "company_name": snapshot.company_name, "year": snapshot.year, "month": snapshot.month,
        "period": f"{snapshot.year:04d}-{snapshot.month:02d}", "revision": snapshot.revision,
        "invoice_number": snapshot.invoice_number, "invoice_date": snapshot.invoice_date,
        "due_date": snapshot.due_date, "total": plain(snapshot.total_amount),
        "user_count": snapshot.user_count, "asset_count": snapshot.asset_count,
        "accepted_by": snapshot.accepted_by, "accepted_at": snapshot.accepted_at.isoformat(),
        "status": "void" if void_record else "accepted", "replaces_id": snapshot.replaces_id,
        "void": None if void_record is None else {
            "reason": void_record.reason, "voided_by": void_record.voided_by,
            "voided_at": void_record.voided_at.isoformat()}}


def detail(snapshot: BillingSnapshot) -> dict[str, Any]:
    return {
        **summary(snapshot), "plan_name": snapshot.plan_name,
        "contract_term": snapshot.contract_term, "support_level": snapshot.support_level,
        "notes": snapshot.notes, "billable_hours": plain(snapshot.billable_hours),
        "subtotals": {"users": plain(snapshot.total_users),
                      "assets": plain(snapshot.total_assets),
                      "backup": plain(snapshot.total_backup),
                      "hours": plain(snapshot.total_hours),
                      "custom": plain(snapshot.total_custom)},
        "line_items": [{"section": item.section, "name": item.name, "type": item.type,
                        "source": item.source, "quantity": plain(item.quantity),
                        "rate": plain(item.rate), "amount": plain(item.amount),
                        "ref": item.ref, "description": item.description}
                       for item in snapshot.line_items],
        "receipt": snapshot.receipt_json}
