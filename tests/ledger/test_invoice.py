"""Invoice numbering and dates, the QuickBooks Online CSV (exact text), the IIF export and
formula injection."""

from __future__ import annotations

import csv
import io
from datetime import date

import pytest

from hivematrix.ledger.calculation import Receipt
from hivematrix.ledger.inputs import (
    AssetOverride,
    ClientOverride,
    CustomLineItem,
    ManualUser,
    Overrides,
    Period,
    UserOverride,
)
from hivematrix.ledger.invoice import (
    CSV_COLUMNS,
    InvoiceError,
    due_date,
    guard,
    invoice_date,
    invoice_number,
    invoice_rows,
    qbd_iif,
    qbo_csv,
    quantity_text,
    rate_text,
)
from tests.ledger.builders import TB, D, asset, at, bill, company, contact, entry, ticket


def test_invoice_number_and_dates() -> None:
    assert invoice_number("620547", Period(2025, 10)) == "620547-202510"
    assert invoice_number("620547", Period(2025, 10), revision=1) == "620547-202510-R1"
    assert invoice_date(Period(2028, 2)) == date(2028, 2, 29)  # a leap year
    assert invoice_date(Period(2025, 12)) == date(2025, 12, 31)
    assert due_date(Period(2028, 2)) == date(2028, 3, 30)  # 29 Feb + 30 days
    assert due_date(Period(2025, 12), terms_days=15) == date(2026, 1, 15)


