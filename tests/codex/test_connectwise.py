"""The ConnectWise Manage connector against its contract fake (tests/codex/fakes/connectwise.py).

Every listing is read with a page size of 2, so each one crosses at least one page boundary.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select

from hivematrix.codex.connectors import connectwise, factory
from hivematrix.codex.connectors.http import ConnectorError
from hivematrix.codex.models import Company, Contact, PSAAgent, SyncJob, Ticket
from hivematrix.codex.settings import BadSetting
from hivematrix.codex.sync import runner
from hivematrix.codex.sync.records import (
    AgentRecord,
    CompanyRecord,
    ContactRecord,
    RecordFailure,
)
from hivematrix.common.db import Database
from tests.codex.fakes.connectwise import (
    API,
    CLIENT_ID,
    COMPANY_ID,
    PRIVATE_KEY,
    PUBLIC_KEY,
    FakeConnectWise,
    running,
)


@pytest.fixture
def fake() -> Iterator[FakeConnectWise]:
    with running(FakeConnectWise().seed()) as served:
        yield served


def settings(fake: FakeConnectWise, **changes: Any) -> dict[str, Any]:
    return {"CONNECTWISE_URL": fake.url, "CONNECTWISE_COMPANY_ID": COMPANY_ID,
            "CONNECTWISE_PUBLIC_KEY": PUBLIC_KEY, "CONNECTWISE_PRIVATE_KEY": PRIVATE_KEY,
            "CONNECTWISE_CLIENT_ID": CLIENT_ID, "CONNECTWISE_PAGE_SIZE": 2,
            "CODEX_OUTBOUND_ALLOWLIST": "127.0.0.1", **changes}


def connect(fake: FakeConnectWise, **changes: Any) -> connectwise.ConnectWise:
    return connectwise.from_settings(settings(fake, **changes))


def asked(fake: FakeConnectWise, path: str) -> list[dict[str, str]]:
    """The query arguments of every call the fake received for ``path``."""
    return [call["args"] for call in fake.requests if call["path"] == path]


def by_id(items: Iterator[Any]) -> dict[str, Any]:
    listed = list(items)
    assert not [item for item in listed if isinstance(item, RecordFailure)]
    return {item.external_id: item for item in listed}


# -- settings ---------------------------------------------------------------------------------


def test_missing_settings_are_named() -> None:
    with pytest.raises(BadSetting) as raised:
        connectwise.from_settings({"CONNECTWISE_URL": "https://api-na.myconnectwise.net",
                                   "CONNECTWISE_PUBLIC_KEY": "p"})
    assert str(raised.value) == ("missing settings: CONNECTWISE_COMPANY_ID, "
                                 "CONNECTWISE_PRIVATE_KEY, CONNECTWISE_CLIENT_ID")


def test_the_factory_builds_it(fake: FakeConnectWise) -> None:
    connector = factory.psa(settings(fake, CODEX_PSA_PROVIDER="connectwise"))
    assert isinstance(connector, connectwise.ConnectWise) and connector.source == "connectwise"


def test_unusable_settings_are_named(fake: FakeConnectWise) -> None:
    with pytest.raises(BadSetting, match="CONNECTWISE_STATUS_MAP: not valid JSON"):
        connect(fake, CONNECTWISE_STATUS_MAP="{New: open}")
    with pytest.raises(BadSetting, match="CONNECTWISE_PRIORITY_MAP: 'Priority 1' must map"):
        connect(fake, CONNECTWISE_PRIORITY_MAP=json.dumps({"Priority 1": 4}))
    with pytest.raises(BadSetting, match="CONNECTWISE_PAGE_SIZE: at most 1000"):
        connect(fake, CONNECTWISE_PAGE_SIZE=5000)
    with pytest.raises(BadSetting, match="CODEX_HTTP_RETRIES: not a number"):
        connect(fake, CODEX_HTTP_RETRIES="many")
    with pytest.raises(BadSetting, match=re.escape(
            "CONNECTWISE_URL: 'api-na.myconnectwise.net' is not an http(s) URL")):
        connect(fake, CONNECTWISE_URL="api-na.myconnectwise.net")


def test_a_loopback_url_needs_the_allowlist(fake: FakeConnectWise) -> None:
    with pytest.raises(BadSetting, match=re.escape(
            "CONNECTWISE_URL: 127.0.0.1 resolves to 127.0.0.1, a non-public address; add it "
            "to CODEX_OUTBOUND_ALLOWLIST")):
        connect(fake, CODEX_OUTBOUND_ALLOWLIST="")


# -- listings ---------------------------------------------------------------------------------


def test_companies_page_by_page_after_looking_up_the_codebase(fake: FakeConnectWise) -> None:
    companies = by_id(connect(fake).companies())
    pages = asked(fake, "/company/companies")
    assert [args["page"] for args in pages] == ["1", "2"]
    assert {args["conditions"] for args in pages} == {"deletedFlag=false"}
    assert {args["orderBy"] for args in pages} == {"id asc"}
    assert companies["250"] == CompanyRecord(
        source="connectwise", external_id="250", name="Acme Dental", account_number="620547",
        domains=("acme-dental.example",), main_phone="5555550100",
        address="100 Main St\nSuite 4\nSpringfield, IL 62701\nUnited States",
        billing_plan="Gold", contract_term_length="2 years",
        contract_start_date=date(2024, 3, 1), active=True)
    assert companies["251"].account_number is None
    assert companies["251"].domains == ("betalaw.example",)
    assert companies["252"].active is False  # status "Inactive"


def test_deleted_companies_are_not_listed_and_the_api_root_can_be_given(
        fake: FakeConnectWise) -> None:
    fake.companies[251]["deletedFlag"] = True
    companies = by_id(connect(fake, CONNECTWISE_URL=fake.url + API).companies())
    assert sorted(companies) == ["250", "252"]


def test_numeric_account_number_fields_read_without_decimals(fake: FakeConnectWise) -> None:
    field = fake.companies[252]["customFields"][0]
    field.update(type="Number", value=620550.0)
    assert by_id(connect(fake).companies())["252"].account_number == "620550"


def test_contacts_take_emails_phones_and_roles_from_their_items(fake: FakeConnectWise) -> None:
    contacts = by_id(connect(fake).contacts())
    assert [args["page"] for args in asked(fake, "/company/contacts")] == ["1", "2"]
    assert contacts["1001"] == ContactRecord(
        source="connectwise", external_id="1001", name="Dana Reyes",
        email="Dana.Reyes@acme-dental.example", secondary_emails=("dana@reyes-home.example",),
        first_name="Dana", last_name="Reyes", title="Office Manager", work_phone="5555550123",
        mobile_phone="5555550199", active=True,
        companies=(("250", "primary"), ("250", "billing")))
    assert contacts["1002"].companies == (("250", "technical"),)
    assert contacts["1003"].active is False
    assert contacts["1003"].companies == (("251", "general"),)


def test_members_become_psa_agents(fake: FakeConnectWise) -> None:
    fake.members[178] = {"id": 178, "identifier": "svc-backup", "inactiveFlag": False}
    agents = by_id(connect(fake).agents())
    assert [args["page"] for args in asked(fake, "/system/members")] == ["1", "2"]
    assert agents["176"] == AgentRecord(source="connectwise", external_id="176",
                                        name="Jane Smith", email="jsmith@msp.example",
                                        active=True, job_title="Service Technician")
    assert (agents["177"].active, agents["177"].email) == (False, "ravi.m@msp.example")
    assert agents["178"].name == "svc-backup"


def test_tickets_with_time_entries_and_notes(fake: FakeConnectWise) -> None:
    tickets = by_id(connect(fake).tickets(updated_since=None, details=True))
    assert [args["page"] for args in asked(fake, "/service/tickets")] == ["1", "2"]
    assert "conditions" not in asked(fake, "/service/tickets")[0]
    assert asked(fake, "/time/entries")[0]["conditions"] == (
        'chargeToType="ServiceTicket" and chargeToId=12345')
    printer = tickets["12345"]
    assert (printer.status, printer.status_raw, printer.priority, printer.priority_raw) == (
        "open", "New", "high", 15)
    assert (printer.company_external_id, printer.requester_external_id,
            printer.responder_external_id, printer.group_id) == ("250", "1001", "176", "1")
    assert (printer.requester_name, printer.requester_email) == (
        "Dana Reyes", "Dana.Reyes@acme-dental.example")
    assert printer.created_at == datetime(2025, 9, 30, 14, 2, tzinfo=UTC)
    assert printer.updated_at == datetime(2025, 10, 1, 8, 0, tzinfo=UTC)
    assert printer.first_responded_at == datetime(2025, 9, 30, 14, 40, tzinfo=UTC)
    assert printer.due_by == datetime(2025, 10, 7, 22, 0, tzinfo=UTC)
    assert printer.closed_at is None
    assert printer.description_text == "Printer shows error E-13 and will not print."
    assert printer.conversations is not None and printer.time_entries is not None
    assert [(note.private, note.author, note.incoming) for note in printer.conversations] == [
        (True, "Jane Smith", False), (False, "Jane Smith", False)]
    assert printer.agent_responded_at == datetime(2025, 10, 1, 8, 25, tzinfo=UTC)
    assert [(entry.external_id, entry.hours, entry.billable, entry.agent_external_id)
            for entry in printer.time_entries] == [("9001", Decimal("1.5"), True, "176"),
                                                   ("9002", Decimal("0.1"), False, "176")]
    assert printer.time_entries[0].executed_at == datetime(2025, 10, 1, 14, 0, tzinfo=UTC)
    laptop, vpn = tickets["12346"], tickets["12347"]
    assert (laptop.status, laptop.priority, laptop.ticket_type) == (
        "waiting_customer", "medium", "Service Request")
    assert (vpn.status, vpn.status_raw, vpn.priority) == ("closed", ">Closed", "urgent")
    assert vpn.closed_at == datetime(2025, 10, 3, 17, 5, tzinfo=UTC)
    assert vpn.time_entries is not None and vpn.time_entries[0].hours == Decimal("0.25")


def test_light_tickets_make_no_detail_calls(fake: FakeConnectWise) -> None:
    tickets = by_id(connect(fake).tickets(updated_since=None, details=False))
    assert tickets["12345"].time_entries is None and tickets["12345"].conversations is None
    assert not asked(fake, "/time/entries")


def test_incremental_tickets_filter_on_last_updated(fake: FakeConnectWise) -> None:
    since = datetime(2025, 10, 2, 0, 0, tzinfo=UTC)
    tickets = by_id(connect(fake).tickets(updated_since=since, details=False))
    assert sorted(tickets) == ["12346", "12347"]
    assert asked(fake, "/service/tickets")[0]["conditions"] == (
        "lastUpdated > [2025-10-02T00:00:00Z]")
    fake.requests.clear()
    board = connect(fake, CONNECTWISE_TICKET_CONDITIONS='board/name="Help Desk"')
    assert sorted(by_id(board.tickets(updated_since=since, details=False))) == [
        "12346", "12347"]
    assert asked(fake, "/service/tickets")[0]["conditions"] == (
        '(board/name="Help Desk") and (lastUpdated > [2025-10-02T00:00:00Z])')


# -- failures ---------------------------------------------------------------------------------


def test_bad_credentials_are_refused_with_a_hint(fake: FakeConnectWise) -> None:
    with pytest.raises(ConnectorError) as raised:
        list(connect(fake, CONNECTWISE_PRIVATE_KEY="wrong").companies())
    message = str(raised.value)
    assert "ConnectWise GET" in message and "HTTP 401" in message
    assert "The provided credentials are not valid." in message
    assert "CONNECTWISE_PRIVATE_KEY" in message
    with pytest.raises(ConnectorError, match="HTTP 401 A valid clientId header is required"):
        list(connect(fake, CONNECTWISE_CLIENT_ID="not-the-client").agents())


def test_an_unknown_company_id_has_no_codebase(fake: FakeConnectWise) -> None:
    with pytest.raises(ConnectorError, match="HTTP 404 Company someone-else was not found"):
        list(connect(fake, CONNECTWISE_COMPANY_ID="someone-else").companies())


def test_429_is_waited_out(fake: FakeConnectWise) -> None:
    fake.rate_limit_every = 2  # the second page's first attempt is refused
    connector = connect(fake)
    companies = by_id(connector.companies())
    assert sorted(companies) == ["250", "251", "252"]
    assert connector.http.waits == [1.0]
    assert [args["page"] for args in asked(fake, "/company/companies")] == ["1", "2", "2"]


def test_bad_conditions_are_a_vendor_error(fake: FakeConnectWise) -> None:
    with pytest.raises(ConnectorError, match="HTTP 400 conditions is invalid"):
        list(connect(fake, CONNECTWISE_COMPANY_CONDITIONS='name = "unterminated').companies())


def test_an_unreadable_payload_fails_alone(fake: FakeConnectWise) -> None:
    fake.companies[253] = {"id": 253, "name": None, "deletedFlag": False, "customFields": []}
    fake.contacts[1004] = {"id": 1004, "firstName": "Ann", "communicationItems": "ann@x"}
    fake.tickets[12348] = {**fake.tickets[12345], "id": 12348,
                           "_info": {"lastUpdated": "last tuesday"}}
    connector = connect(fake)
    companies = list(connector.companies())
    failures = [item for item in companies if isinstance(item, RecordFailure)]
    assert [(f.kind, f.external_id) for f in failures] == [("companies", "253")]
    assert failures[0].reason == "unreadable payload (ValueError: no name)"
    assert len(companies) == 4
    contacts = list(connector.contacts())
    assert [item.external_id for item in contacts if isinstance(item, RecordFailure)] == [
        "1004"]
    tickets = list(connector.tickets(updated_since=None, details=True))
    assert [(item.external_id, type(item).__name__) for item in tickets] == [
        ("12345", "TicketRecord"), ("12346", "TicketRecord"), ("12347", "TicketRecord"),
        ("12348", "RecordFailure")]


def test_a_bad_time_entry_fails_its_ticket_only(fake: FakeConnectWise) -> None:
    fake.time_entries[9003]["actualHours"] = None
    tickets = list(connect(fake).tickets(updated_since=None, details=True))
    failed = [item for item in tickets if isinstance(item, RecordFailure)]
    assert [item.external_id for item in failed] == ["12347"]
    assert "actualHours" in failed[0].reason


# -- maps -------------------------------------------------------------------------------------


def test_status_and_priority_maps_can_be_overridden(fake: FakeConnectWise) -> None:
    fake.statuses[1].append({"id": 9, "name": "Enter Time", "sortOrder": 7,
                             "closedStatus": False, "inactive": False})
    fake.statuses[1].append({"id": 10, "name": "Billed", "sortOrder": 8,
                             "closedStatus": True, "inactive": False})
    fake.add_ticket(12349, "Time left", fake.companies[250], status_id=9, priority_id=4,
                    updated=datetime(2025, 10, 4, tzinfo=UTC))
    fake.add_ticket(12350, "Done and billed", fake.companies[250], status_id=10,
                    priority_id=6, updated=datetime(2025, 10, 4, tzinfo=UTC), closed=True)
    default = by_id(connect(fake).tickets(updated_since=None, details=False))
    assert default["12349"].status == "enter_time"  # no map knows it: its own name
    assert default["12350"].status == "closed"  # unknown, but ConnectWise closed it
    assert default["12350"].priority == "low"
    configured = by_id(connect(
        fake, CONNECTWISE_STATUS_MAP=json.dumps({"Waiting Customer": "on_hold", "1": "scheduled",
                                                 "Billed": "job_complete_bill"}),
        CONNECTWISE_PRIORITY_MAP=json.dumps({"Priority 2 - Quick Response": "urgent",
                                             "4": "low"})).tickets(updated_since=None,
                                                                   details=False))
    assert [configured[key].status for key in ("12345", "12346", "12350")] == [
        "scheduled", "on_hold", "job_complete_bill"]
    assert [configured[key].priority for key in ("12345", "12346")] == ["urgent", "low"]


@pytest.mark.parametrize(("name", "priority"), [
    ("Priority 1 - Critical", "urgent"), ("Priority 2 - High", "high"),
    ("Priority 3 - Normal Response", "medium"), ("Priority 5 - Next Time", "low"),
    ("P-High", "high"), ("Do when quiet", "medium")])
def test_priorities_are_guessed_from_their_names(name: str, priority: str) -> None:
    assert connectwise._guess_priority(name) == priority


# -- writes -----------------------------------------------------------------------------------


def test_account_number_is_written_into_the_custom_field(fake: FakeConnectWise) -> None:
    connect(fake).set_company_account_number("251", "620551")
    [write] = fake.writes
    assert (write["method"], write["resource"], write["id"]) == ("PATCH", "company", 251)
    [operation] = write["body"]
    assert (operation["op"], operation["path"]) == ("replace", "customFields")
    assert [(item["caption"], item["value"]) for item in operation["value"]] == [
        ("AccountNumber", "620551"), ("Billing Plan", None), ("Contract Term", None),
        ("Contract Start Date", None)]
    assert by_id(connect(fake).companies())["251"].account_number == "620551"


def test_account_number_needs_the_configured_field(fake: FakeConnectWise) -> None:
    with pytest.raises(ConnectorError, match="no custom field captioned 'Account No'"):
        connect(fake, CONNECTWISE_ACCOUNT_NUMBER_FIELD="Account No").set_company_account_number(
            "251", "620551")
    assert not fake.writes


def test_ticket_status_and_internal_note_are_pushed(fake: FakeConnectWise) -> None:
    connector = connect(fake)
    connector.update_ticket("12345", status="closed", note="Firmware updated.",
                            author="Sam Tech")
    status, note = fake.writes
    assert status["body"] == [{"op": "replace", "path": "status", "value": {"id": 7}}]
    assert note["resource"] == "ticketNote" and note["id"] == 12345
    assert note["body"] == {"text": "Firmware updated.\n\n— Sam Tech",
                            "internalAnalysisFlag": True, "detailDescriptionFlag": False,
                            "resolutionFlag": False}
    assert (fake.tickets[12345]["status"]["name"], fake.tickets[12345]["closedFlag"]) == (
        ">Closed", True)
    connector.update_ticket("12345", status="waiting_customer")
    assert fake.writes[-1]["body"][0]["value"] == {"id": 3}
    with pytest.raises(ConnectorError, match="no status that maps to 'spam'"):
        connector.update_ticket("12345", status="spam")
    by_board_id = connect(fake, CONNECTWISE_STATUS_MAP=json.dumps({"5": "on_hold"}))
    by_board_id.update_ticket("12346", status="on_hold")
    assert fake.writes[-1]["body"][0]["value"] == {"id": 5}


def test_a_note_on_a_missing_ticket_is_a_404(fake: FakeConnectWise) -> None:
    with pytest.raises(ConnectorError, match="HTTP 404 Ticket ID 99 was not found"):
        connect(fake).update_ticket("99", note="hello")


# -- end to end -------------------------------------------------------------------------------


def _job(database: Database, job_id: str) -> SyncJob:
    with database.transaction() as session:
        job = session.get(SyncJob, job_id)
        assert job is not None
        session.expunge(job)
        return job


def test_sync_through_the_runner_is_idempotent(codex_db: Database,
                                               fake: FakeConnectWise) -> None:
    connector = connect(fake)

    def psa() -> tuple[str, str]:
        return runner.run_job(codex_db, "psa", "connectwise",
                              lambda run: runner.sync_psa(codex_db, connector, run))

    def tickets(full: bool = False) -> tuple[str, str]:
        return runner.run_job(codex_db, "tickets", "connectwise",
                              lambda run: runner.sync_tickets(codex_db, connector, run,
                                                              full=full), full=full)

    first_id, first = psa()
    assert first == "succeeded"
    assert [(w["method"], w["id"], w["body"][0]["value"][0]["value"]) for w in fake.writes] == [
        ("PATCH", 251, "620548")]  # Beta Law had none: the next after Acme's
    second_id, second = psa()
    assert second == "succeeded" and len(fake.writes) == 1
    counts = _job(codex_db, second_id).counts
    assert counts["companies"] == {"created": 0, "updated": 0, "unchanged": 3, "retired": 0,
                                   "failed": 0}
    assert counts["contacts"]["unchanged"] == 3 and counts["agents"]["unchanged"] == 2
    assert _job(codex_db, first_id).counts["companies"]["created"] == 3

    assert tickets()[1] == "succeeded"
    full_id, full = tickets(full=True)
    assert full == "succeeded"
    assert _job(codex_db, full_id).counts["tickets"] == {
        "created": 0, "updated": 0, "unchanged": 3, "retired": 0, "failed": 0}

    connector.update_ticket("12345", status="closed", note="Firmware updated.",
                            author="Sam Tech")
    fake.requests.clear()
    incremental_id, _ = tickets()
    assert _job(codex_db, incremental_id).counts["tickets"]["updated"] == 1
    assert asked(fake, "/service/tickets")[0]["conditions"].startswith("lastUpdated > [")

    with codex_db.transaction() as session:
        companies = {row.name: row for row in session.scalars(select(Company))}
        assert {name: (row.account_number, row.active) for name, row in companies.items()} == {
            "Acme Dental": ("620547", True), "Beta Law LLP": ("620548", True),
            "Gamma Retail": ("620550", False)}
        assert companies["Acme Dental"].contract_term_length == "2 Year"
        assert companies["Acme Dental"].contract_end_date == date(2026, 2, 28)
        dana = session.scalars(select(Contact).where(Contact.external_id == "1001")).one()
        assert dana.email == "dana.reyes@acme-dental.example"
        assert sorted(role.role for role in dana.roles) == ["billing", "primary"]
        assert session.scalar(select(PSAAgent.name).where(PSAAgent.external_id == "176")) == (
            "Jane Smith")
        rows = {row.external_id: row for row in session.scalars(select(Ticket))}
        assert sorted(rows) == ["12345", "12346", "12347"]
        printer = rows["12345"]
        assert (printer.status, printer.status_raw) == ("closed", ">Closed")
        assert printer.total_hours == Decimal("1.60")
        assert printer.company is not None and printer.company.name == "Acme Dental"
        assert [note.body_text for note in printer.conversations][-1] == (
            "Firmware updated.\n\n— Sam Tech")


def test_sync_psa_counts_unreadable_companies(codex_db: Database,
                                              fake: FakeConnectWise) -> None:
    fake.companies[253] = {"id": 253, "name": "", "deletedFlag": False, "customFields": []}
    job_id, status = runner.run_job(codex_db, "psa", "connectwise",
                                    lambda run: runner.sync_psa(codex_db, connect(fake), run))
    job = _job(codex_db, job_id)
    assert status == "partial"
    assert job.counts["companies"]["created"] == 3 and job.counts["companies"]["failed"] == 1
    assert "companies 253: unreadable payload (ValueError: no name)" in job.log

