"""Proposing ``AccountNumber`` values for RMM sites that have none, for a person to review.

An RMM site is linked to a Codex company by the account number in its site variable; a site
without one syncs no devices. This module matches such sites to companies **by name only**,
with two explicit rules tried in order:

1. *exact*: the names are equal ignoring case and repeated spaces;
2. *normalised*: the names are equal once punctuation is ignored, "&" is read as "and" and
   trailing legal forms (Inc, LLC, Ltd, Corp, Co, ...) are dropped.

A rule that finds exactly one company yields a proposal; one that finds several yields no
proposal and reports the candidates (ambiguous); the first rule that finds any company
decides. Sites whose name merely *contains* a company's name are not matched: "Acme Dental
North" is not guessed to be "Acme Dental". Sites that already carry a number are left alone,
even when no company has that number (they are reported, not overwritten).

:func:`plan_matches` only computes the plan (previewable, JSON-able via ``to_dict``);
:func:`apply_plan` writes the chosen proposals to the RMM on request, re-reading the sites
first so a number set meanwhile is never overwritten. The next RMM sync then links the sites.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from hivematrix.codex.connectors.base import RMMConnector
from hivematrix.codex.models import Company
from hivematrix.codex.sync.records import RecordFailure, SiteRecord

#: Words dropped from the end of a name by the normalised rule.
LEGAL_FORMS = frozenset({"inc", "incorporated", "llc", "ltd", "limited", "corp", "corporation",
                         "co", "plc", "llp", "pllc", "lp"})
_JOINED = re.compile(r"[.'\u2019]")  # "L.L.C." → "llc", "O'Brien" → "obrien"
_SEPARATORS = re.compile(r"[^\w]+|_")


@dataclass(frozen=True)
class CompanyName:
    account_number: str
    name: str


@dataclass(frozen=True)
class Proposal:
    site_external_id: str
    site_name: str
    account_number: str
    company_name: str
    rule: str  # "exact" or "normalised"
    reason: str


@dataclass(frozen=True)
class Unmatched:
    site_external_id: str
    site_name: str
    reason: str
    candidates: tuple[CompanyName, ...] = ()


@dataclass
class MatchPlan:
    #: One proposed account number per site that lacks one and matched a single company.
    proposals: list[Proposal] = field(default_factory=list)
    #: Sites lacking a number that no rule matched to a single company (none or ambiguous).
    unmatched: list[Unmatched] = field(default_factory=list)
    #: Sites carrying a number no company has: reported, never overwritten.
    unknown_numbers: list[Unmatched] = field(default_factory=list)
    #: Sites the RMM listed but the connector could not read.
    unreadable: list[RecordFailure] = field(default_factory=list)
    #: Sites already linked to a company by their number.
    linked: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "proposals": [asdict(item) for item in self.proposals],
            "unmatched": [asdict(item) for item in self.unmatched],
            "unknown_numbers": [asdict(item) for item in self.unknown_numbers],
            "unreadable": [{"site_external_id": item.external_id, "reason": item.reason}
                           for item in self.unreadable],
            "linked": self.linked,
        }


@dataclass(frozen=True)
class Applied:
    site_external_id: str
    account_number: str
    written: bool
    reason: str = ""


def exact_key(name: str) -> str:
    return " ".join(name.split()).casefold()


def normalised_key(name: str) -> str:
    """The name with case, punctuation, "&"/"and" and trailing legal forms ignored."""
    text = _JOINED.sub("", name.casefold().replace("&", " and "))
    words = [word for word in _SEPARATORS.split(text) if word]
    while words and words[-1] in LEGAL_FORMS:
        words.pop()
    return " ".join(words)


def _index(companies: Iterable[CompanyName],
           key: Any) -> dict[str, list[CompanyName]]:
    index: dict[str, list[CompanyName]] = {}
    for company in companies:
        value = key(company.name)
        if value:
            index.setdefault(value, []).append(company)
    return index


def _listing(companies: list[CompanyName]) -> str:
    return ", ".join(f"{company.name} ({company.account_number})" for company in companies)


class _Matcher:
    def __init__(self, companies: list[CompanyName]) -> None:
        self.exact = _index(companies, exact_key)
        self.normalised = _index(companies, normalised_key)

    def match(self, site: SiteRecord) -> Proposal | Unmatched:
        rules = (("exact", self.exact.get(exact_key(site.name), []), "ignoring case"),
                 ("normalised", self.normalised.get(normalised_key(site.name), []),
                  "ignoring case, punctuation and legal forms such as Inc and LLC"))
        for rule, found, how in rules:
            if len(found) == 1:
                company = found[0]
                return Proposal(site.external_id, site.name, company.account_number,
                                company.name, rule, f"site name {site.name!r} equals company "
                                f"name {company.name!r} {how}")
            if found:
                return Unmatched(site.external_id, site.name, f"ambiguous: {len(found)} "
                                 f"companies match {how}: {_listing(found)}", tuple(found))
        return Unmatched(site.external_id, site.name, "no company has this name")


def plan_matches(sites: Iterable[SiteRecord | RecordFailure],
                 companies: Iterable[CompanyName]) -> MatchPlan:
    """The plan for every listed site (see the module docstring for the rules)."""
    known = [company for company in companies if company.account_number.strip()]
    numbers = {company.account_number.strip() for company in known}
    matcher = _Matcher(known)
    plan = MatchPlan()
    for site in sites:
        if isinstance(site, RecordFailure):
            plan.unreadable.append(site)
        elif site.account_number and site.account_number.strip():
            if site.account_number.strip() in numbers:
                plan.linked += 1
            else:
                plan.unknown_numbers.append(Unmatched(
                    site.external_id, site.name, f"has account number "
                    f"{site.account_number.strip()!r}, which no company carries; left as it is"))
        else:
            outcome = matcher.match(site)
            if isinstance(outcome, Proposal):
                plan.proposals.append(outcome)
            else:
                plan.unmatched.append(outcome)
    return plan


def companies_from_db(session: Session) -> list[CompanyName]:
    """Active, not archived companies: the only ones a site may be proposed for."""
    rows = session.execute(select(Company.account_number, Company.name).where(
        Company.active.is_(True), Company.archived_at.is_(None)).order_by(Company.name))
    return [CompanyName(number, name) for number, name in rows]


def plan_for(connector: RMMConnector, session: Session) -> MatchPlan:
    """The plan for the RMM's sites as listed now against Codex's companies."""
    return plan_matches(connector.sites(), companies_from_db(session))


def apply_plan(plan: MatchPlan, connector: RMMConnector, *,
               site_ids: Iterable[str] | None = None) -> list[Applied]:
    """Write the proposals (all, or those of ``site_ids``) to the RMM; one result each.

    The sites are listed again first: a proposal for a site that has a number by now, or is
    gone, is skipped rather than written.
    """
    chosen = None if site_ids is None else set(site_ids)
    proposals = [item for item in plan.proposals
                 if chosen is None or item.site_external_id in chosen]
    results = [Applied(site_id, "", False, "no proposal for this site in the plan")
               for site_id in sorted((chosen or set()) - {p.site_external_id for p in proposals})]
    current = {site.external_id: site for site in connector.sites()
               if isinstance(site, SiteRecord)}
    for proposal in proposals:
        site = current.get(proposal.site_external_id)
        if site is None:
            results.append(Applied(proposal.site_external_id, proposal.account_number, False,
                                   "the site is no longer listed (or could not be read)"))
            continue
        if site.account_number:
            results.append(Applied(proposal.site_external_id, proposal.account_number, False,
                                   f"the site has account number {site.account_number!r} "
                                   "by now; not overwritten"))
            continue
        try:
            connector.set_site_account_number(proposal.site_external_id,
                                              proposal.account_number)
        except Exception as exc:  # one failed write must not stop the others
            results.append(Applied(proposal.site_external_id, proposal.account_number, False,
                                   f"writing failed: {exc}"))
            continue
        results.append(Applied(proposal.site_external_id, proposal.account_number, True))
    return results
