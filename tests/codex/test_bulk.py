"""`/api/companies/bulk` and `/api/tickets/active` over a small realistic data set."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select, text, update

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

#: Slices are PostgreSQL's: the SQLite build is one pass in Python.
POSTGRESQL_ONLY = pytest.mark.parametrize("codex_db_url", ["postgresql"], indirect=True)


def seed(database: Database) -> None:
    # Whole seconds: PostgreSQL writes a fraction without its trailing zeros (.12345), Python
    # with six digits (.123450); both are the same instant, but the documents compare as text.
    now = utcnow().replace(microsecond=0)
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


def test_billing_view_is_the_full_document_cut_down(codex_db: Database) -> None:
    """``view=billing`` built by the database holds what a bill needs and nothing else, one
    contact per person (Dana has two roles), the same as cutting down the full items."""
    seed(codex_db)
    for include, year in ((True, 2026), (False, None)):
        with codex_db.transaction() as session:
            full = bulk.companies_bulk(session, include_tickets=include, year=year)
            cut = [json.loads(line) for line in bulk.companies_bulk_lines(
                session, include_tickets=include, year=year, view="billing", workers=2,
                min_slice=1)]
        assert cut == json.loads(json.dumps([bulk.billing_view(item) for item in full]))
    acme = next(item for item in cut if item["company"]["account_number"] == "620547")
    assert [contact["name"] for contact in acme["contacts"]] == ["Dana", "Ex Employee"]
    assert set(acme["company"]) == {"account_number", "name", "billing_plan",
                                    "contract_term_length", "contract_start_date",
                                    "contract_end_date", "support_level"}
    assert "locations" not in acme and "tickets" not in acme


@POSTGRESQL_ONLY
def test_postgresql_slices_on_several_connections_agree(codex_db: Database) -> None:
    """Each company built by its own connection (one slice each), all in the exported
    snapshot: the same items in the same order as one query, each on one line."""
    seed(codex_db)
    for include, year in ((True, 2026), (True, None), (False, None)):
        with codex_db.transaction() as session:
            whole = list(bulk.companies_bulk_lines(session, include_tickets=include, year=year))
            sliced = list(bulk.companies_bulk_lines(session, include_tickets=include, year=year,
                                                    workers=2, min_slice=1))
        assert len(whole) == 2 and all(b"\n" not in line for line in sliced)
        assert [json.loads(line) for line in sliced] == [json.loads(line) for line in whole]


@POSTGRESQL_ONLY
def test_postgresql_slices_read_one_snapshot(codex_db: Database) -> None:
    """A slice that starts after another transaction renamed a company still reads the
    snapshot the bulk read began with (slices start as workers free up)."""
    seed(codex_db)
    sql, params = bulk._pg_bulk_query(include_tickets=False, year=None)
    with codex_db.transaction() as session:
        ids = list(session.scalars(select(Company.id).where(Company.archived_at.is_(None))))
        snapshot = session.execute(text("SELECT pg_export_snapshot()")).scalar_one()
        with codex_db.transaction() as other:
            other.execute(update(Company).values(name=Company.name + " (renamed)"))
        rows = bulk._build_slice(codex_db.engine, snapshot, sql, {**params, "ids": ids})
    names = [json.loads(row)["company"]["name"] for row in rows]
    assert len(names) == 2 and not any(name.endswith("(renamed)") for name in names)
    with pytest.raises(ValueError):
        bulk._build_slice(codex_db.engine, "1'; DROP TABLE codex_companies; --", sql, params)


def test_bulk_endpoint_streams_json_or_ndjson(codex_app: Flask, codex_client: FlaskClient,
                                             as_service: Callable[[str], dict[str, str]]) -> None:
    seed(codex_app.extensions["hivematrix.db"])
    headers = as_service("ledger")
    array = codex_client.get("/api/companies/bulk?include_tickets=true", headers=headers)
    assert array.is_streamed and array.mimetype == "application/json"
    lines = codex_client.get("/api/companies/bulk?include_tickets=true&format=ndjson",
                             headers=headers)
    assert lines.mimetype == "application/x-ndjson"
    assert [json.loads(line) for line in lines.get_data().splitlines()] == array.get_json()
    refused = codex_client.get("/api/companies/bulk?format=xml", headers=headers)
    assert refused.status_code == 400 and "format" in refused.get_json()["errors"]["query"]
    billing = codex_client.get("/api/companies/bulk?view=billing", headers=headers).get_json()
    assert [set(item) for item in billing] == [{"company", "assets", "contacts"}] * 2
    refused = codex_client.get("/api/companies/bulk?view=everything", headers=headers)
    assert refused.status_code == 400 and "view" in refused.get_json()["errors"]["query"]


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