def small_receipt() -> Receipt:
    """Two paid users, a No Charge user, a Custom user, two workstations, a server with
    2.5 TB of backup, 0.75 billable hours and a one-off fee, for May 2026."""
    data = company(
        assets=(asset(1, "Workstation", TB // 2), asset(2, "Workstation"),
                asset(3, "Server", 2 * TB)),
        contacts=(contact(1, "Dana"), contact(2, "Eli"), contact(3, "Fay"), contact(4, "Gil")),
        tickets=(ticket(1, entry("1.75", at(2026, 5, 2))),))
    overrides = Overrides(
        client=ClientOverride.enabled(prepaid_hours_monthly=D("1")),
        users=(UserOverride(3, "No Charge"), UserOverride(4, "Custom", D("12.50"))),
        line_items=(CustomLineItem(1, "Firewall setup", "one_off", D("199.00"),
                                   one_off=Period(2026, 5)),))
    return bill(data, overrides)


def test_qbo_csv_exact_text() -> None:
    # users: Dana, Eli at 25 → one row 2 * 25 = 50; Fay No Charge (left off); Gil 12.50
    # assets: 2 * 30 = 60; 1 * 120
    # backup: 1 workstation * 10; 1 server * 50; 2.5 TB - 2 included = 0.5 TB * 20 = 10
    # hours: 1.75 - 1 prepaid = 0.75 * 150 = 112.50; the one-off fee 199
    # total 50 + 12.50 + 60 + 120 + 10 + 50 + 10 + 112.50 + 199 = 624
    receipt = small_receipt()
    assert receipt.total == D("624.00")
    head = "620547-202605,Acme Dental,05/31/2026,06/30/2026,"
    assert qbo_csv(receipt) == (
        "InvoiceNo,Customer,InvoiceDate,DueDate,Item(Product/Service),Description,Qty,Rate,"
        "Amount\r\n"
        f"{head}Managed Users,Users,2,25.00,50.00\r\n"
        f"{head}Managed Users,User: Gil (Custom),1,12.50,12.50\r\n"
        f"{head}Managed Devices,Workstations,2,30.00,60.00\r\n"
        f"{head}Managed Devices,Servers,1,120.00,120.00\r\n"
        f"{head}Backup Services,Workstation backup base fee,1,10.00,10.00\r\n"
        f"{head}Backup Services,Server backup base fee,1,50.00,50.00\r\n"
        f"{head}Backup Services,Backup storage overage (TB),0.5,20.00,10.00\r\n"
        f"{head}Hourly Labor,Billable hours (Billed Hourly),0.75,150.00,112.50\r\n"
        f"{head}Custom Services,Firewall setup (One-off),1,199.00,199.00\r\n")


def test_qbo_csv_options_and_totals() -> None:
    receipt = small_receipt()
    text = qbo_csv(receipt, revision=2, terms_days=45, date_format="%Y-%m-%d")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert tuple(rows[0]) == CSV_COLUMNS
    assert {(row["InvoiceNo"], row["InvoiceDate"], row["DueDate"]) for row in rows} == {
        ("620547-202605-R2", "2026-05-31", "2026-07-15")}
    assert sum(D(row["Amount"]) for row in rows) == receipt.total


def test_custom_assets_get_rows_of_their_own_and_groups_keep_their_rate() -> None:
    overrides = Overrides(
        assets=(AssetOverride(2, "Custom", D("45.00")), AssetOverride(3, "Custom", D("45.00"))),
        manual_users=(ManualUser(1, "Temp", "Custom", D("25.00")),))
    receipt = bill(company(assets=(asset(1, "Workstation"), asset(2, "Workstation"),
                                   asset(3, "Workstation"), asset(4, "Workstation")),
                           contacts=(contact(1, "Dana"),)), overrides)
    # Dana (Paid 25) and Temp (Custom 25) have the same rate but different types.
    assert [(row.item, row.description, row.quantity, row.amount)
            for row in invoice_rows(receipt)] == [
        ("Managed Users", "Users", 1, D("25.00")),
        ("Managed Users", "User: Temp (Custom)", 1, D("25.00")),
        ("Managed Devices", "Workstations", 2, D("60.00")),
        ("Managed Devices", "Device: WORKSTATION-2 (Custom)", 1, D("45.00")),
        ("Managed Devices", "Device: WORKSTATION-3 (Custom)", 1, D("45.00"))]


def test_csv_cells_that_a_spreadsheet_would_run_are_quoted() -> None:
    for cell, shown in [("=HYPERLINK(\"http://evil\")", "'=HYPERLINK(\"http://evil\")"),
                        ("+1+1", "'+1+1"), ("-2+3", "'-2+3"), ("@SUM(A1)", "'@SUM(A1)"),
                        ("\tx", "'\tx"), ("\rx", "'\rx"), ("Acme", "Acme"), ("", "")]:
        assert guard(cell) == shown
    data = company(name="=cmd|' /C calc'!A0")
    overrides = Overrides(line_items=(
        CustomLineItem(1, "@SUM(1+1)", "recurring", D("5.00")),
        CustomLineItem(2, "-10% discount?", "recurring", D("1.00"),
                       description="=1+1")))
    rows = list(csv.reader(io.StringIO(qbo_csv(bill(data, overrides)))))
    assert [(row[1], row[5]) for row in rows[1:]] == [
        ("'=cmd|' /C calc'!A0", "'@SUM(1+1) (Recurring)"),
        ("'=cmd|' /C calc'!A0", "'-10% discount? (Recurring) - =1+1")]


def test_zero_amount_lines_stay_on_the_receipt_but_not_on_the_invoice() -> None:
    receipt = bill(company(assets=(asset(1, "Tablet"),), contacts=(contact(1, "Dana"),)),
                   Overrides(users=(UserOverride(1, "No Charge"),)))
    assert len(receipt.lines) == 2 and receipt.total == 0
    assert qbo_csv(receipt).splitlines() == [",".join(CSV_COLUMNS)]


def test_an_error_receipt_has_no_invoice() -> None:
    receipt = bill(company(billing_plan="Platinum"))
    with pytest.raises(InvoiceError, match="no plan 'Platinum' for term '1 Year'"):
        qbo_csv(receipt)
    with pytest.raises(InvoiceError):
        qbd_iif(receipt)


def test_iif_exact_text() -> None:
    data = company(name="Acme\tDental\r\nGroup", assets=(asset(1, "Server"),),
                   contacts=(contact(1, "Dana"),))
    # 1 user * 25 + 1 server * 120 = 145
    receipt = bill(data, year=2026, month=2)
    tab = "\t"
    assert qbd_iif(receipt).split("\r\n") == [
        tab.join(["!TRNS", "TRNSTYPE", "DATE", "ACCNT", "NAME", "AMOUNT", "DOCNUM", "DUEDATE",
                  "MEMO"]),
        tab.join(["!SPL", "TRNSTYPE", "DATE", "ACCNT", "NAME", "AMOUNT", "DOCNUM", "MEMO",
                  "QNTY", "PRICE", "INVITEM"]),
        "!ENDTRNS",
        tab.join(["TRNS", "INVOICE", "02/28/2026", "Accounts Receivable", "Acme Dental Group",
                  "145.00", "620547-202602", "03/30/2026", "Billing period 2026-02"]),
        tab.join(["SPL", "INVOICE", "02/28/2026", "Services", "Acme Dental Group", "-25.00",
                  "620547-202602", "Users", "-1", "25.00", "Managed Users"]),
        tab.join(["SPL", "INVOICE", "02/28/2026", "Services", "Acme Dental Group", "-120.00",
                  "620547-202602", "Servers", "-1", "120.00", "Managed Devices"]),
        "ENDTRNS", ""]
    custom = qbd_iif(receipt, income_account="Income:Managed", revision=1)
    assert "\tIncome:Managed\t" in custom and "\t620547-202602-R1\t" in custom


def test_number_formats() -> None:
    assert [quantity_text(D(text)) for text in ("3", "2.50", "0.123456", "1E+2", "0.00005")] == [
        "3", "2.5", "0.1235", "100", "0.0001"]
    assert [rate_text(D(text)) for text in ("30", "12.5", "33.335", "0.10")] == [
        "30.00", "12.50", "33.335", "0.10"]
