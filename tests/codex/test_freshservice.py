"""The Freshservice connector against its contract fake, and end to end into Codex's tables."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from hivematrix.codex.connectors import factory, freshservice
from hivematrix.codex.connectors.freshservice import FreshserviceConnector
from hivematrix.codex.connectors.http import ConnectorError
from hivematrix.codex.models import Company, Contact, PSAAgent, SyncJob, Ticket
from hivematrix.codex.settings import BadSetting
from hivematrix.codex.sync import runner
from hivematrix.codex.sync.records import (
    AgentRecord,
    CompanyRecord,
    ContactRecord,
    RecordFailure,
    TicketRecord,
)
from hivematrix.common.db import Database
from tests.codex.fakes.freshservice import API_KEY, FreshserviceFake, stamp

ACME, BETA, COBALT = "21000097757", "21000097758", "21000097759"


@pytest.fixture
def fake() -> FreshserviceFake:
    return FreshserviceFake().seed()


@pytest.fixture
def fake_url(fake: FreshserviceFake) -> Iterator[str]:
    with fake.serve() as url:
        yield url


@pytest.fixture
def settings(fake_url: str) -> dict[str, Any]:
    return {"CODEX_PSA_PROVIDER": "freshservice", "FRESHSERVICE_URL": fake_url,
            "FRESHSERVICE_API_KEY": API_KEY, "CODEX_OUTBOUND_ALLOWLIST": "127.0.0.1",
            "CODEX_HTTP_RETRIES": 3}


def connect(settings: dict[str, Any], page_size: int = 100,
            **overrides: Any) -> FreshserviceConnector:
    return freshservice.from_settings({**settings, **overrides}, page_size=page_size)


def by_id(items: list[Any]) -> dict[str, Any]:
    return {item.external_id: item for item in items}


def pages(fake: FreshserviceFake, path: str) -> list[tuple[str, str]]:
    return [(query.get("page", ""), query.get("per_page", "")) for query in fake.queries(path)]


# -- companies, contacts, agents -----------------------------------------------------------


def test_departments_become_companies_across_pages(fake: FreshserviceFake,
                                                   settings: dict[str, Any]) -> None:
    companies = list(connect(settings, page_size=2).companies())
    assert pages(fake, "/departments") == [("1", "2"), ("2", "2")]
    found = by_id(companies)
    assert set(found) == {ACME, BETA, COBALT}
    assert found[ACME] == CompanyRecord(
        source="freshservice", external_id=ACME, name="Acme Dental", account_number="620547",
        description="Client since 2019", domains=("acmedental.com",),
        main_phone="+1 555 0100", address="1 Main St, Springfield", billing_plan="Gold",
        contract_term_length="2 years", contract_start_date=date(2024, 3, 1))
    # No account number yet: still a company (the store assigns one and writes it back).
    assert found[BETA].account_number is None
    assert (found[BETA].billing_plan, found[BETA].contract_term_length) == ("Silver", "Monthly")
    assert found[COBALT].domains == ("cobalt.example", "cobaltclinic.example")
    assert found[COBALT].billing_plan is None and found[COBALT].contract_start_date is None


def test_a_full_page_of_a_hundred_goes_on_to_the_next(fake: FreshserviceFake,
                                                      settings: dict[str, Any]) -> None:
    fake.departments += [{"id": 22000000000 + n, "name": f"Client {n}", "custom_fields": {}}
                         for n in range(130)]
    assert len(list(factory.psa(settings).companies())) == 133
    assert pages(fake, "/departments") == [("1", "100"), ("2", "100")]


def test_custom_field_names_are_settings(fake: FreshserviceFake,
                                         settings: dict[str, Any]) -> None:
    fake.department_fields.append("acct_no")
    acme = fake.department(int(ACME))
    assert acme is not None
    acme["custom_fields"]["acct_no"] = 4711
    companies = by_id(list(connect(settings, FRESHSERVICE_ACCOUNT_NUMBER_FIELD="acct_no",
                                   FRESHSERVICE_PLAN_FIELD="",
                                   FRESHSERVICE_ADDRESS_FIELD="").companies()))
    assert companies[ACME].account_number == "4711"
    assert companies[ACME].billing_plan is None and companies[ACME].address == ""


def test_requesters_become_contacts_linked_to_their_companies(
        fake: FreshserviceFake, settings: dict[str, Any]) -> None:
    connector = connect(settings, page_size=3)
    list(connector.companies())
    contacts = by_id(list(connector.contacts()))
    # The departments just listed are reused: contacts list only requesters.
    assert len(fake.queries("/departments")) == 1
    assert pages(fake, "/requesters") == [("1", "3"), ("2", "3")]
    dana = contacts["21001000001"]
    assert dana == ContactRecord(
        source="freshservice", external_id="21001000001", name="Dana Reyes",
        email="dana@acmedental.com", secondary_emails=("billing@acmedental.com",),
        first_name="Dana", last_name="Reyes", title="Office Manager", vip=True,
        companies=((ACME, "primary"),))  # Acme's prime user
    assert contacts["21001000002"].mobile_phone == "+1 555 0199"
    assert contacts["21001000003"].companies == ((COBALT, "primary"), (ACME, "general"))
    assert contacts["21001000004"].name == "Gus" and contacts["21001000004"].active is False


def test_contacts_alone_read_the_departments_themselves(fake: FreshserviceFake,
                                                        settings: dict[str, Any]) -> None:
    contacts = by_id(list(connect(settings).contacts()))
    assert len(fake.queries("/departments")) == 1
    assert contacts["21001000003"].companies[0] == (COBALT, "primary")


def test_agents_become_psa_agents(settings: dict[str, Any]) -> None:
    agents = by_id(list(connect(settings, page_size=1).agents()))
    assert agents["21001931879"] == AgentRecord(
        source="freshservice", external_id="21001931879", name="Riley Ng",
        email="riley@msp.example", job_title="Engineer",
        group_ids=("21000188001", "21000188002"))


# -- tickets ---------------------------------------------------------------------------------


def test_full_ticket_history_with_details(fake: FreshserviceFake,
                                          settings: dict[str, Any]) -> None:
    tickets = by_id(list(connect(settings, page_size=2).tickets(updated_since=None,
                                                                 details=True)))
    # Without updated_since Freshservice lists 30 days only: a full sync asks from 2000 on.
    assert set(tickets) == {"1001", "1002", "1003", "1004", "1005", "1006"}
    listings = fake.queries("/tickets")
    assert {query["updated_since"] for query in listings} == {"2000-01-01T00:00:00Z"}
    assert {query.get("filter") for query in listings} == {None, "spam", "deleted"}
    assert all(query["include"] == "requester,stats" for query in listings)
    assert pages(fake, "/tickets")[:2] == [("1", "2"), ("2", "2")]

    printer = tickets["1001"]
    assert isinstance(printer, TicketRecord)
    assert (printer.status, printer.status_raw, printer.priority, printer.priority_raw) == (
        "open", "2", "high", 3)
    assert printer.company_external_id == ACME
    assert (printer.requester_name, printer.requester_email) == ("Dana Reyes",
                                                                 "dana@acmedental.com")
    assert printer.responder_external_id == "21001931878"
    assert printer.description_text == "The front desk printer shows offline.\n\nSince Monday."
    assert "<b>offline</b>" in printer.description_html
    assert printer.first_responded_at is not None
    assert printer.first_responded_at.tzinfo is not None and printer.closed_at is None
    assert printer.time_entries is not None and printer.conversations is not None
    assert [(e.hours, e.billable, e.agent_external_id) for e in printer.time_entries] == [
        (Decimal("1.50"), True, "21001931878"), (Decimal("0.33"), False, "21001931879")]
    public, note = printer.conversations
    assert (public.private, public.incoming, public.body_text, public.author) == (
        False, True, "It still says offline today.", "Dana Reyes <dana@acmedental.com>")
    assert (note.private, note.author) == (True, "Sam Tech")
    assert note.body_text == "Driver reinstalled.\n\n- rebooted\n- test page ok"
    assert "<script>" in note.body_html  # the HTML is kept as sent; only the text is cleaned

    laptop = tickets["1002"]
    assert laptop.ticket_type == "Service Request"
    assert laptop.time_entries[0].hours == Decimal("2.09")  # "02:05:30"
    # Resolved, not closed: the time comes from the stats' resolution.
    assert laptop.status == "resolved"
    assert laptop.closed_at == fake.now - timedelta(days=6)
    assert tickets["1003"].closed_at == fake.now - timedelta(days=15)
    reopened = tickets["1004"]
    assert (reopened.status, reopened.closed_at) == ("waiting_customer", None)
    # Spam and deleted tickets are reported as such (kept, marked) and not detailed.
    assert (tickets["1005"].status, tickets["1005"].status_raw) == ("spam", "2")
    assert tickets["1006"].status == "deleted"
    assert tickets["1005"].time_entries is None and tickets["1006"].conversations is None
    assert not fake.queries("/tickets/1005/time_entries")


def test_incremental_tickets_ask_for_updates_since(fake: FreshserviceFake,
                                                   settings: dict[str, Any]) -> None:
    since = fake.now - timedelta(hours=1)
    tickets = by_id(list(connect(settings).tickets(updated_since=since, details=False)))
    assert set(tickets) == {"1001", "1005", "1006"}
    assert {query["updated_since"] for query in fake.queries("/tickets")} == {stamp(since)}
    assert tickets["1001"].time_entries is None  # not fetched: the stored ones stay
    assert not fake.queries("/tickets/1001/conversations")


def test_status_and_priority_maps_come_from_settings(fake: FreshserviceFake,
                                                     settings: dict[str, Any]) -> None:
    connector = connect(settings,
                        FRESHSERVICE_STATUS_MAP='{"9": "awaiting_client", "2": "new", '
                                                '"4": "", "31": "waiting_vendor"}',
                        FRESHSERVICE_PRIORITY_MAP={"4": "critical"})
    fake.tickets.append(fake.ticket(1007, "Vendor RMA", 31, 2, 21001000002, int(ACME),
                                    created=fake.now, updated=fake.now))
    tickets = by_id(list(connector.tickets(updated_since=None, details=False)))
    assert tickets["1001"].status == "new"
    assert tickets["1004"].status == "awaiting_client"
    assert tickets["1007"].status == "waiting_vendor"
    # Dropped from the map: the raw id shows, and an unknown status closes nothing.
    assert (tickets["1002"].status, tickets["1002"].closed_at) == ("status_4", None)
    assert tickets["1003"].priority == "critical" and tickets["1001"].priority == "high"
    assert connector.status_code("awaiting_client") == 9


def test_filter_queries_page_by_thirty(fake: FreshserviceFake,
                                       settings: dict[str, Any]) -> None:
    connector = connect(settings)
    matching = list(connector.filter_tickets("(status:2 OR status:9) AND priority:<2"))
    assert [ticket.external_id for ticket in matching] == ["1004"]
    assert fake.queries("/tickets/filter")[0]["query"] == (
        '"(status:2 OR status:9) AND priority:<2"')
    recent = (fake.now - timedelta(days=3)).date().isoformat()
    assert [t.external_id for t in connector.filter_tickets(f"created_at:>'{recent}'")] == [
        "1001"]  # spam and deleted tickets are not matched
    fake.tickets += [fake.ticket(2000 + n, f"Alert {n}", 3, 2, 21001000002, int(ACME),
                                 created=fake.now - timedelta(minutes=n), updated=fake.now)
                     for n in range(40)]
    assert len(list(connector.filter_tickets("status:3"))) == 40
    assert [query["page"] for query in fake.queries("/tickets/filter")[-2:]] == ["1", "2"]


def test_filter_queries_are_checked(fake_url: str, settings: dict[str, Any]) -> None:
    connector = connect(settings)
    with pytest.raises(ValueError, match="512"):
        list(connector.filter_tickets("status:2 OR " * 60))
    with pytest.raises(ConnectorError, match="HTTP 400 Validation failed"):
        list(connector.filter_tickets("status:2 AND"))
    unquoted = httpx.get(f"{fake_url}/api/v2/tickets/filter", params={"query": "status:2"},
                         auth=(API_KEY, "X"))
    assert unquoted.status_code == 400
    assert unquoted.json()["errors"][0]["field"] == "query"


# -- auth, rate limits, malformed payloads ---------------------------------------------------


def test_a_wrong_api_key_is_reported(settings: dict[str, Any]) -> None:
    connector = connect(settings, FRESHSERVICE_API_KEY="not-the-key")
    with pytest.raises(ConnectorError) as caught:
        list(connector.companies())
    assert str(caught.value) == ("freshservice GET /departments: HTTP 401 Your API key is "
                                 "not valid for this account.")


def test_missing_and_bad_settings_are_named(settings: dict[str, Any]) -> None:
    with pytest.raises(BadSetting, match="missing settings: FRESHSERVICE_URL, "
                                         "FRESHSERVICE_API_KEY"):
        freshservice.from_settings({})
    with pytest.raises(BadSetting, match="FRESHSERVICE_STATUS_MAP: not valid JSON"):
        connect(settings, FRESHSERVICE_STATUS_MAP="{2: open}")
    with pytest.raises(BadSetting, match="FRESHSERVICE_STATUS_MAP: 'open' is not a "
                                         "Freshservice id"):
        connect(settings, FRESHSERVICE_STATUS_MAP='{"open": "open"}')
    with pytest.raises(BadSetting, match="FRESHSERVICE_PRIORITY_MAP: the name for 4"):
        connect(settings, FRESHSERVICE_PRIORITY_MAP='{"4": "x' + "y" * 30 + '"}')
    with pytest.raises(BadSetting, match="CODEX_HTTP_RETRIES: not a number"):
        connect(settings, CODEX_HTTP_RETRIES="many")
    with pytest.raises(BadSetting, match=r"FRESHSERVICE_URL: .*non-public address"):
        connect(settings, CODEX_OUTBOUND_ALLOWLIST="")


def test_rate_limited_calls_wait_and_go_on(fake: FreshserviceFake,
                                           settings: dict[str, Any]) -> None:
    fake.throttle_every = 2  # the second page's first try is refused
    connector = connect(settings, page_size=1)
    agents = list(connector.agents())
    assert len(agents) == 2 and all(isinstance(agent, AgentRecord) for agent in agents)
    assert fake.throttled == 1
    assert connector.http.waits == [1.0]  # Retry-After: 1, honoured
    assert pages(fake, "/agents") == [("1", "1"), ("2", "1"), ("2", "1")]


def test_rate_limits_that_do_not_lift_fail_the_call(fake: FreshserviceFake,
                                                    settings: dict[str, Any]) -> None:
    fake.throttle_next = 10
    connector = connect(settings, CODEX_HTTP_RETRIES=2)
    with pytest.raises(ConnectorError, match=r"GET /agents: gave up after 2 attempts \(HTTP "
                                             r"429 You have exceeded"):
        list(connector.agents())
    assert connector.http.waits == [1.0]


def test_a_malformed_payload_is_one_failure_and_the_rest_come_through(
        fake: FreshserviceFake, settings: dict[str, Any]) -> None:
    fake.departments += [{"id": 21000097760, "name": None, "custom_fields": {}},
                         {"id": 21000097761, "name": "Delta",
                          "custom_fields": {"contract_start_date": "next spring"}},
                         "not a department"]
    fake.requesters.append({"id": "21-x", "first_name": "Broken"})
    fake.tickets.append({**fake.ticket(1008, "Bad", 2, 2, 21001000001, int(ACME),
                                       created=fake.now, updated=fake.now), "status": "open"})
    fake.time_entries[1002].append(fake.time_entry(21000167699, 21001931879, "1.5h", "?"))
    connector = connect(settings)
    companies = list(connector.companies())
    failures = {item.external_id: item.reason for item in companies
                if isinstance(item, RecordFailure)}
    assert failures == {"21000097760": "name is missing",
                        "21000097761": "custom field contract_start_date 'next spring' is "
                                       "not a date",
                        "?": "not a JSON object"}
    assert sum(isinstance(item, CompanyRecord) for item in companies) == 3
    contacts = list(connector.contacts())
    assert [item.reason for item in contacts if isinstance(item, RecordFailure)] == [
        "id '21-x' is not an id"]
    tickets = by_id(list(connector.tickets(updated_since=None, details=True)))
    assert tickets["1008"].reason == "status 'open' is not a Freshservice code"
    assert tickets["1002"].reason == ("details: time entry 21000167699: time_spent '1.5h' is "
                                      "not hh:mm")
    assert isinstance(tickets["1001"], TicketRecord) and isinstance(tickets["1003"],
                                                                   TicketRecord)


# -- writes ----------------------------------------------------------------------------------


def test_account_number_is_written_into_the_department(fake: FreshserviceFake,
                                                       settings: dict[str, Any]) -> None:
    connect(settings).set_company_account_number(BETA, "620548")
    method, path, body = fake.writes[-1]
    assert (method, path) == ("PUT", f"/departments/{BETA}")
    # Every custom field is sent back as it was, so nothing the MSP set can be cleared.
    assert body == {"custom_fields": {
        "account_number": "620548", "plan_selected": "Silver", "contract_term": "Monthly",
        "contract_start_date": None, "company_main_number": None, "address": None}}
    beta = fake.department(int(BETA))
    assert beta is not None and beta["custom_fields"]["account_number"] == "620548"


def test_an_account_number_field_the_department_lacks_is_named(
        fake: FreshserviceFake, settings: dict[str, Any]) -> None:
    connector = connect(settings, FRESHSERVICE_ACCOUNT_NUMBER_FIELD="acct")
    with pytest.raises(ConnectorError, match="has no custom field 'acct'"):
        connector.set_company_account_number(BETA, "620548")
    assert fake.writes == []


def test_ticket_status_and_private_note_are_pushed(fake: FreshserviceFake,
                                                   settings: dict[str, Any]) -> None:
    connector = connect(settings)
    connector.update_ticket("1001", status="waiting_customer",
                            note="Called <Dana>.\nShe reboots tonight.", author="Sam Tech")
    assert fake.writes[0] == ("PUT", "/tickets/1001", {"status": 9})
    method, path, body = fake.writes[1]
    assert (method, path, body["private"]) == ("POST", "/tickets/1001/notes", True)
    assert body["body"] == ("<div>Called &lt;Dana&gt;.<br>She reboots tonight.</div>"
                            "<div>&mdash; Sam Tech (HiveMatrix)</div>")
    ticket = by_id(list(connector.tickets(updated_since=fake.now - timedelta(minutes=1),
                                          details=True)))["1001"]
    assert ticket.status == "waiting_customer"
    assert ticket.conversations[-1].private is True
    assert ticket.conversations[-1].body_text == (
        "Called <Dana>.\nShe reboots tonight.\n\n— Sam Tech (HiveMatrix)")


def test_ticket_updates_refuse_what_cannot_be_pushed(fake: FreshserviceFake,
                                                     settings: dict[str, Any]) -> None:
    connector = connect(settings)
    with pytest.raises(ValueError, match="no Freshservice status id is mapped to 'done'"):
        connector.update_ticket("1001", status="done", note="never sent")
    assert fake.writes == []
    # Mapped by default, but this account has no status 8: Freshservice's 400 is reported.
    with pytest.raises(ConnectorError, match="PUT /tickets/1001: HTTP 400"):
        connector.update_ticket("1001", status="scheduled")
    with pytest.raises(ValueError, match="not a Freshservice id"):
        connector.update_ticket("../agents", note="x")


# -- end to end ------------------------------------------------------------------------------


def job(database: Database, job_id: str) -> SyncJob:
    with database.transaction() as session:
        found = session.get(SyncJob, job_id)
        assert found is not None
        session.expunge(found)
        return found


def test_psa_sync_end_to_end_is_idempotent(codex_db: Database, fake: FreshserviceFake,
                                           settings: dict[str, Any]) -> None:
    def psa_run() -> SyncJob:
        connector = factory.psa(settings)
        job_id, _ = runner.run_job(codex_db, "psa", "freshservice",
                                   lambda run: runner.sync_psa(codex_db, connector, run))
        return job(codex_db, job_id)

    first = psa_run()
    assert first.status == "succeeded", first.log
    assert first.counts["companies"]["created"] == 3
    assert first.counts["contacts"]["created"] == 4
    assert first.counts["agents"]["created"] == 2
    # Beta Law and Cobalt Clinic had no account number: Codex assigned the next ones and
    # wrote them back.
    assert [(path, body["custom_fields"]["account_number"]) for _, path, body in fake.writes
            ] == [(f"/departments/{BETA}", "620548"), (f"/departments/{COBALT}", "620549")]
    second = psa_run()
    assert second.status == "succeeded", second.log
    for kind, total in (("companies", 3), ("contacts", 4), ("agents", 2)):
        assert second.counts[kind] == {"created": 0, "updated": 0, "unchanged": total,
                                       "retired": 0, "failed": 0}
    assert len(fake.writes) == 2
    with codex_db.transaction() as session:
        companies = {c.name: c for c in session.scalars(select(Company))}
        assert {name: c.account_number for name, c in companies.items()} == {
            "Acme Dental": "620547", "Beta Law": "620548", "Cobalt Clinic": "620549"}
        acme = companies["Acme Dental"]
        assert (acme.billing_plan, acme.contract_term_length, acme.contract_end_date) == (
            "Gold", "2 Year", date(2026, 2, 28))
        dana = session.scalars(select(Contact).where(Contact.name == "Dana Reyes")).one()
        assert [(role.company.name, role.role) for role in dana.roles] == [
            ("Acme Dental", "primary")]
        assert session.scalar(select(PSAAgent.name).where(
            PSAAgent.external_id == "21001931879")) == "Riley Ng"
        assert len(list(session.scalars(select(Contact)))) == 4


def test_ticket_sync_end_to_end_is_idempotent(codex_db: Database, fake: FreshserviceFake,
                                              settings: dict[str, Any]) -> None:
    connector = factory.psa(settings)
    runner.run_job(codex_db, "psa", "freshservice",
                   lambda run: runner.sync_psa(codex_db, connector, run))

    def ticket_run(full: bool) -> SyncJob:
        job_id, _ = runner.run_job(
            codex_db, "tickets", "freshservice",
            lambda run: runner.sync_tickets(codex_db, connector, run, full=full), full=full)
        return job(codex_db, job_id)

    first = ticket_run(full=True)
    assert first.status == "succeeded", first.log
    assert first.counts["tickets"]["created"] == 6
    incremental = ticket_run(full=False)
    since = fake.queries("/tickets")[-1]["updated_since"]
    assert since == stamp(first.started_at - runner.TICKET_OVERLAP)
    # Only the three tickets updated in the last minutes come again, and nothing changed.
    assert incremental.counts["tickets"] == {"created": 0, "updated": 0, "unchanged": 3,
                                             "retired": 0, "failed": 0}
    again = ticket_run(full=True)
    assert again.counts["tickets"]["unchanged"] == 6
    with codex_db.transaction() as session:
        tickets = {t.external_id: t for t in session.scalars(select(Ticket))}
        assert len(tickets) == 6
        printer = tickets["1001"]
        assert printer.company is not None and printer.company.name == "Acme Dental"
        assert printer.total_hours == Decimal("1.83")
        assert len(printer.time_entries) == 2 and len(printer.conversations) == 2
        assert tickets["1005"].status == "spam" and tickets["1006"].status == "deleted"
        assert tickets["1002"].closed_at == fake.now - timedelta(days=6)
        assert tickets["1004"].closed_at is None


def test_ticket_closed_in_freshservice_updates_the_stored_ticket(
        codex_db: Database, fake: FreshserviceFake, settings: dict[str, Any]) -> None:
    connector = factory.psa(settings)
    runner.run_job(codex_db, "tickets", "freshservice",
                   lambda run: runner.sync_tickets(codex_db, connector, run, full=True))
    printer = fake.stored_ticket(1001)
    assert printer is not None
    closed = datetime.now(UTC).replace(microsecond=0)
    printer.update(status=5, updated_at=stamp(closed))
    printer["stats"]["closed_at"] = stamp(closed)
    job_id, status = runner.run_job(codex_db, "tickets", "freshservice",
                                    lambda run: runner.sync_tickets(codex_db, connector, run))
    assert status == "succeeded"
    assert job(codex_db, job_id).counts["tickets"]["updated"] == 1
    with codex_db.transaction() as session:
        row = session.scalars(select(Ticket).where(Ticket.external_id == "1001")).one()
        assert (row.status, row.closed_at) == ("closed", closed)
