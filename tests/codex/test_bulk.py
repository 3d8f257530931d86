"""`/api/companies/bulk` and `/api/tickets/active` over a small realistic data set."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from flask import Flask
from flask.testing import FlaskClient

from hivematrix.codex import bulk
from hivematrix.codex.models import (
    Asset,
    Company,
    Contact,
    ContactRole,
    Location,
    PSAAgent,
    Ticket,
    TimeEntry,
)
from hivematrix.common.db import Database, utcnow


def seed(database: Database) -> None:
    now = utcnow()
    with database.transaction() as session:
        parent = Company(account_number="100", name="Group")
        acme = Company(account_number="620547", name="Acme Dental", billing_plan="Gold",
                       contract_term_length="1 Year", domains=["acme.example"], parent=parent)
        old = Company(account_number="999", name="Gone", archived_at=now, active=False)
        session.add_all([parent, acme, old])
        session.flush()
        session.add_all([
            Asset(company_id=acme.id, hostname="SRV1", device_category="Server",
                  billing_type="Server", backup_bytes=5 * 2**40 + 7),
            Asset(company_id=acme.id, hostname="PC1", device_category="Laptop",
                  billing_type="Workstation", billing_type_override="VM"),
            Asset(company_id=acme.id, hostname="OLD", billing_type="Workstation",
                  retired_at=now),
            Location(company_id=acme.id, name="Main office", address="1 Main St"),
            PSAAgent(source="freshservice", external_id="7", name="Sam Tech"),
        ])
        dana = Contact(name="Dana", email="dana@acme.example", active=True)
        ex = Contact(name="Ex Employee", active=False)
        session.add_all([dana, ex])
        session.flush()
        session.add_all([ContactRole(contact_id=dana.id, company_id=acme.id, role="billing"),
                         ContactRole(contact_id=dana.id, company_id=acme.id, role="primary"),
                         ContactRole(contact_id=ex.id, company_id=acme.id, role="general")])
        this_year = Ticket(source="freshservice", external_id="1", number="1",
                           company_id=acme.id, subject="Printer <b>jam</b>", status="open",
                           priority="high", priority_raw=3, responder_external_id="7",
                           created_at=datetime(2026, 3, 1, 12, 30, tzinfo=UTC),
                           updated_at=now - timedelta(minutes=20),
                           fr_due_by=now + timedelta(hours=2), total_hours=Decimal("1.75"))
        last_year = Ticket(source="freshservice", external_id="2", number="2",
                           company_id=acme.id, subject="Old", status="closed",
                           priority="low", created_at=datetime(2025, 12, 31, 23, 59,
                                                               tzinfo=UTC))
        december = Ticket(source="freshservice", external_id="3", number="3",
                          company_id=acme.id, subject="Migration", status="closed",
                          priority="medium", created_at=datetime(2025, 12, 20, tzinfo=UTC),
                          updated_at=datetime(2025, 12, 22, tzinfo=UTC))
        session.add_all([this_year, last_year, december])
        session.flush()
        # Opened in December, its hours were logged in January: it belongs to 2026's bills.
        session.add(TimeEntry(ticket_id=december.id, external_id="c", hours=Decimal("2.00"),
                              executed_at=datetime(2026, 1, 5, 9, tzinfo=UTC)))
        session.add_all([TimeEntry(ticket_id=this_year.id, external_id="a",
                                   hours=Decimal("1.25"),
                                   executed_at=datetime(2026, 3, 1, 14, tzinfo=UTC)),
                         TimeEntry(ticket_id=this_year.id, external_id="b",
                                   hours=Decimal("0.50"))])


def test_bulk_content(codex_db: Database) -> None:
    seed(codex_db)
    with codex_db.transaction() as session:
        items = bulk.companies_bulk(session, include_tickets=True, year=2026)
    by_number = {item["company"]["account_number"]: item for item in items}
    assert sorted(by_number) == ["100", "620547"]  # the archived company is left out
    acme = by_number["620547"]
    assert acme["company"]["parent_account_number"] == "100"
    assert [(a["hostname"], a["billing_type"], a["backup_bytes"]) for a in acme["assets"]] == [
        ("SRV1", "Server", 5 * 2**40 + 7), ("PC1", "VM", None)]
    assert [(c["name"], c["role"], c["active"]) for c in acme["contacts"]] == [
        ("Dana", "billing", True), ("Dana", "primary", True), ("Ex Employee", "general", False)]
    assert [t["external_id"] for t in acme["tickets"]] == ["3", "1"]
    assert acme["tickets"][1]["total_hours"] == "1.75"
    assert [e["hours"] for e in acme["tickets"][1]["time_entries"]] == ["1.25", "0.50"]
    assert [e["executed_at"][:10] for e in acme["tickets"][0]["time_entries"]] == ["2026-01-05"]


def test_postgresql_builds_exactly_the_same_document(codex_db: Database) -> None:
    seed(codex_db)
    for include, year in ((True, 2026), (True, None), (False, None)):
        with codex_db.transaction() as session:
            expected = bulk.companies_bulk(session, include_tickets=include, year=year)
            built = json.loads(bulk.companies_bulk_json(session, include_tickets=include,
                                                        year=year))
        assert built == json.loads(json.dumps(expected)), (include, year)


def test_bulk_endpoint_permissions(codex_app: Flask, codex_client: FlaskClient,
                                   codex_db_url: str, as_user: Callable[..., dict[str, str]],
                                   as_service: Callable[[str], dict[str, str]]) -> None:
    seed(codex_app.extensions["hivematrix.db"])
    path = "/api/companies/bulk?include_tickets=true&year=2026"
    response = codex_client.get(path, headers=as_service("ledger"))
    assert response.status_code == 200
    assert len(response.get_json()) == 2
    assert codex_client.get(path, headers=as_service("beacon")).status_code == 403
    mine = codex_client.get(path, headers=as_user("client", account_number="620547")).get_json()
    assert [item["company"]["account_number"] for item in mine] == ["620547"]
    response = codex_client.get("/api/companies/bulk?year=20x6", headers=as_user("billing"))
    assert response.status_code == 400 and "year" in response.get_json()["errors"]["query"]


def test_active_feed_endpoint(codex_app: Flask, codex_client: FlaskClient,
                              as_user: Callable[..., dict[str, str]],
                              as_service: Callable[[str], dict[str, str]]) -> None:
    seed(codex_app.extensions["hivematrix.db"])
    body = codex_client.get("/api/tickets/active", headers=as_service("beacon")).get_json()
    assert body["total_active"] == 1
    item = body["section1"][0]
    assert (item["subject"], item["agent_name"], item["sla_class"]) == (
        "Printer <b>jam</b>", "Sam Tech", "sla-critical")
    assert item["company_name"] == "Acme Dental"
    filtered = codex_client.get("/api/tickets/active?responder_id=8",
                                headers=as_user("technician")).get_json()
    assert filtered["total_active"] == 0
    assert codex_client.get("/api/tickets/active?group_id=1,2",
                            headers=as_user("technician")).get_json()["total_active"] == 0
    assert codex_client.get("/api/tickets/active", headers=as_user(
        "client", account_number="620547")).status_code == 403
    assert codex_client.get("/api/tickets/active",
                            headers=as_service("ledger")).status_code == 403



def test_bulk_narrowed_to_some_companies(codex_app: Flask, codex_client: FlaskClient,
                                         as_user: Callable[..., dict[str, str]],
                                         as_service: Callable[[str], dict[str, str]]) -> None:
    seed(codex_app.extensions["hivematrix.db"])
    one = codex_client.get("/api/companies/bulk?account_number=620547&include_tickets=true",
                           headers=as_service("ledger")).get_json()
    assert [item["company"]["account_number"] for item in one] == ["620547"]
    both = codex_client.get("/api/companies/bulk?account_number=620547,100",
                            headers=as_service("ledger")).get_json()
    assert sorted(item["company"]["account_number"] for item in both) == ["100", "620547"]
    client = as_user("client", account_number="620547")
    assert codex_client.get("/api/companies/bulk?account_number=100",
                            headers=client).get_json() == []
