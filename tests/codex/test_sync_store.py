"""The sync store and runner: idempotent upserts, nothing deleted, one bad record isolated.

Connectors are tested against their vendors' contract fakes elsewhere; here a listing is
just a list of records, which is all the runner sees of a connector.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select

from hivematrix.codex.billing_types import BillingTypeMap
from hivematrix.codex.models import Asset, Company, Contact, PSAAgent, SyncJob, Ticket
from hivematrix.codex.sync import runner, store
from hivematrix.codex.sync.records import (
    AgentRecord,
    CompanyRecord,
    ContactRecord,
    DeviceRecord,
    RecordFailure,
    SiteRecord,
    TicketRecord,
    TimeEntryRecord,
)
from hivematrix.common.db import Database

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


@dataclass
class ListedPSA:
    """A PSA whose listings are fixed lists; records what was written back to it."""

    companies_: list[Any] = field(default_factory=list)
    contacts_: list[Any] = field(default_factory=list)
    agents_: list[Any] = field(default_factory=list)
    tickets_: list[Any] = field(default_factory=list)
    written: list[tuple[str, str]] = field(default_factory=list)
    asked_since: list[datetime | None] = field(default_factory=list)
    source: str = "freshservice"

    def companies(self) -> Iterator[Any]:
        yield from self.companies_

    def contacts(self) -> Iterator[Any]:
        yield from self.contacts_

    def agents(self) -> Iterator[Any]:
        yield from self.agents_

    def tickets(self, *, updated_since: datetime | None, details: bool) -> Iterator[Any]:
        self.asked_since.append(updated_since)
        yield from self.tickets_

    def set_company_account_number(self, external_id: str, account_number: str) -> None:
        self.written.append((external_id, account_number))

    def update_ticket(self, external_id: str, **_: Any) -> None:
        raise NotImplementedError


@dataclass
class ListedRMM:
    sites_: list[Any]
    devices_: dict[str, list[Any]]
    source: str = "datto"

    def sites(self) -> Iterator[Any]:
        yield from self.sites_

    def devices(self, site_external_id: str) -> Iterator[Any]:
        yield from self.devices_.get(site_external_id, [])

    def set_site_account_number(self, site_external_id: str, account_number: str) -> None:
        raise NotImplementedError

    def device_details(self, device_external_id: str) -> dict[str, Any]:
        raise NotImplementedError

    def run_quick_job(self, device_external_id: str, component_uid: str,
                      variables: dict[str, str] | None = None) -> dict[str, Any]:
        raise NotImplementedError


def acme(**changes: Any) -> CompanyRecord:
    values: dict[str, Any] = {"source": "freshservice", "external_id": "21000097757",
                              "name": "Acme Dental", "account_number": "620547",
                              "contract_term_length": "2 years",
                              "contract_start_date": date(2024, 3, 1), "billing_plan": "Gold"}
    return CompanyRecord(**{**values, **changes})


def psa_run(database: Database, psa: ListedPSA) -> tuple[str, str]:
    return runner.run_job(database, "psa", psa.source,
                          lambda run: runner.sync_psa(database, psa, run))


def test_terms_are_normalised_and_end_dates_computed() -> None:
    assert store.normalise_term("2 years") == "2 Year"
    assert store.normalise_term("1-year") == "1 Year"
    assert store.normalise_term("Monthly") == "Month to Month"
    assert store.normalise_term("18 months") == "18 months"
    assert store.contract_end(date(2024, 3, 1), "2 Year") == date(2026, 2, 28)
    assert store.contract_end(date(2024, 2, 29), "1 Year") == date(2025, 2, 28)
    assert store.contract_end(date(2024, 3, 1), "Month to Month") is None


def test_psa_sync_is_idempotent(codex_db: Database) -> None:
    psa = ListedPSA(companies_=[acme()], contacts_=[ContactRecord(
        source="freshservice", external_id="77", name="Dana Reyes", email="Dana@Acme.example",
        companies=(("21000097757", "billing"),))],
        agents_=[AgentRecord(source="freshservice", external_id="5", name="Sam Tech")])
    assert psa_run(codex_db, psa)[1] == "succeeded"
    assert psa_run(codex_db, psa)[1] == "succeeded"
    with codex_db.transaction() as session:
        companies = list(session.scalars(select(Company)))
        contact = session.scalars(select(Contact)).one()
        assert [c.account_number for c in companies] == ["620547"]
        assert companies[0].contract_term_length == "2 Year"
        assert companies[0].contract_end_date == date(2026, 2, 28)
        assert contact.email == "dana@acme.example"
        assert [(role.company.name, role.role) for role in contact.roles] == [
            ("Acme Dental", "billing")]
        assert session.scalars(select(PSAAgent)).one().name == "Sam Tech"
        jobs = list(session.scalars(select(SyncJob).order_by(SyncJob.started_at)))
    assert jobs[0].counts["companies"]["created"] == 1
    assert jobs[1].counts["companies"] == {"created": 0, "updated": 0, "unchanged": 1,
                                           "retired": 0, "failed": 0}
    assert "companies: 1 read" in jobs[1].log


def test_company_without_account_number_gets_one_written_back(codex_db: Database) -> None:
    psa = ListedPSA(companies_=[acme(), acme(external_id="9", name="Beta Law",
                                             account_number=None)])
    psa_run(codex_db, psa)
    assert psa.written == [("9", "620548")]
    with codex_db.transaction() as session:
        beta = session.scalars(select(Company).where(Company.name == "Beta Law")).one()
        assert beta.account_number == "620548"
    psa_run(codex_db, psa)  # the PSA still shows none: the same number, no new company
    assert psa.written[-1] == ("9", "620548")


def test_vanished_company_and_contact_are_deactivated_not_deleted(codex_db: Database) -> None:
    contact = ContactRecord(source="freshservice", external_id="77", name="Dana",
                            companies=(("21000097757", "primary"),))
    psa_run(codex_db, ListedPSA(companies_=[acme()], contacts_=[contact]))
    psa_run(codex_db, ListedPSA())
    with codex_db.transaction() as session:
        company = session.scalars(select(Company)).one()
        assert company.active is False
        assert session.scalars(select(Contact)).one().active is False


def test_one_bad_record_is_logged_and_the_rest_synced(codex_db: Database) -> None:
    too_long = acme(external_id="2", name="x" * 300, account_number="2")  # over 255 chars
    psa = ListedPSA(companies_=[acme(), RecordFailure("companies", "3", "no name"), too_long,
                                acme(external_id="4", name="Delta", account_number="4")])
    job_id, status = psa_run(codex_db, psa)
    with codex_db.transaction() as session:
        names = sorted(session.scalars(select(Company.name)))
        job = session.get(SyncJob, job_id)
        assert job is not None
        counts, log = job.counts["companies"], job.log
    if codex_db.engine.dialect.name == "postgresql":
        assert names == ["Acme Dental", "Delta"]
        assert counts["failed"] == 2
    else:  # SQLite does not enforce lengths: only the unreadable record fails
        assert counts["failed"] == 1
    assert status == "partial"
    assert "companies 3: no name" in log


def test_a_second_run_of_a_kind_is_refused_while_one_runs(codex_db: Database) -> None:
    runner.start_job(codex_db, "psa", "freshservice")
    with pytest.raises(runner.JobRunning):
        runner.start_job(codex_db, "psa", "freshservice")
    runner.start_job(codex_db, "rmm", "datto")  # other kinds are independent


def test_tickets_keep_time_entries_and_sum_hours(codex_db: Database) -> None:
    psa_run(codex_db, ListedPSA(companies_=[acme()]))
    ticket = TicketRecord(
        source="freshservice", external_id="1001", subject="Printer jam", status="open",
        priority="high", priority_raw=3, company_external_id="21000097757", updated_at=T0,
        time_entries=(TimeEntryRecord("t1", Decimal("1.25")),
                      TimeEntryRecord("t2", Decimal("0.5"))))
    psa = ListedPSA(tickets_=[ticket])
    runner.run_job(codex_db, "tickets", "freshservice",
                   lambda run: runner.sync_tickets(codex_db, psa, run))
    light = TicketRecord(source="freshservice", external_id="1001", subject="Printer jam",
                         status="pending", priority="high", priority_raw=3,
                         company_external_id="21000097757", updated_at=T0)
    psa.tickets_ = [light]
    runner.run_job(codex_db, "tickets", "freshservice",
                   lambda run: runner.sync_tickets(codex_db, psa, run))
    with codex_db.transaction() as session:
        row = session.scalars(select(Ticket)).one()
        assert row.status == "pending"
        assert row.total_hours == Decimal("1.75")
        assert sorted(entry.external_id for entry in row.time_entries) == ["t1", "t2"]
        assert row.company is not None and row.company.name == "Acme Dental"
    assert psa.asked_since[0] is None  # first run: the full history
    assert psa.asked_since[1] is not None and psa.asked_since[1] < datetime.now(UTC)


def test_rmm_devices_get_billing_types_and_vanished_ones_retire(codex_db: Database) -> None:
    psa_run(codex_db, ListedPSA(companies_=[acme()]))
    sites = [SiteRecord("datto", "s1", "Acme main", account_number="620547"),
             SiteRecord("datto", "s2", "Unlinked site")]
    devices = {"s1": [
        DeviceRecord("datto", "d1", "s1", "ACME-SRV01", device_category="Server",
                     backup_bytes=3 * 2**40 + 12345),
        DeviceRecord("datto", "d2", "s1", "ACME-WS01", device_category="Laptop"),
        DeviceRecord("datto", "d3", "s1", "ACME-CAM", device_category="Camera")],
        "s2": [DeviceRecord("datto", "d9", "s2", "ORPHAN")]}
    rmm = ListedRMM(sites, devices)
    billing = BillingTypeMap.from_config({})
    runner.run_job(codex_db, "rmm", "datto", lambda run: runner.sync_rmm(codex_db, rmm, run,
                                                                         billing))
    rmm.devices_["s1"] = devices["s1"][:2]
    job_id, _ = runner.run_job(codex_db, "rmm", "datto",
                               lambda run: runner.sync_rmm(codex_db, rmm, run, billing))
    with codex_db.transaction() as session:
        assets = {a.hostname: a for a in session.scalars(select(Asset))}
        job = session.get(SyncJob, job_id)
        assert job is not None
        log = job.log
    assert set(assets) == {"ACME-SRV01", "ACME-WS01", "ACME-CAM"}
    assert assets["ACME-SRV01"].billing_type == "Server"
    assert assets["ACME-SRV01"].backup_bytes == 3 * 2**40 + 12345
    assert assets["ACME-WS01"].billing_type == "Workstation"
    assert (assets["ACME-CAM"].billing_type, assets["ACME-CAM"].billing_type_unmapped) == (
        "Workstation", True)
    assert assets["ACME-CAM"].retired_at is not None
    assert assets["ACME-SRV01"].retired_at is None
    assert "Unlinked site" in log and "skipped" in log


def test_devices_of_a_deleted_site_retire(codex_db: Database) -> None:
    psa_run(codex_db, ListedPSA(companies_=[acme()]))
    site = SiteRecord("datto", "s1", "Acme main", account_number="620547")
    rmm = ListedRMM([site], {"s1": [DeviceRecord("datto", "d1", "s1", "PC1")]})
    billing = BillingTypeMap.from_config({})
    runner.run_job(codex_db, "rmm", "datto",
                   lambda run: runner.sync_rmm(codex_db, rmm, run, billing))
    rmm.sites_ = []
    runner.run_job(codex_db, "rmm", "datto",
                   lambda run: runner.sync_rmm(codex_db, rmm, run, billing))
    with codex_db.transaction() as session:
        assert session.scalars(select(Asset)).one().retired_at is not None


def test_ticket_total_is_the_sum_of_its_stored_entries(codex_db: Database) -> None:
    minute = Decimal(1) / 60  # each entry is stored as 0.02
    ticket = TicketRecord(source="freshservice", external_id="1002", subject="Calls",
                          status="open", priority="low", updated_at=T0,
                          time_entries=tuple(TimeEntryRecord(f"m{n}", minute) for n in range(3)))
    runner.run_job(codex_db, "tickets", "freshservice",
                   lambda run: runner.sync_tickets(codex_db, ListedPSA(tickets_=[ticket]), run))
    with codex_db.transaction() as session:
        row = session.scalars(select(Ticket)).one()
        assert row.total_hours == sum(entry.hours for entry in row.time_entries) == Decimal(
            "0.06")
