"""Applying connector records to Codex's tables, idempotently.

Each ``apply_*`` takes one record, finds the row it describes by (source, external id), and
creates or updates it, returning ``"created"``, ``"updated"`` or ``"unchanged"``. Nothing here
deletes master data: what vanished from a vendor is marked inactive (companies, contacts,
agents) or retired (assets) by the ``retire_*`` functions, so history and bills stay intact.
Callers own the transaction; the runner commits per batch.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import date, timedelta
from decimal import Decimal
from typing import Any, Literal

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from hivematrix.codex.billing_types import BillingTypeMap
from hivematrix.codex.models import (
    CONTACT_ROLES,
    Asset,
    Company,
    Contact,
    ContactRole,
    Conversation,
    PSAAgent,
    RMMSite,
    Ticket,
    TimeEntry,
)
from hivematrix.codex.sync.records import (
    AgentRecord,
    CompanyRecord,
    ContactRecord,
    DeviceRecord,
    SiteRecord,
    TicketRecord,
)
from hivematrix.common.db import utcnow

Outcome = Literal["created", "updated", "unchanged"]

#: The first account number handed out when a PSA company has none (then max + 1).
FIRST_ACCOUNT_NUMBER = 100001

_TERMS = {"month to month": "Month to Month", "monthly": "Month to Month",
          "1 year": "1 Year", "1 years": "1 Year", "12 months": "1 Year",
          "2 year": "2 Year", "2 years": "2 Year", "24 months": "2 Year",
          "3 year": "3 Year", "3 years": "3 Year", "36 months": "3 Year"}


def normalise_term(term: str | None) -> str | None:
    """"1 year", "1-Year" and "12 months" all become "1 Year"; unknown text passes through."""
    if term is None or not term.strip():
        return None
    key = re.sub(r"[\s\-_]+", " ", term.strip().lower())
    return _TERMS.get(key, term.strip())


def contract_end(start: date | None, term: str | None) -> date | None:
    """Start plus N years minus one day; None for month to month or an unknown term."""
    if start is None or term not in ("1 Year", "2 Year", "3 Year"):
        return None
    years = int(term[0])
    try:
        anniversary = start.replace(year=start.year + years)
    except ValueError:  # 29 February: the anniversary in a non-leap year is 1 March
        anniversary = date(start.year + years, 3, 1)
    return anniversary - timedelta(days=1)


def _assign(row: Any, values: Mapping[str, Any]) -> bool:
    """Set attributes that differ; True when anything changed."""
    changed = False
    for name, value in values.items():
        if getattr(row, name) != value:
            setattr(row, name, value)
            changed = True
    return changed


def _outcome(created: bool, changed: bool) -> Outcome:
    return "created" if created else "updated" if changed else "unchanged"


def next_account_number(session: Session) -> str:
    """The next free numeric account number (numbers only; other forms are left alone)."""
    numbers = [int(value) for value in session.scalars(select(Company.account_number))
               if value.isdigit()]
    return str(max([FIRST_ACCOUNT_NUMBER - 1, *numbers]) + 1)


def company_by_external(session: Session, source: str, external_id: str) -> Company | None:
    return session.scalar(select(Company).where(Company.psa_source == source,
                                                Company.psa_external_id == external_id))


def apply_company(session: Session, record: CompanyRecord) -> tuple[Company, Outcome, bool]:
    """Upsert a PSA company. Returns the row, the outcome and whether Codex assigned it a new
    account number (which the runner then writes back to the PSA).

    Matching: by (source, external id) first; then a company with the record's account number
    that no PSA owns yet is adopted (a manually created company meeting its PSA record).
    """
    company = company_by_external(session, record.source, record.external_id)
    assigned = False
    created = False
    if company is None and record.account_number:
        candidate = session.scalar(select(Company).where(
            Company.account_number == record.account_number))
        if candidate is not None and candidate.psa_external_id is None:
            company = candidate
    if company is None:
        number = record.account_number
        if not number or session.scalar(select(Company.id).where(
                Company.account_number == number)) is not None:
            number = next_account_number(session)
            assigned = True
        company = Company(account_number=number, psa_source=record.source,
                          psa_external_id=record.external_id, name=record.name)
        session.add(company)
        created = True
    term = normalise_term(record.contract_term_length)
    values: dict[str, Any] = {
        "psa_source": record.source, "psa_external_id": record.external_id,
        "name": record.name, "description": record.description,
        "domains": sorted(set(record.domains)), "main_phone": record.main_phone,
        "address": record.address, "active": record.active and company.archived_at is None,
    }
    # PSA custom fields win only when the PSA has them: an empty PSA field does not wipe what
    # an admin set in Codex.
    for name, value in (("billing_plan", record.billing_plan), ("support_level",
                        record.support_level), ("contract_term_length", term),
                        ("contract_start_date", record.contract_start_date)):
        if value is not None:
            values[name] = value
    if record.account_number and not assigned and company.account_number != record.account_number:
        taken = session.scalar(select(Company.id).where(
            Company.account_number == record.account_number, Company.id != company.id))
        if taken is None:
            values["account_number"] = record.account_number
    changed = _assign(company, values)
    start = values.get("contract_start_date", company.contract_start_date)
    changed |= _assign(company, {"contract_end_date": contract_end(
        start, values.get("contract_term_length", company.contract_term_length))})
    session.flush()
    return company, _outcome(created, changed), assigned


def retire_companies(session: Session, source: str, seen: set[str]) -> int:
    """Mark companies of a PSA that no longer lists them inactive (never deleted)."""
    stale = [company for company in session.scalars(select(Company).where(
        Company.psa_source == source, Company.active.is_(True)))
        if company.psa_external_id not in seen]
    for company in stale:
        company.active = False
    return len(stale)


def _companies_by_external(session: Session, source: str,
                           external_ids: Iterable[str]) -> dict[str, Company]:
    wanted = set(external_ids)
    if not wanted:
        return {}
    rows = session.scalars(select(Company).where(Company.psa_source == source,
                                                 Company.psa_external_id.in_(wanted)))
    return {str(row.psa_external_id): row for row in rows}


def apply_contact(session: Session, record: ContactRecord) -> Outcome:
    contact = session.scalar(select(Contact).where(Contact.external_source == record.source,
                                                   Contact.external_id == record.external_id))
    created = contact is None
    if contact is None:
        contact = Contact(external_source=record.source, external_id=record.external_id,
                          name=record.name)
        session.add(contact)
    changed = _assign(contact, {
        "name": record.name, "first_name": record.first_name, "last_name": record.last_name,
        "email": record.email.strip().lower() if record.email else None,
        "secondary_emails": sorted({email.strip().lower() for email in record.secondary_emails}),
        "title": record.title, "work_phone": record.work_phone,
        "mobile_phone": record.mobile_phone, "active": record.active, "vip": record.vip})
    session.flush()
    companies = _companies_by_external(session, record.source,
                                       (external for external, _ in record.companies))
    wanted = {(companies[external].id, role if role in CONTACT_ROLES else "general")
              for external, role in record.companies if external in companies}
    # Only links to this PSA's companies are the PSA's to change; links an admin made to
    # other companies stay.
    psa_company_ids = set(session.scalars(select(Company.id).where(
        Company.psa_source == record.source)))
    current = {(role.company_id, role.role): role for role in contact.roles}
    for key, role in current.items():
        if key[0] in psa_company_ids and key not in wanted:
            contact.roles.remove(role)
            changed = True
    for company_id, role_name in wanted - set(current):
        contact.roles.append(ContactRole(company_id=company_id, role=role_name))
        changed = True
    session.flush()
    return _outcome(created, changed)


def retire_contacts(session: Session, source: str, seen: set[str]) -> int:
    stale = [contact for contact in session.scalars(select(Contact).where(
        Contact.external_source == source, Contact.active.is_(True)))
        if contact.external_id not in seen]
    for contact in stale:
        contact.active = False
    return len(stale)


def apply_agent(session: Session, record: AgentRecord) -> Outcome:
    agent = session.scalar(select(PSAAgent).where(PSAAgent.source == record.source,
                                                  PSAAgent.external_id == record.external_id))
    created = agent is None
    if agent is None:
        agent = PSAAgent(source=record.source, external_id=record.external_id, name=record.name)
        session.add(agent)
    changed = _assign(agent, {"name": record.name, "email": record.email,
                              "active": record.active, "job_title": record.job_title,
                              "group_ids": sorted(set(record.group_ids))})
    session.flush()
    return _outcome(created, changed)


def retire_agents(session: Session, source: str, seen: set[str]) -> int:
    stale = [agent for agent in session.scalars(select(PSAAgent).where(
        PSAAgent.source == source, PSAAgent.active.is_(True))) if agent.external_id not in seen]
    for agent in stale:
        agent.active = False
    return len(stale)


def apply_ticket(session: Session, record: TicketRecord) -> Outcome:
    ticket = session.scalar(select(Ticket).where(Ticket.source == record.source,
                                                 Ticket.external_id == record.external_id))
    created = ticket is None
    if ticket is None:
        ticket = Ticket(source=record.source, external_id=record.external_id,
                        status=record.status, priority=record.priority)
        session.add(ticket)
    company = (company_by_external(session, record.source, record.company_external_id)
               if record.company_external_id else None)
    values: dict[str, Any] = {
        "number": record.number or record.external_id, "subject": record.subject,
        "description_html": record.description_html,
        "description_text": record.description_text, "status": record.status,
        "status_raw": record.status_raw, "priority": record.priority,
        "priority_raw": record.priority_raw, "ticket_type": record.ticket_type,
        "requester_external_id": record.requester_external_id,
        "requester_name": record.requester_name, "requester_email": record.requester_email,
        "responder_external_id": record.responder_external_id, "group_id": record.group_id,
        "created_at": record.created_at, "updated_at": record.updated_at,
        "closed_at": record.closed_at, "fr_due_by": record.fr_due_by, "due_by": record.due_by,
        "first_responded_at": record.first_responded_at,
        "agent_responded_at": record.agent_responded_at,
    }
    # A ticket whose company the PSA does not name (or Codex does not know yet) keeps the
    # company it had rather than losing it.
    if company is not None or record.company_external_id is None:
        values["company_id"] = company.id if company is not None else None
    changed = _assign(ticket, values)
    if record.time_entries is not None:
        changed |= _replace_time_entries(ticket, record)
    if record.conversations is not None:
        changed |= _replace_conversations(ticket, record)
    if changed or created:
        ticket.synced_at = utcnow()
    session.flush()
    return _outcome(created, changed)


def _replace_time_entries(ticket: Ticket, record: TicketRecord) -> bool:
    assert record.time_entries is not None
    changed = False
    current = {entry.external_id: entry for entry in ticket.time_entries}
    seen = set()
    for entry in record.time_entries:
        seen.add(entry.external_id)
        row = current.get(entry.external_id)
        if row is None:
            row = TimeEntry(external_id=entry.external_id, hours=entry.hours)
            ticket.time_entries.append(row)
            changed = True
        changed |= _assign(row, {"hours": entry.hours.quantize(Decimal("0.01")),
                                 "agent_external_id": entry.agent_external_id,
                                 "billable": entry.billable, "note": entry.note,
                                 "executed_at": entry.executed_at})
    for external_id, row in current.items():
        if external_id not in seen:
            ticket.time_entries.remove(row)
            changed = True
    # The sum of the stored (rounded) entries, so the total always matches its entries.
    total = sum((entry.hours.quantize(Decimal("0.01")) for entry in record.time_entries),
                Decimal("0"))
    changed |= _assign(ticket, {"total_hours": total.quantize(Decimal("0.01"))})
    return changed


def _replace_conversations(ticket: Ticket, record: TicketRecord) -> bool:
    assert record.conversations is not None
    changed = False
    current = {entry.external_id: entry for entry in ticket.conversations}
    seen = set()
    for entry in record.conversations:
        seen.add(entry.external_id)
        row = current.get(entry.external_id)
        if row is None:
            row = Conversation(external_id=entry.external_id)
            ticket.conversations.append(row)
            changed = True
        changed |= _assign(row, {"private": entry.private, "incoming": entry.incoming,
                                 "author": entry.author, "body_text": entry.body_text,
                                 "body_html": entry.body_html, "created_at": entry.created_at})
    for external_id, row in current.items():
        if external_id not in seen:
            ticket.conversations.remove(row)
            changed = True
    return changed


def apply_site(session: Session, record: SiteRecord) -> tuple[RMMSite, Outcome]:
    """Upsert an RMM site and link it to the company with its account number (if any)."""
    site = session.scalar(select(RMMSite).where(RMMSite.source == record.source,
                                                RMMSite.external_id == record.external_id))
    created = site is None
    if site is None:
        site = RMMSite(source=record.source, external_id=record.external_id, name=record.name)
        session.add(site)
    company_id = None
    if record.account_number:
        company_id = session.scalar(select(Company.id).where(
            Company.account_number == record.account_number.strip()))
    changed = _assign(site, {"name": record.name, "company_id": company_id})
    session.flush()
    return site, _outcome(created, changed)


def apply_device(session: Session, site: RMMSite, record: DeviceRecord,
                 billing: BillingTypeMap) -> Outcome:
    """Upsert an RMM device as an asset of the site's company (the caller checks the link)."""
    assert site.company_id is not None
    asset = session.scalar(select(Asset).where(Asset.rmm_source == record.source,
                                               Asset.rmm_device_id == record.external_id))
    created = asset is None
    billing_type, unmapped = billing.classify(record.device_category)
    if asset is None:
        asset = Asset(rmm_source=record.source, rmm_device_id=record.external_id,
                      company_id=site.company_id, hostname=record.hostname, source="rmm",
                      billing_type=billing_type)
        session.add(asset)
    values: dict[str, Any] = {
        "company_id": site.company_id, "rmm_site_id": site.id, "hostname": record.hostname,
        "device_category": record.device_category, "billing_type": billing_type,
        "billing_type_unmapped": unmapped, "operating_system": record.operating_system,
        "internal_ip": record.internal_ip, "external_ip": record.external_ip,
        "online": record.online, "last_seen": record.last_seen,
        "last_reboot": record.last_reboot, "last_audit": record.last_audit,
        "last_logged_in_user": record.last_logged_in_user, "domain": record.domain,
        "antivirus_product": record.antivirus_product, "patch_status": record.patch_status,
        "description": record.description, "portal_url": record.portal_url,
        "web_remote_url": record.web_remote_url, "backup_bytes": record.backup_bytes,
        "udfs": dict(record.udfs), "retired_at": None,
    }
    # Hardware facts an admin typed in are not wiped by an RMM that does not report them.
    for name in ("serial_number", "model", "manufacturer", "warranty_expiry"):
        value = getattr(record, name)
        if value:
            values[name] = value
    changed = _assign(asset, values)
    session.flush()
    return _outcome(created, changed)


def retire_devices(session: Session, site: RMMSite, seen: set[str]) -> int:
    """Assets of a site the RMM no longer lists: retired (kept for history), not deleted."""
    stale = [asset for asset in session.scalars(select(Asset).where(
        Asset.rmm_site_id == site.id, Asset.retired_at.is_(None)))
        if asset.rmm_device_id not in seen]
    now = utcnow()
    for asset in stale:
        asset.retired_at = now
    return len(stale)


def refresh_billing_types(session: Session, billing: BillingTypeMap) -> int:
    """Re-derive every asset's billing type after the map changed; returns rows changed."""
    changed = 0
    for asset in session.scalars(select(Asset)):
        billing_type, unmapped = billing.classify(asset.device_category)
        if _assign(asset, {"billing_type": billing_type, "billing_type_unmapped": unmapped}):
            changed += 1
    return changed


def count_rows(session: Session, model: Any) -> int:
    return session.scalar(select(func.count()).select_from(model)) or 0

