"""Invoices from a receipt: numbering, dates, QuickBooks Online CSV and QuickBooks Desktop IIF.

There is one row builder (:func:`invoice_rows`) behind both formats, so a CSV and an IIF of the
same receipt always carry the same rows and the same total as the receipt:

- users and assets grouped by type and rate (Paid users, Workstations, ...), each Custom-cost
  user or asset on a row of its own with its name;
- backup base fees (workstation, server) and storage overage as separate rows, each with its
  real rate (the overage's quantity is TB, shown to 4 decimals);
- billable hours with the hourly rate;
- each custom line item.

Rows of amount 0 (No Charge users, included support hours, ...) stay on the receipt but are left
off the invoice. A receipt that carries an error has no invoice (:class:`InvoiceError`).
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

from hivematrix.ledger.calculation import Line, Receipt, Section
from hivematrix.ledger.inputs import CUSTOM, Period
from hivematrix.ledger.money import ROUNDING, ZERO, cents, money_text, plain

DEFAULT_TERMS_DAYS = 30
CSV_COLUMNS = ("InvoiceNo", "Customer", "InvoiceDate", "DueDate", "Item(Product/Service)",
               "Description", "Qty", "Rate", "Amount")

#: QuickBooks product/service per section of the bill.
ITEMS: dict[Section, str] = {"users": "Managed Users", "assets": "Managed Devices",
                             "backup": "Backup Services", "hours": "Hourly Labor",
                             "custom": "Custom Services"}
_PLURALS = {"Workstation": "Workstations", "Server": "Servers", "VM": "Virtual machines",
            "Switch": "Switches", "Firewall": "Firewalls", "Printer": "Printers",
            "Paid": "Users"}

#: First characters that make a spreadsheet run a cell as a formula.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")



class InvoiceError(ValueError):
    """The receipt cannot be invoiced (it carries a calculation error)."""


def invoice_number(account_number: str, period: Period, revision: int = 0) -> str:
    """``<account>-<YYYYMM>``; a re-issue after a void is ``...-R1``, ``...-R2``."""
    number = f"{account_number}-{period.year:04d}{period.month:02d}"
    return f"{number}-R{revision}" if revision else number


def invoice_date(period: Period) -> date:
    """The last day of the billing period."""
    return period.last_day


def due_date(period: Period, terms_days: int = DEFAULT_TERMS_DAYS) -> date:
    return invoice_date(period) + timedelta(days=terms_days)


@dataclass(frozen=True)
class InvoiceRow:
    item: str
    description: str
    quantity: Decimal
    rate: Decimal
    amount: Decimal


def _description(line: Line) -> str:
    if line.section == "custom":
        text = f"{line.name} ({line.type})"
        return f"{text} - {line.description}" if line.description else text
    if line.section in ("users", "assets") and line.type == CUSTOM:
        return f"{'User' if line.section == 'users' else 'Device'}: {line.name} (Custom)"
    if line.section in ("users", "assets"):
        return _PLURALS.get(line.type, line.type)
    if line.section == "hours":
        return f"{line.name} ({line.type})" if line.type else line.name
    return line.name


def invoice_rows(receipt: Receipt) -> list[InvoiceRow]:
    """The invoice's rows in bill order (users, assets, backup, hours, custom items)."""
    if receipt.error is not None:
        raise InvoiceError(f"{receipt.account_number} {receipt.period}: {receipt.error}")
    grouped: dict[tuple[object, ...], list[Line]] = {}
    for position, line in enumerate(receipt.lines):
        if line.amount == 0:
            continue
        alone = line.section in ("backup", "hours", "custom") or line.type == CUSTOM
        key = (position,) if alone else (line.section, line.type, line.rate)
        grouped.setdefault(key, []).append(line)
    return [InvoiceRow(item=ITEMS[lines[0].section], description=_description(lines[0]),
                       quantity=sum((line.quantity for line in lines), ZERO),
                       rate=lines[0].rate, amount=sum((line.amount for line in lines), ZERO))
            for lines in grouped.values()]


def quantity_text(quantity: Decimal) -> str:
    """At most 4 decimals, without trailing zeros: ``3``, ``2.5``, ``0.1234``."""
    exponent = quantity.as_tuple().exponent
    shown = quantity.quantize(Decimal("0.0001"), context=ROUNDING) if (
        isinstance(exponent, int) and exponent < -4) else quantity
    text = plain(shown)
    return text.rstrip("0").rstrip(".") if "." in text else text


def rate_text(rate: Decimal) -> str:
    """Two decimals, or more when the rate really has them (``33.335``)."""
    return money_text(rate) if cents(rate) == rate else plain(rate.normalize())


def guard(cell: str) -> str:
    """A cell a spreadsheet shows as text, never runs: a formula start gets a leading quote."""
    return f"'{cell}" if cell[:1] in FORMULA_STARTS else cell


def _header(receipt: Receipt, revision: int, terms_days: int) -> tuple[str, date, date]:
    return (invoice_number(receipt.account_number, receipt.period, revision),
            invoice_date(receipt.period), due_date(receipt.period, terms_days))


def qbo_csv(receipt: Receipt, *, revision: int = 0, terms_days: int = DEFAULT_TERMS_DAYS,
            date_format: str = "%m/%d/%Y") -> str:
    """The invoice as QuickBooks Online's invoice import CSV (header fields on every row)."""
    number, issued, due = _header(receipt, revision, terms_days)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for row in invoice_rows(receipt):
        writer.writerow([guard(cell) for cell in (
            number, receipt.company_name, issued.strftime(date_format),
            due.strftime(date_format), row.item, row.description, quantity_text(row.quantity),
            rate_text(row.rate), money_text(row.amount))])
    return out.getvalue()


def _iif_text(value: str) -> str:
    # IIF is tab separated without quoting: tabs and line breaks inside a value would split it.
    return " ".join(value.replace("\t", " ").splitlines()).replace('"', "'")


def qbd_iif(receipt: Receipt, *, revision: int = 0, terms_days: int = DEFAULT_TERMS_DAYS,
            receivable_account: str = "Accounts Receivable",
            income_account: str = "Services") -> str:
    """The invoice as a QuickBooks Desktop IIF import: one TRNS (the receivable, the total)
    and one SPL per row (income: negative amount and quantity, as IIF books an invoice)."""
    number, issued, due = _header(receipt, revision, terms_days)
    rows = invoice_rows(receipt)
    total = sum((row.amount for row in rows), ZERO)
    text = _iif_text
    day = issued.strftime("%m/%d/%Y")
    customer = text(receipt.company_name)
    lines = [
        "\t".join(("!TRNS", "TRNSTYPE", "DATE", "ACCNT", "NAME", "AMOUNT", "DOCNUM",
                   "DUEDATE", "MEMO")),
        "\t".join(("!SPL", "TRNSTYPE", "DATE", "ACCNT", "NAME", "AMOUNT", "DOCNUM", "MEMO",
                   "QNTY", "PRICE", "INVITEM")),
        "!ENDTRNS",
        "\t".join(("TRNS", "INVOICE", day, text(receivable_account), customer,
                   money_text(total), number, due.strftime("%m/%d/%Y"),
                   f"Billing period {receipt.period}")),
    ]
    lines.extend("\t".join(("SPL", "INVOICE", day, text(income_account), customer,
                            money_text(-row.amount), number, text(row.description),
                            "-" + quantity_text(row.quantity), rate_text(row.rate),
                            text(row.item)))
                 for row in rows)
    lines.append("ENDTRNS")
    return "\r\n".join(lines) + "\r\n"
