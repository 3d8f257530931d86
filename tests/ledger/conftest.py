"""Fixtures for Ledger: its database on SQLite and PostgreSQL, and a real Codex served over
HTTP (seeded through its API) for Ledger's app to call with service tokens from the fake Core."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from hivematrix.codex import SERVICE as CODEX
from hivematrix.codex import create_app as create_codex
from hivematrix.codex.models import Asset, Contact, ContactRole, Ticket, TimeEntry
from hivematrix.common.db import Database
from hivematrix.common.testing import FakeCore, database_url_fixture, migrated_database, serve_wsgi
from hivematrix.ledger import SERVICE, create_app
from tests.codex import seeding

LEDGER_SECRET = "ledger-test-secret"
TB = 2**40


ledger_db_url = database_url_fixture("ledger_db_url", SERVICE.migrations, "ledger")


@pytest.fixture
def ledger_db(ledger_db_url: str) -> Iterator[Database]:
    database = Database(ledger_db_url)
    yield database
    database.dispose()


@dataclass
class Codex:
    app: Flask
    url: str
    #: Codex ids Ledger's overrides refer to.
    ids: dict[str, int]
    #: Every path Codex was asked for (with its query string).
    calls: list[str]


def seed_codex(app: Flask, headers: dict[str, str]) -> dict[str, int]:
    """Two companies on the Gold plan and one on a plan Ledger does not have; companies go
    through Codex's API, the rows a sync would write straight into its database."""
    client = app.test_client()
    # Contract ends relative to the real today, which the dashboard measures expiry from.
    # A one-year contract started a year before today + 10 days ends in 9 days.
    today = datetime.now(UTC).date()
    soon = today + timedelta(days=10)
    soon = soon.replace(year=soon.year - 1, day=min(soon.day, 28))
    seeding.company(client, headers, "620547", "Acme Dental", billing_plan="Gold",
                    contract_term_length="1 Year",
                    contract_start_date=(today - timedelta(days=30)).isoformat())
    seeding.company(client, headers, "620548", "Beta Law", billing_plan="Gold",
                    contract_term_length="1 Year", contract_start_date=soon.isoformat())
    seeding.company(client, headers, "620549", "Gamma Shop", billing_plan="Platinum",
                    contract_term_length="1 Year")
    ids: dict[str, int] = {}
    with seeding.database(app) as session:
        acme = seeding.company_id(session, "620547")
        beta = seeding.company_id(session, "620548")
        srv = Asset(company_id=acme, hostname="SRV1", device_category="Server",
                    billing_type="Server", backup_bytes=3 * TB)
        pc = Asset(company_id=acme, hostname="PC1", device_category="Laptop",
                   billing_type="Workstation")
        beta_pc = Asset(company_id=beta, hostname="BPC", device_category="Desktop",
                        billing_type="Workstation")
        dana = Contact(name="Dana", email="dana@acme.example", active=True)
        eli = Contact(name="Eli", email="eli@acme.example", active=True)
        session.add_all([srv, pc, beta_pc, dana, eli])
        session.flush()
        session.add_all([ContactRole(contact_id=dana.id, company_id=acme, role="primary"),
                         ContactRole(contact_id=eli.id, company_id=acme, role="general")])
        worked = Ticket(source="freshservice", external_id="1", number="101", company_id=acme,
                        subject="Server slow", status="closed", priority="high",
                        created_at=datetime(2026, 3, 2, tzinfo=UTC),
                        closed_at=datetime(2026, 3, 4, tzinfo=UTC), total_hours=Decimal("2"))
        session.add(worked)
        session.flush()
        session.add(TimeEntry(ticket_id=worked.id, external_id="a", hours=Decimal("2.00"),
                              billable=True, executed_at=datetime(2026, 3, 3, tzinfo=UTC)))
        ids.update(srv=srv.id, pc=pc.id, dana=dana.id, eli=eli.id)
    return ids


@pytest.fixture
def codex(service_settings: dict[str, Any], tmp_path: Path, hm_home: Path,
          as_user: Callable[..., dict[str, str]]) -> Iterator[Codex]:
    url = f"sqlite:///{tmp_path}/codex.db"
    assert CODEX.migrations
    with migrated_database(CODEX.migrations, url):
        app = create_codex({**service_settings, "DATABASE_URL": url})
        ids = seed_codex(app, as_user("admin"))
        calls: list[str] = []

        def recorded(environ: dict[str, Any], start_response: Any) -> Any:
            query = environ.get("QUERY_STRING")
            calls.append(environ["PATH_INFO"] + (f"?{query}" if query else ""))
            return app(environ, start_response)

        with serve_wsgi(recorded) as codex_url:
            port = int(codex_url.rsplit(":", 1)[1])
            (hm_home / "services.json").write_text(json.dumps(
                {"codex": {"url": codex_url, "port": port}}))
            yield Codex(app, codex_url, ids, calls)
        app.extensions["hivematrix.db"].dispose()


@pytest.fixture
def ledger_app(service_settings: dict[str, Any], fake_core: FakeCore, ledger_db_url: str,
               codex: Codex) -> Iterator[Flask]:
    fake_core.secrets["ledger"] = LEDGER_SECRET
    app = create_app({**service_settings, "DATABASE_URL": ledger_db_url,
                      "SERVICE_SECRET": LEDGER_SECRET})
    yield app
    join_jobs(app)
    app.extensions["hivematrix.db"].dispose()


def join_jobs(app: Flask) -> None:
    """Wait for the background jobs a test started (they write to the test's database)."""
    for worker in app.extensions.get("ledger.job_threads", []):
        worker.join()


@pytest.fixture
def client(ledger_app: Flask) -> FlaskClient:
    return ledger_app.test_client()


GOLD_PLAN = {
    "plan_name": "Gold", "term_length": "1 Year", "support_level": "Billed Hourly",
    "per_user": "25.00", "per_workstation": "30.00", "per_server": "120.00",
    "per_hour": "150.00", "backup_base_server": "50.00", "backup_included_tb": "1",
    "backup_per_tb": "20.00", "features": {"antivirus": "SentinelOne"}}

PERIOD = date(2026, 3, 1)
