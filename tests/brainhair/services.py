"""Real Codex, Ledger, KnowledgeTree and Beacon apps, served over HTTP on free ports for the
tool tests, seeded through their APIs (rows a sync would write go straight into Codex's
database); a fake Core signs the tokens; a ``services.json`` lets the kit's ServiceClient find
them; :meth:`Platform.context` builds a tool context with a user's own token.

Module-scoped (``platform``): one set of services per test module. Tests that write restore
what they changed, or use a company of their own, so their order does not matter.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from hivematrix.beacon import create_app as create_beacon
from hivematrix.brainhair.tools.base import BearerServices, Tool, ToolContext
from hivematrix.brainhair.tools.executor import schema_errors
from hivematrix.codex import SERVICE as CODEX
from hivematrix.codex import create_app as create_codex
from hivematrix.codex.models import (
    Asset,
    Contact,
    ContactRole,
    Conversation,
    NetworkDevice,
    Ticket,
    TimeEntry,
)
from hivematrix.common.keys import SigningKey
from hivematrix.common.service_client import ServiceClient
from hivematrix.common.testing import FakeCore, TokenFactory, migrated_database, serve_wsgi
from hivematrix.knowledgetree import create_app as create_kt
from hivematrix.knowledgetree.testing import FalkorDBServer
from hivematrix.ledger import SERVICE as LEDGER
from hivematrix.ledger import create_app as create_ledger
from tests.beacon.wall_data import VIEWS, seed_wall
from tests.codex import seeding
from tests.codex.fakes.datto import API_KEY, API_SECRET, DattoFake, seeded

ACME, BETA = "620547", "620548"
SECRETS = {"ledger": "ledger-tools-secret", "beacon": "beacon-tools-secret",
           "brainhair": "brainhair-tools-secret"}
#: Ledger's plan for the seeded companies (rates as Ledger stores them).
GOLD = {"plan_name": "Gold", "term_length": "1 Year", "support_level": "Billed Hourly",
        "per_user": "25.00", "per_workstation": "30.00", "per_server": "120.00",
        "per_hour": "150.00", "prepaid_hours_monthly": "2.00",
        "features": {"antivirus": "SentinelOne"}}
#: Settings a developer's shell may export that must not reach the apps.
LEAKY = ("DATABASE_URL", "CORE_SERVICE_URL", "SECRET_KEY", "SERVICE_SECRET", "SERVICES_FILE",
         "RATELIMIT_STORAGE_URI", "RATELIMIT_DEFAULT")


@dataclass
class Platform:
    tokens: TokenFactory
    client: ServiceClient
    urls: dict[str, str]
    apps: dict[str, Flask]
    datto: DattoFake
    #: Ids of what was seeded (Codex ids, KnowledgeTree ids, the Datto device uid).
    ids: dict[str, Any] = field(default_factory=dict)

    def context(self, level: str = "admin", **claims: Any) -> ToolContext:
        """A tool context of a user at ``level`` whose own token the tools send."""
        user = self.tokens.user_claims(level, **claims)
        token = self.tokens.key.sign(user)
        return ToolContext(user=user, services=BearerServices(self.client, token),
                           session_id="test-session")

    def headers(self, level: str = "admin", **claims: Any) -> dict[str, str]:
        return self.tokens.headers(self.tokens.user(level, **claims))

    def test_client(self, service: str) -> FlaskClient:
        return self.apps[service].test_client()


def run(tool: Tool, ctx: ToolContext, args: dict[str, Any]) -> Any:
    """Run a tool as the executor would: its input checked against its schema first."""
    problems = schema_errors(tool.input_schema, args)
    assert not problems, problems
    return tool.run(ctx, args)


def propose(tool: Tool, ctx: ToolContext, args: dict[str, Any]) -> Any:
    problems = schema_errors(tool.input_schema, args)
    assert not problems, problems
    assert tool.propose is not None, f"{tool.name} is not a write"
    return tool.propose(ctx, args)


def ok(response: Any, status: int = 200) -> Any:
    assert response.status_code == status, (response.status_code, response.get_data(True))
    return response.get_json()


# --- seeding -----------------------------------------------------------------------------

def seed_codex(app: Flask, headers: dict[str, str], datto: DattoFake) -> dict[str, Any]:
    """The wall's tickets (Acme), Acme on Gold (HIPAA) with a Datto server, a desktop,
    contacts, a switch and a ticket with a conversation; Beta Law, a second company."""
    with seeding.database(app) as session:
        seed_wall(session)
    client = app.test_client()
    ok(client.patch(f"/api/companies/{ACME}", headers=headers, json={
        "billing_plan": "Gold", "contract_term_length": "1 Year",
        "contract_start_date": (datetime.now(UTC).date() - timedelta(days=30)).isoformat(),
        "compliance_level": "hipaa", "support_level": "Billed Hourly",
        "description": "Dental practice, two sites"}))
    seeding.company(client, headers, BETA, "Beta Law", billing_plan="Gold",
                    contract_term_length="1 Year")
    site = next(item["uid"] for item in datto.sites if item["name"] == "Acme Dental")
    device = datto.devices[site][0]
    with seeding.database(app) as session:
        acme = seeding.company_id(session, ACME)
        beta = seeding.company_id(session, BETA)
        server = Asset(company_id=acme, hostname="ACME-DC01", device_category="Server",
                       billing_type="Server", source="rmm", rmm_source="datto",
                       rmm_device_id=device["uid"], operating_system="Windows Server 2022",
                       online=True, serial_number="SN-DC01")
        desktop = Asset(company_id=acme, hostname="ACME-FRONT01", device_category="Desktop",
                        billing_type="Workstation", source="manual",
                        last_logged_in_user="ACME\\dana")
        beta_pc = Asset(company_id=beta, hostname="BETA-PC1", device_category="Laptop",
                        billing_type="Workstation", source="manual")
        dana = Contact(name="Dana Reyes", email="dana@acme.example", title="Office manager",
                       active=True)
        eli = Contact(name="Eli Stone", email="eli@acme.example", active=True)
        switch = NetworkDevice(company_id=acme, kind="switch", name="Core switch",
                               management_ip="10.0.0.2", model="USW-24")
        session.add_all([server, desktop, beta_pc, dana, eli, switch])
        session.flush()
        session.add_all([ContactRole(contact_id=dana.id, company_id=acme, role="primary"),
                         ContactRole(contact_id=eli.id, company_id=acme, role="general")])
        worked = Ticket(source="freshservice", external_id="900", number="INC-900",
                        company_id=acme, subject="Backup failed on the server",
                        description_text="The nightly backup job failed twice.",
                        status="closed", priority="high", requester_name="Dana Reyes",
                        created_at=datetime(2026, 3, 2, tzinfo=UTC),
                        updated_at=datetime(2026, 3, 4, tzinfo=UTC),
                        closed_at=datetime(2026, 3, 4, tzinfo=UTC))
        session.add(worked)
        session.flush()
        session.add_all([
            Conversation(ticket_id=worked.id, external_id="c1", incoming=True,
                         author="Dana Reyes", body_text="The backup failed again last night.",
                         created_at=datetime(2026, 3, 2, 9, tzinfo=UTC)),
            Conversation(ticket_id=worked.id, external_id="c2", private=True,
                         author="Sam Tech", body_text="Disk full on the NAS; cleared it.",
                         created_at=datetime(2026, 3, 3, 9, tzinfo=UTC)),
            TimeEntry(ticket_id=worked.id, external_id="t1", hours=2, billable=True,
                      note="Cleared space", executed_at=datetime(2026, 3, 3, tzinfo=UTC))])
        session.flush()
        return {"server": server.id, "desktop": desktop.id, "beta_pc": beta_pc.id,
                "dana": dana.id, "eli": eli.id, "switch": switch.id, "ticket": worked.id,
                "device_uid": device["uid"]}


def seed_ledger(app: Flask, headers: dict[str, str]) -> None:
    ok(app.test_client().post("/api/plans", headers=headers, json=GOLD), 201)


def seed_kt(app: Flask, headers: dict[str, str]) -> dict[str, str]:
    """/Companies/Acme Dental (filed under Acme's account number) with a printer note, and a
    runbook folder; written through the API as an admin."""
    client = app.test_client()

    def create(parent: str, name: str, kind: str = "article", **fields: Any) -> str:
        body = ok(client.post("/api/items", headers=headers, json={
            "parent_id": parent, "name": name, "type": kind, **fields}), 201)
        return str(body["id"])

    companies = create("root", "Companies", "folder")
    acme = create(companies, "Acme Dental", "folder", account_number=ACME)
    printers = create(acme, "Printers", content="The front desk printer jams: open tray 2.")
    runbooks = create("root", "Runbooks", "folder")
    vpn = create(runbooks, "VPN reset", content="Reset the VPN tunnel from the firewall UI.")
    return {"companies": companies, "acme_folder": acme, "printers": printers,
            "runbooks": runbooks, "vpn": vpn}


# --- the fixture ---------------------------------------------------------------------------

def _served(stack: ExitStack, app: Any) -> str:
    return stack.enter_context(serve_wsgi(app))


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory, pg_url: str) -> Iterator[Platform]:
    """Codex (SQLite) with the Datto fake as its RMM, Ledger (PostgreSQL), KnowledgeTree
    (FalkorDB) and Beacon, each on its own port; services.json names them."""
    home = tmp_path_factory.mktemp("brainhair-tools-home")
    key = SigningKey.generate()
    tokens = TokenFactory(key)
    core = FakeCore(keys=[key], tokens=tokens, secrets=dict(SECRETS))
    admin = tokens.headers(tokens.user("admin"))
    with ExitStack() as stack, pytest.MonkeyPatch.context() as patch:
        for name in LEAKY:
            patch.delenv(name, raising=False)
        patch.setenv("HIVEMATRIX_HOME", str(home))
        core.url = _served(stack, core.wsgi())
        base = {"HIVEMATRIX_HOME": str(home), "CORE_SERVICE_URL": core.url,
                "SECRET_KEY": "test-secret-key", "TESTING": True}
        datto = seeded()
        datto_url = stack.enter_context(datto.serve())
        urls: dict[str, str] = {}
        apps: dict[str, Flask] = {}

        assert CODEX.migrations and LEDGER.migrations
        codex_db = stack.enter_context(migrated_database(
            CODEX.migrations, f"sqlite:///{Path(home) / 'codex.db'}"))
        apps["codex"] = create_codex({
            **base, "DATABASE_URL": codex_db, "CODEX_OUTBOUND_ALLOWLIST": "127.0.0.1",
            "CODEX_RMM_PROVIDER": "datto", "DATTO_URL": datto_url, "DATTO_API_KEY": API_KEY,
            "DATTO_API_SECRET": API_SECRET, "CODEX_HTTP_RETRIES": 1})
        stack.callback(apps["codex"].extensions["hivematrix.db"].dispose)
        ids = seed_codex(apps["codex"], admin, datto)

        ledger_db = stack.enter_context(migrated_database(LEDGER.migrations, pg_url))
        apps["ledger"] = create_ledger({**base, "DATABASE_URL": ledger_db,
                                        "SERVICE_SECRET": SECRETS["ledger"]})
        stack.callback(apps["ledger"].extensions["hivematrix.db"].dispose)

        falkordb = FalkorDBServer(home / "falkordb")
        falkordb.start()
        stack.callback(falkordb.stop)
        apps["knowledgetree"] = create_kt({
            **base, "KT_GRAPH_URL": f"falkordb://127.0.0.1:{falkordb.port}/kt-tools",
            "KT_FILES_DIR": str(home / "kt-files"), "KT_SCHEDULER": False})
        stack.callback(apps["knowledgetree"].extensions["knowledgetree"].close)

        apps["beacon"] = create_beacon({**base, "SERVICE_SECRET": SECRETS["beacon"],
                                        "BEACON_VIEWS": VIEWS})
        for name, app in apps.items():
            urls[name] = _served(stack, app)
        (home / "services.json").write_text(json.dumps(
            {name: {"url": url, "port": int(url.rsplit(":", 1)[1])}
             for name, url in urls.items()}))
        seed_ledger(apps["ledger"], admin)
        ids.update(seed_kt(apps["knowledgetree"], admin))
        client = ServiceClient(service_name="brainhair", secret=SECRETS["brainhair"],
                               core_url=core.url, services_file=str(home / "services.json"))
        stack.callback(client.http.close)
        yield Platform(tokens=tokens, client=client, urls=urls, apps=apps, datto=datto,
                       ids=ids)
