"""`/api/tickets` and `/api/psa/*`: listing, details, changes pushed to the PSA first (against
the Freshservice contract fake), and who may do what."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from hivematrix.codex import create_app
from hivematrix.codex.models import Conversation, PSAAgent, Ticket, TimeEntry
from hivematrix.common.db import utcnow
from tests.codex.fakes.freshservice import API_KEY, FreshserviceFake
from tests.codex.seeding import Headers, company, company_id, database, field_errors, ok

NOW = datetime.now(UTC).replace(microsecond=0)
TICKET_URL = "https://acme-msp.freshservice.com/a/tickets/{id}"


@pytest.fixture
def fake() -> FreshserviceFake:
    return FreshserviceFake().seed()


@pytest.fixture
def fake_url(fake: FreshserviceFake) -> Iterator[str]:
    with fake.serve() as url:
        yield url


def psa_settings(url: str, **overrides: Any) -> dict[str, Any]:
    return {"CODEX_PSA_PROVIDER": "freshservice", "FRESHSERVICE_URL": url,
            "FRESHSERVICE_API_KEY": API_KEY, "CODEX_OUTBOUND_ALLOWLIST": "127.0.0.1",
            "CODEX_HTTP_RETRIES": 2, "FRESHSERVICE_TICKET_URL": TICKET_URL, **overrides}


@pytest.fixture
def make_app(service_settings: dict[str, Any], codex_db_url: str) -> Iterator[Callable[..., Flask]]:
    apps: list[Flask] = []

    def make(**settings: Any) -> Flask:
        app = create_app({**service_settings, "DATABASE_URL": codex_db_url, **settings})
        apps.append(app)
        return app

    yield make
    for app in apps:
        app.extensions["hivematrix.db"].dispose()


@pytest.fixture
def psa_app(make_app: Callable[..., Flask], fake_url: str) -> Flask:
    return make_app(**psa_settings(fake_url))


@pytest.fixture
def client(psa_app: Flask) -> FlaskClient:
    return psa_app.test_client()


@pytest.fixture
def admin(as_user: Headers) -> dict[str, str]:
    return as_user("admin")


@pytest.fixture
def seeded(client: FlaskClient, psa_app: Flask, admin: dict[str, str]) -> dict[str, int]:
    """Tickets as the Freshservice sync stores them (ids match the fake's tickets)."""
    company(client, admin, "620547", "Acme Dental")
    company(client, admin, "100002", "Beta Law")
    ids: dict[str, int] = {}
    with database(psa_app) as session:
        acme, beta = company_id(session, "620547"), company_id(session, "100002")
        rows = {
            "1001": Ticket(source="freshservice", external_id="1001", number="1001",
                           company_id=acme, subject="Printer offline", status="open",
                           priority="high", responder_external_id="21001931878",
                           group_id="21000188001", requester_name="Dana Reyes",
                           requester_email="dana@acmedental.com",
                           created_at=NOW - timedelta(days=2), updated_at=NOW - timedelta(hours=1),
                           total_hours=Decimal("1.83")),
            "1002": Ticket(source="freshservice", external_id="1002", number="1002",
                           company_id=acme, subject="New laptop for Eli", status="resolved",
                           priority="medium", ticket_type="Service Request",
                           created_at=NOW - timedelta(days=10),
                           updated_at=NOW - timedelta(days=6),
                           closed_at=NOW - timedelta(days=6)),
            "1004": Ticket(source="freshservice", external_id="1004", number="1004",
                           company_id=beta, subject="Old migration project",
                           status="waiting_customer", priority="low",
                           group_id="21000188002", created_at=NOW - timedelta(days=60),
                           updated_at=NOW - timedelta(days=45)),
            "cw": Ticket(source="connectwise", external_id="5001", number="5001",
                         company_id=acme, subject="From the old PSA", status="open",
                         priority="low", created_at=NOW - timedelta(days=90),
                         updated_at=NOW - timedelta(days=80)),
        }
        first = rows["1001"]
        first.time_entries.append(TimeEntry(external_id="21000167654", hours=Decimal("1.50"),
                                            agent_external_id="21001931878",
                                            note="Checked the driver",
                                            executed_at=NOW - timedelta(days=1)))
        first.conversations.append(Conversation(
            external_id="21000500001", private=False, incoming=True, author="Dana Reyes",
            body_text="It still says offline today.", created_at=NOW - timedelta(hours=3)))
        first.conversations.append(Conversation(
            external_id="21000500002", private=True, author="Sam Tech",
            body_text="Driver reinstalled.", created_at=NOW - timedelta(hours=2)))
        session.add_all(rows.values())
        session.add_all([
            PSAAgent(source="freshservice", external_id="21001931878", name="Sam Tech",
                     email="sam@msp.example", group_ids=["21000188001"]),
            PSAAgent(source="freshservice", external_id="21001931879", name="Riley Ng",
                     email="riley@msp.example"),
            PSAAgent(source="freshservice", external_id="21001931870", name="Alex Gone",
                     active=False),
        ])
        session.flush()
        ids = {key: row.id for key, row in rows.items()}
    return ids


def numbers(client: FlaskClient, headers: dict[str, str], query: str = "") -> list[str]:
    body = ok(client.get(f"/api/tickets?{query}", headers=headers))
    return [item["number"] for item in body["items"]]


def local(app: Flask, ticket_id: int) -> Ticket:
    with database(app) as session:
        ticket = session.get(Ticket, ticket_id)
        assert ticket is not None
        session.expunge(ticket)
        return ticket


def test_list_filters_sort_and_paging(client: FlaskClient, admin: dict[str, str],
                                      seeded: dict[str, int]) -> None:
    assert numbers(client, admin) == ["1001", "1002", "1004", "5001"]  # newest update first
    assert numbers(client, admin, "sort=created_at") == ["5001", "1004", "1002", "1001"]
    body = ok(client.get("/api/tickets?limit=2&offset=1", headers=admin))
    assert [item["number"] for item in body["items"]] == ["1002", "1004"]
    assert body["total"] == 4
    assert numbers(client, admin, "account_number=100002") == ["1004"]
    assert numbers(client, admin, "status=open,waiting_customer") == ["1001", "1004", "5001"]
    assert numbers(client, admin, "priority=low") == ["1004", "5001"]
    assert numbers(client, admin, "responder_id=21001931878") == ["1001"]
    assert numbers(client, admin, "group_id=21000188002") == ["1004"]
    assert numbers(client, admin, "source=connectwise") == ["5001"]
    assert numbers(client, admin, "ticket_type=Service Request") == ["1002"]
    assert numbers(client, admin, "q=printer") == ["1001"]
    assert numbers(client, admin, "q=DANA@") == ["1001"]
    since = (NOW - timedelta(days=7)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert numbers(client, admin, f"updated_since={since}") == ["1001", "1002"]
    naive = (NOW - timedelta(days=7)).replace(tzinfo=None).isoformat()
    assert numbers(client, admin, f"updated_since={naive}") == ["1001", "1002"]
    for query, parameter in (("updated_since=last+week", "updated_since"),
                             ("sort=subject", "sort"), ("limit=0", "limit")):
        response = client.get(f"/api/tickets?{query}", headers=admin)
        assert response.status_code == 400, query
        assert parameter in response.get_json()["errors"]["query"]


def test_details(client: FlaskClient, admin: dict[str, str], seeded: dict[str, int]) -> None:
    body = ok(client.get(f"/api/tickets/{seeded['1001']}", headers=admin))
    assert (body["responder_name"], body["company_name"], body["total_hours"]) == (
        "Sam Tech", "Acme Dental", "1.83")
    assert [entry["hours"] for entry in body["time_entries"]] == ["1.50"]
    assert [item["private"] for item in body["conversations"]] == [False, True]
    assert client.get("/api/tickets/999999", headers=admin).status_code == 404


def test_a_change_goes_to_the_psa_first(client: FlaskClient, psa_app: Flask,
                                        fake: FreshserviceFake, as_user: Headers,
                                        seeded: dict[str, int]) -> None:
    technician = as_user("technician", preferred_username="riley")
    before = utcnow()
    body = ok(client.patch(f"/api/tickets/{seeded['1001']}", headers=technician,
                           json={"status": "resolved", "note": "Replaced the <fuser>."}))
    assert fake.writes[0] == ("PUT", "/tickets/1001", {"status": 4})
    method, path, note = fake.writes[1]
    assert (method, path, note["private"]) == ("POST", "/tickets/1001/notes", True)
    assert "Replaced the &lt;fuser&gt;." in note["body"] and "riley" in note["body"]
    assert fake.stored_ticket(1001)["status"] == 4  # type: ignore[index]
    assert body["status"] == "resolved"
    assert body["conversations"][-1]["author"] == "riley"
    assert body["conversations"][-1]["private"] is True
    ticket = local(psa_app, seeded["1001"])
    assert ticket.status == "resolved"
    assert ticket.closed_at is not None and ticket.closed_at.tzinfo is not None
    assert ticket.updated_at is not None and ticket.updated_at >= before
    # Reopening clears the closing time; a note alone changes no status.
    ok(client.patch(f"/api/tickets/{seeded['1001']}", headers=technician,
                    json={"status": "open"}))
    assert local(psa_app, seeded["1001"]).closed_at is None
    ok(client.patch(f"/api/tickets/{seeded['1001']}", headers=as_user("admin"),
                    json={"note": "Called Dana"}))
    assert [write[0] for write in fake.writes] == ["PUT", "POST", "PUT", "POST"]
    assert local(psa_app, seeded["1001"]).status == "open"


def test_nothing_changes_locally_when_the_psa_does_not(
        client: FlaskClient, psa_app: Flask, fake: FreshserviceFake, admin: dict[str, str],
        make_app: Callable[..., Flask], fake_url: str, seeded: dict[str, int]) -> None:
    ticket_id = seeded["1001"]

    def unchanged() -> None:
        ticket = local(psa_app, ticket_id)
        assert (ticket.status, ticket.updated_at) == ("open", NOW - timedelta(hours=1))
        assert fake.writes == []

    # A status the map has no Freshservice id for: refused before any call.
    errors = field_errors(client.patch(f"/api/tickets/{ticket_id}", headers=admin,
                                       json={"status": "teleported"}))
    assert "FRESHSERVICE_STATUS_MAP" in errors["status"][0]
    unchanged()
    # The PSA refuses: "scheduled" (8) is not a status this account has.
    response = client.patch(f"/api/tickets/{ticket_id}", headers=admin,
                            json={"status": "scheduled"})
    assert response.status_code == 502 and "HTTP 400" in response.get_json()["detail"]
    unchanged()
    # The PSA keeps answering 429: given up after the configured attempts.
    fake.throttle_next = 5
    response = client.patch(f"/api/tickets/{ticket_id}", headers=admin,
                            json={"status": "pending"})
    assert response.status_code == 502 and "gave up" in response.get_json()["detail"]
    fake.throttle_next = 0
    unchanged()
    # Wrong credentials.
    wrong = make_app(**psa_settings(fake_url, FRESHSERVICE_API_KEY="stale")).test_client()
    response = wrong.patch(f"/api/tickets/{ticket_id}", headers=admin, json={"note": "Hi"})
    assert response.status_code == 502 and "401" in response.get_json()["detail"]
    unchanged()
    # No PSA configured at all, or a broken configuration: 503.
    for settings in ({}, {"CODEX_PSA_PROVIDER": "freshservice"}):
        response = make_app(**settings).test_client().patch(
            f"/api/tickets/{ticket_id}", headers=admin, json={"status": "pending"})
        assert response.status_code == 503, settings
    unchanged()
    # A ticket of another PSA than the configured one.
    response = client.patch(f"/api/tickets/{seeded['cw']}", headers=admin,
                            json={"status": "pending"})
    assert response.status_code == 409 and "connectwise" in response.get_json()["detail"]
    assert "status" in field_errors(client.patch(f"/api/tickets/{ticket_id}", headers=admin,
                                                 json={}))
    assert "status" in field_errors(client.patch(f"/api/tickets/{ticket_id}", headers=admin,
                                                 json={"status": "Resolved!"}))
    assert "note" in field_errors(client.patch(f"/api/tickets/{ticket_id}", headers=admin,
                                               json={"note": "   "}))
    unchanged()


def test_psa_agents_and_config(client: FlaskClient, admin: dict[str, str], as_user: Headers,
                               as_service: Callable[[str], dict[str, str]],
                               make_app: Callable[..., Flask], seeded: dict[str, int]) -> None:
    agents = ok(client.get("/api/psa/agents", headers=admin))
    assert [agent["name"] for agent in agents] == ["Riley Ng", "Sam Tech", "Alex Gone"]
    assert [agent["name"] for agent in ok(client.get("/api/psa/agents?active=false",
                                                     headers=admin))] == ["Alex Gone"]
    assert ok(client.get("/api/psa/agents?source=connectwise", headers=admin)) == []
    response = client.get("/api/psa/config", headers=as_service("beacon"))
    assert ok(response) == {"provider": "freshservice", "display_name": "Freshservice",
                            "ticket_url_template": TICKET_URL}
    assert API_KEY not in response.get_data(as_text=True)
    bare = make_app().test_client()
    assert ok(bare.get("/api/psa/config", headers=admin)) == {
        "provider": None, "display_name": None, "ticket_url_template": None}
    for path in ("/api/psa/agents", "/api/psa/config"):
        for headers in (as_user("technician"), as_user("billing"), as_service("beacon"),
                        as_service("brainhair")):
            ok(client.get(path, headers=headers))
        for headers in (as_user("client", account_number="620547"), as_service("ledger"),
                        as_service("template")):
            assert client.get(path, headers=headers).status_code == 403, path
        assert client.get(path).status_code == 401


def test_permission_levels(client: FlaskClient, psa_app: Flask, fake: FreshserviceFake,
                           as_user: Headers, as_service: Callable[[str], dict[str, str]],
                           seeded: dict[str, int]) -> None:
    path = f"/api/tickets/{seeded['1001']}"
    for headers in (as_user("billing"), as_user("client", account_number="620547"),
                    as_service("brainhair"), as_service("beacon")):
        assert client.patch(path, json={"note": "x"}, headers=headers).status_code == 403
    assert client.patch(path, json={"note": "x"}).status_code == 401
    assert fake.writes == []
    ok(client.patch(path, json={"status": "pending"}, headers=as_user("technician")))

    assert len(numbers(client, as_user("billing"))) == 4
    customer = as_user("client", account_number="620547")
    assert numbers(client, customer) == ["1001", "1002", "5001"]
    assert numbers(client, customer, "account_number=100002") == []
    body = ok(client.get(path, headers=customer))
    # The MSP's private notes and time-entry notes stay internal.
    assert [item["body_text"] for item in body["conversations"]] == [
        "It still says offline today."]
    assert body["time_entries"][0]["note"] == ""
    response = client.get(f"/api/tickets/{seeded['1004']}", headers=customer)
    assert response.status_code == 404 and "100002" not in response.get_json()["detail"]
    assert numbers(client, as_user("client")) == []
    for service in ("beacon", "ledger", "brainhair"):
        assert len(numbers(client, as_service(service))) == 4
        body = ok(client.get(path, headers=as_service(service)))
        assert len(body["conversations"]) == 2
    for service in ("knowledgetree", "template"):
        assert client.get("/api/tickets", headers=as_service(service)).status_code == 403
        assert client.get(path, headers=as_service(service)).status_code == 403
    assert client.get("/api/tickets").status_code == 401
