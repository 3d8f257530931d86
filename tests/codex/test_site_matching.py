"""Proposing AccountNumber values for RMM sites by name: the rules, the preview, applying."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import select

from hivematrix.codex.billing_types import BillingTypeMap
from hivematrix.codex.connectors import datto
from hivematrix.codex.models import Company, RMMSite
from hivematrix.codex.sync import runner, site_matching
from hivematrix.codex.sync.records import RecordFailure, SiteRecord
from hivematrix.codex.sync.site_matching import (
    CompanyName,
    Proposal,
    Unmatched,
    normalised_key,
    plan_matches,
)
from hivematrix.common.db import Database, utcnow
from tests.codex.fakes.datto import API_KEY, API_SECRET, DattoFake


def site(name: str, number: str | None = None, uid: str = "") -> SiteRecord:
    return SiteRecord("datto", uid or f"uid-{name}", name, number)


def company(number: str, name: str) -> CompanyName:
    return CompanyName(number, name)


def only(plan: site_matching.MatchPlan) -> Proposal | Unmatched:
    items = [*plan.proposals, *plan.unmatched]
    assert len(items) == 1
    return items[0]


def test_exact_names_match_ignoring_case_and_spacing() -> None:
    proposal = only(plan_matches([site("acme  DENTAL")], [company("100001", "Acme Dental"),
                                                          company("100002", "Acme")]))
    assert proposal == Proposal("uid-acme  DENTAL", "acme  DENTAL", "100001", "Acme Dental",
                                "exact", "site name 'acme  DENTAL' equals company name "
                                "'Acme Dental' ignoring case")


@pytest.mark.parametrize(("site_name", "company_name"), [
    ("Baker & Sons Law, LLC", "Baker and Sons Law"),
    ("Acme Dental Inc.", "ACME DENTAL"),
    ("O'Brien Plumbing", "OBrien Plumbing L.L.C."),
    ("Northwind Traders Co., Ltd", "Northwind-Traders"),
])
def test_normalised_names_match_ignoring_punctuation_and_legal_forms(
        site_name: str, company_name: str) -> None:
    proposal = only(plan_matches([site(site_name)], [company("100007", company_name)]))
    assert isinstance(proposal, Proposal)
    assert (proposal.rule, proposal.account_number) == ("normalised", "100007")
    assert "punctuation and legal forms" in proposal.reason


def test_normalising_keeps_words_that_are_not_trailing_legal_forms() -> None:
    assert normalised_key("Co-Op Bank, Inc.") == "co op bank"
    assert normalised_key("LLC Holdings") == "llc holdings"
    assert normalised_key("Inc.") == ""


def test_an_exact_match_wins_over_an_ambiguous_normalised_one() -> None:
    proposal = only(plan_matches([site("Contoso")], [company("1", "Contoso"),
                                                     company("2", "Contoso, Inc.")]))
    assert isinstance(proposal, Proposal)
    assert (proposal.account_number, proposal.rule) == ("1", "exact")


def test_ambiguous_names_get_no_proposal_and_name_the_candidates() -> None:
    plan = plan_matches([site("Northwind"), site("Contoso")], [
        company("1", "Northwind"), company("2", "NORTHWIND"),
        company("3", "Contoso LLC"), company("4", "Contoso Inc")])
    assert plan.proposals == []
    northwind, contoso = plan.unmatched
    assert northwind.reason == ("ambiguous: 2 companies match ignoring case: Northwind (1), "
                                "NORTHWIND (2)")
    assert [item.account_number for item in contoso.candidates] == ["3", "4"]
    assert contoso.reason.startswith("ambiguous: 2 companies match ignoring case, punctuation")


def test_names_are_not_guessed_from_parts_or_empties() -> None:
    plan = plan_matches([site("Acme Dental North"), site("Inc."), site("Dental")],
                        [company("1", "Acme Dental"), company("2", "Inc")])
    assert plan.proposals == []
    assert [item.reason for item in plan.unmatched] == ["no company has this name"] * 3


def test_sites_with_numbers_are_left_alone_and_failures_reported() -> None:
    failure = RecordFailure("sites", "uid-x", "site variable AccountNumber is masked")
    plan = plan_matches(
        [site("Acme Dental", "100001"), site("Old Name", " 999999 "), failure,
         site("Baker", ""), site("Unknown Co")],
        [company("100001", "Acme Dental"), company("100002", "Old Name"),
         company("100003", "Baker")])
    assert plan.linked == 1
    assert [item.site_name for item in plan.unknown_numbers] == ["Old Name"]
    assert "'999999', which no company carries; left as it is" in plan.unknown_numbers[0].reason
    assert [(item.site_name, item.account_number) for item in plan.proposals] == [
        ("Baker", "100003")]
    assert plan.unreadable == [failure]
    assert plan.to_dict() == {
        "proposals": [{"site_external_id": "uid-Baker", "site_name": "Baker",
                       "account_number": "100003", "company_name": "Baker", "rule": "exact",
                       "reason": "site name 'Baker' equals company name 'Baker' ignoring case"}],
        "unmatched": [{"site_external_id": "uid-Unknown Co", "site_name": "Unknown Co",
                       "reason": "no company has this name", "candidates": ()}],
        "unknown_numbers": [{"site_external_id": "uid-Old Name", "site_name": "Old Name",
                             "reason": plan.unknown_numbers[0].reason, "candidates": ()}],
        "unreadable": [{"site_external_id": "uid-x",
                        "reason": "site variable AccountNumber is masked"}],
        "linked": 1}


# -- against Codex's companies and the Datto fake ------------------------------------------


@pytest.fixture
def fake() -> DattoFake:
    fake = DattoFake()
    fake.add_site("Acme Dental", account_number="100001")
    fake.add_site("Baker & Sons Law, LLC")
    fake.add_site("Contoso")
    fake.add_site("Fabrikam")
    fake.add_site("Closed Shop")
    return fake


@pytest.fixture
def url(fake: DattoFake) -> Iterator[str]:
    with fake.serve() as base:
        yield base


def connector(url: str) -> datto.DattoRMM:
    return datto.from_settings({"DATTO_URL": url, "DATTO_API_KEY": API_KEY,
                                "DATTO_API_SECRET": API_SECRET,
                                "CODEX_OUTBOUND_ALLOWLIST": "127.0.0.1"})


def uid_of(fake: DattoFake, name: str) -> str:
    return next(item["uid"] for item in fake.sites if item["name"] == name)


def test_plan_preview_then_apply_on_request(fake: DattoFake, url: str,
                                            codex_db: Database) -> None:
    with codex_db.transaction() as session:
        session.add_all([
            Company(account_number="100001", name="Acme Dental"),
            Company(account_number="100002", name="Baker and Sons Law"),
            Company(account_number="100003", name="Contoso"),
            Company(account_number="100004", name="Fabrikam Inc"),
            Company(account_number="100005", name="Closed Shop", active=False),
            Company(account_number="100006", name="Archived", archived_at=utcnow())])
    rmm = connector(url)
    with codex_db.transaction() as session:
        assert [item.name for item in site_matching.companies_from_db(session)] == [
            "Acme Dental", "Baker and Sons Law", "Contoso", "Fabrikam Inc"]
        plan = site_matching.plan_for(rmm, session)
    assert plan.linked == 1
    assert [(item.site_name, item.account_number, item.rule) for item in plan.proposals] == [
        ("Baker & Sons Law, LLC", "100002", "normalised"), ("Contoso", "100003", "exact"),
        ("Fabrikam", "100004", "normalised")]
    assert [item.site_name for item in plan.unmatched] == ["Closed Shop"]  # inactive company
    assert fake.writes == []  # previewing writes nothing

    # someone sets Fabrikam's number in Datto between preview and apply
    fake.variables[uid_of(fake, "Fabrikam")].append(
        {"id": 1, "name": "AccountNumber", "value": "777", "masked": False})
    baker, contoso, fabrikam = (uid_of(fake, name) for name in
                                ("Baker & Sons Law, LLC", "Contoso", "Fabrikam"))
    results = site_matching.apply_plan(plan, rmm, site_ids=[baker, fabrikam, "no-such-site"])
    assert [(item.site_external_id, item.written, item.reason) for item in results] == [
        ("no-such-site", False, "no proposal for this site in the plan"),
        (baker, True, ""),
        (fabrikam, False, "the site has account number '777' by now; not overwritten")]
    assert fake.writes == [("PUT", f"/api/v2/site/{baker}/variable",
                            {"name": "AccountNumber", "value": "100002", "masked": False})]
    assert fake.variable(contoso) is None  # not chosen, not written

    billing = BillingTypeMap.from_config({})
    runner.run_job(codex_db, "rmm", "datto",
                   lambda run: runner.sync_rmm(codex_db, rmm, run, billing))
    with codex_db.transaction() as session:
        linked = {row.name: row.company_id is not None
                  for row in session.scalars(select(RMMSite))}
    assert linked == {"Acme Dental": True, "Baker & Sons Law, LLC": True, "Contoso": False,
                      "Fabrikam": False, "Closed Shop": False}


def test_a_failed_write_is_reported_and_the_others_go_on(fake: DattoFake, url: str) -> None:
    rmm = connector(url)
    plan = plan_matches(rmm.sites(), [company("100003", "Contoso"),
                                      company("100004", "Fabrikam")])
    contoso, fabrikam = uid_of(fake, "Contoso"), uid_of(fake, "Fabrikam")
    fake.read_only_sites.add(contoso)
    results = site_matching.apply_plan(plan, rmm)
    assert [(item.site_external_id, item.written) for item in results] == [
        (contoso, False), (fabrikam, True)]
    assert results[0].reason.startswith("writing failed: Datto RMM PUT ")
    assert results[0].reason.endswith("HTTP 403 Access denied to this site")
    assert fake.variable(fabrikam) is not None and fake.variable(contoso) is None
