"""The calculation fed by what Codex really sends: its bulk JSON built from a seeded Codex
database (on SQLite by Python, on PostgreSQL by the database itself), parsed and billed."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import orjson
import pytest

from hivematrix.codex import SERVICE as CODEX
from hivematrix.codex import bulk
from hivematrix.codex.models import Asset, Company, Contact, ContactRole, Ticket, TimeEntry
from hivematrix.common.db import Database
from hivematrix.common.testing import migrated_database
from hivematrix.ledger.calculation import calculate
from hivematrix.ledger.inputs import _WIRE, Overrides, from_codex_bulk_item, from_codex_bulk_line
from hivematrix.ledger.invoice import qbo_csv
from tests.ledger.builders import GOLD, TB


@pytest.fixture(params=["sqlite", "postgresql"])
def codex_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    url = (f"sqlite:///{tmp_path}/codex.db" if request.param == "sqlite"
           else request.getfixturevalue("pg_url"))
    assert CODEX.migrations
    with migrated_database(CODEX.migrations, url):
        database = Database(url)
        yield database
        database.dispose()


def seed(database: Database) -> None:
    with database.transaction() as session:
        acme = Company(account_number="620547", name="Acme Dental", billing_plan="Gold",
                       contract_term_length="1 Year", contract_start_date=date(2025, 6, 1))
        session.add(acme)
        session.flush()
        session.add_all([
            Asset(company_id=acme.id, hostname="SRV1", device_category="Server",
                  billing_type="Server", backup_bytes=3 * TB),
            # Codex's own override makes this laptop a VM before Ledger sees it.
            Asset(company_id=acme.id, hostname="PC1", device_category="Laptop",
                  billing_type="Workstation", billing_type_override="VM"),
            Asset(company_id=acme.id, hostname="PC2", device_category="Laptop",
                  billing_type="Workstation", backup_bytes=TB // 2),
            Asset(company_id=acme.id, hostname="OLD", billing_type="Workstation",
                  backup_bytes=50 * TB, retired_at=datetime(2026, 1, 5, tzinfo=UTC)),
        ])
        dana = Contact(name="Dana", email="dana@acme.example", active=True)
        eli = Contact(name="Eli", email="eli@acme.example", active=True)
        gone = Contact(name="Ex Employee", active=False)
        session.add_all([dana, eli, gone])
        session.flush()
        session.add_all([ContactRole(contact_id=dana.id, company_id=acme.id, role="billing"),
                         ContactRole(contact_id=dana.id, company_id=acme.id, role="primary"),
                         ContactRole(contact_id=eli.id, company_id=acme.id, role="general"),
                         ContactRole(contact_id=gone.id, company_id=acme.id, role="general")])
        spanning = Ticket(source="freshservice", external_id="1", number="101",
                          company_id=acme.id, subject="Server slow", status="closed",
                          priority="high", created_at=datetime(2026, 2, 20, tzinfo=UTC),
                          closed_at=datetime(2026, 3, 4, tzinfo=UTC),
                          total_hours=Decimal("3.50"))
        only_total = Ticket(source="freshservice", external_id="2", number="102",
                            company_id=acme.id, subject="New user", status="closed",
                            priority="low", created_at=datetime(2026, 3, 1, tzinfo=UTC),
                            closed_at=datetime(2026, 3, 2, 15, tzinfo=UTC),
                            total_hours=Decimal("0.75"))
        still_open = Ticket(source="freshservice", external_id="3", number="103",
                            company_id=acme.id, subject="Printer", status="open",
                            priority="low", created_at=datetime(2026, 2, 26, tzinfo=UTC),
                            updated_at=datetime(2026, 3, 20, tzinfo=UTC),
                            total_hours=Decimal("0.50"))
        session.add_all([spanning, only_total, still_open])
        session.flush()
        session.add_all([
            TimeEntry(ticket_id=spanning.id, external_id="a", hours=Decimal("2.00"),
                      executed_at=datetime(2026, 2, 27, 16, tzinfo=UTC)),
            TimeEntry(ticket_id=spanning.id, external_id="b", hours=Decimal("1.25"),
                      executed_at=datetime(2026, 3, 3, 9, 30, tzinfo=UTC)),
            TimeEntry(ticket_id=spanning.id, external_id="c", hours=Decimal("0.25"),
                      billable=False, executed_at=datetime(2026, 3, 3, 10, tzinfo=UTC)),
        ])


def test_billing_from_codex_bulk_json(codex_database: Database) -> None:
    seed(codex_database)
    with codex_database.transaction() as session:
        items = orjson.loads(bulk.companies_bulk_json(session, include_tickets=True,
                                                      year=2026))
    data = from_codex_bulk_item(items[0])
    assert [asset.hostname for asset in data.assets] == ["SRV1", "PC1", "PC2"]
    assert [contact.name for contact in data.contacts] == ["Dana", "Eli", "Ex Employee"]
    receipt = calculate(data, [GOLD], Overrides(), 2026, 3, today=date(2026, 4, 1))
    # users: Dana and Eli (Ex Employee is inactive) = 2 * 25 = 50
    # assets: SRV1 120 + PC1 (a VM in Codex) 60 + PC2 30 = 210; the retired one is not billed
    # backup: workstations PC2 (0.5 TB), servers SRV1 (3 TB) → base 10 + 50 = 60;
    #         3.5 TB - 2 included = 1.5 TB * 20 = 30 → 90
    # hours in March: 1.25 (entry b; a is February, c is not billable) + 0.75 (ticket 102,
    #         closed in March, no entries) + 0.50 (ticket 103, open, last updated in March)
    #         = 2.5 * 150 = 375
    # total 50 + 210 + 90 + 375 = 725
    assert receipt.subtotals == {"users": Decimal("50.00"), "assets": Decimal("210.00"),
                                 "backup": Decimal("90.00"), "hours": Decimal("375.00"),
                                 "custom": Decimal("0.00")}
    assert receipt.total == Decimal("725.00")
    assert receipt.warnings == ()
    assert receipt.hours is not None
    # (the bulk lists tickets in the order they were created)
    assert [(item.number, item.hours) for item in receipt.hours.tickets] == [
        ("101", Decimal("1.25")), ("103", Decimal("0.50")), ("102", Decimal("0.75"))]
    assert receipt.contract_end_date == date(2026, 5, 31)
    assert qbo_csv(receipt).count("\r\n") == 1 + 8  # header + 8 rows


def test_codex_lines_read_fast_as_they_read_carefully(codex_database: Database) -> None:
    """Codex's own one-company-per-line answer goes through the fast decoding (no fallback)
    and gives the same inputs as the careful reading of the parsed document."""
    seed(codex_database)
    with codex_database.transaction() as session:
        full = list(bulk.companies_bulk_lines(session, include_tickets=True, year=2026))
        cut = list(bulk.companies_bulk_lines(session, include_tickets=True, year=2026,
                                             view="billing"))
    assert full and len(cut) == len(full)
    for line, billing_line in zip(full, cut, strict=True):
        _WIRE.decode(line)
        _WIRE.decode(billing_line)
        expected = from_codex_bulk_item(orjson.loads(line))
        # The billing view gives Ledger exactly what the full document does.
        assert from_codex_bulk_line(line) == from_codex_bulk_line(billing_line) == expected
