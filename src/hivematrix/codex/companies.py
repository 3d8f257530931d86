"""Company rules: account numbers, the hierarchy, archiving and deletion.

Plain Python over a session; the caller commits. Every refusal is a :class:`CompanyError`
naming the field, so views can answer with a problem document without re-checking anything.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from hivematrix.codex.models import (
    Asset,
    AssetContact,
    Company,
    ContactRole,
    Conversation,
    Location,
    NetworkDevice,
    NetworkLink,
    RMMSite,
    Ticket,
    TimeEntry,
)
from hivematrix.codex.sync.store import contract_end, normalise_term
from hivematrix.common.db import utcnow

#: Fields a staff member may set on a company (the rest are the sync's or derived).
EDITABLE = ("name", "description", "compliance_level", "billing_plan", "contract_term_length",
            "contract_start_date", "support_level", "domains", "main_phone", "address",
            "active")


class CompanyError(ValueError):
    """A change that breaks a rule; ``field`` names what to fix, ``status`` the HTTP code."""

    def __init__(self, field: str | None, message: str, status: int = 422) -> None:
        super().__init__(message)
        self.field = field
        self.status = status


class UnknownCompany(CompanyError):
    def __init__(self, account_number: str) -> None:
        super().__init__(None, f"There is no company with account number '{account_number}'.",
                         404)


def get(session: Session, account_number: str) -> Company:
    company = session.scalar(select(Company).where(Company.account_number == account_number))
    if company is None:
        raise UnknownCompany(account_number)
    return company


def ancestors(company: Company) -> list[Company]:
    """The chain of parents, nearest first (for breadcrumbs)."""
    chain: list[Company] = []
    seen = {company.id}
    parent = company.parent
    while parent is not None and parent.id not in seen:
        chain.append(parent)
        seen.add(parent.id)
        parent = parent.parent
    return chain


def set_parent(session: Session, company: Company, parent_account: str | None) -> None:
    """Move a company under another one (or to the top), refusing cycles."""
    if not parent_account:
        company.parent = None
        return
    parent = session.scalar(select(Company).where(Company.account_number == parent_account))
    if parent is None:
        raise CompanyError("parent_account_number",
                           f"There is no company with account number '{parent_account}'.")
    node: Company | None = parent
    while node is not None:
        if node.id == company.id:
            where = "this company" if parent is company else "below this company"
            raise CompanyError("parent_account_number", f"'{parent.name}' is {where}; a "
                               "company cannot be placed under itself or its own children.")
        node = node.parent
    company.parent = parent


def _apply(session: Session, company: Company, values: Mapping[str, Any]) -> None:
    for name in EDITABLE:
        if name in values:
            value = values[name]
            if name == "contract_term_length":
                value = normalise_term(value)
            if name == "domains":
                value = sorted({str(domain).strip().lower() for domain in value if domain})
            setattr(company, name, value)
    if "parent_account_number" in values:
        set_parent(session, company, values["parent_account_number"])
    company.contract_end_date = contract_end(company.contract_start_date,
                                             company.contract_term_length)


def create(session: Session, values: Mapping[str, Any]) -> Company:
    number = str(values["account_number"]).strip()
    if session.scalar(select(Company.id).where(Company.account_number == number)) is not None:
        raise CompanyError("account_number", f"Account number '{number}' is already used.", 409)
    company = Company(account_number=number, name=values["name"])
    session.add(company)
    session.flush()
    _apply(session, company, values)
    session.flush()
    return company


def update(session: Session, company: Company, values: Mapping[str, Any]) -> Company:
    if "account_number" in values and values["account_number"] != company.account_number:
        number = str(values["account_number"]).strip()
        if session.scalar(select(Company.id).where(Company.account_number == number)):
            raise CompanyError("account_number", f"Account number '{number}' is already used.",
                               409)
        company.account_number = number
    _apply(session, company, values)
    session.flush()
    return company


@dataclass(frozen=True)
class Holdings:
    """What hangs off a company: deleting it must deal with each of these."""

    children: int
    assets: int
    contacts: int
    tickets: int
    locations: int
    network_devices: int

    @property
    def empty(self) -> bool:
        return not any((self.children, self.assets, self.contacts, self.tickets,
                        self.locations, self.network_devices))

    def describe(self) -> str:
        parts = [f"{count} {name.replace('_', ' ')}" for name, count in (
            ("child companies", self.children), ("assets", self.assets),
            ("contacts", self.contacts), ("tickets", self.tickets),
            ("locations", self.locations), ("network_devices", self.network_devices)) if count]
        return ", ".join(parts)


def holdings(session: Session, company: Company) -> Holdings:
    def count(model: Any, column: Any) -> int:
        return session.scalar(select(func.count()).select_from(model).where(
            column == company.id)) or 0

    return Holdings(children=count(Company, Company.parent_id),
                    assets=count(Asset, Asset.company_id),
                    contacts=count(ContactRole, ContactRole.company_id),
                    tickets=count(Ticket, Ticket.company_id),
                    locations=count(Location, Location.company_id),
                    network_devices=count(NetworkDevice, NetworkDevice.company_id))


def archive(company: Company) -> None:
    """Archived companies are inactive, hidden by default, and may then be deleted."""
    company.archived_at = company.archived_at or utcnow()
    company.active = False


def unarchive(company: Company) -> None:
    company.archived_at = None
    company.active = True


def remove(session: Session, company: Company) -> Holdings:
    """Delete a company. One without data goes at once; one with data only once archived,
    and then its data is deleted explicitly (the counts are returned for the audit log).
    Child companies are never deleted with it: they must be moved first."""
    held = holdings(session, company)
    if held.children:
        raise CompanyError(None, f"'{company.name}' has {held.children} child companies; "
                                 "move them first.", 409)
    if not held.empty and company.archived_at is None:
        raise CompanyError(None, f"'{company.name}' still has {held.describe()}; archive it "
                                 "first, then delete it to remove them too.", 409)
    asset_ids = select(Asset.id).where(Asset.company_id == company.id)
    ticket_ids = select(Ticket.id).where(Ticket.company_id == company.id)
    device_ids = select(NetworkDevice.id).where(NetworkDevice.company_id == company.id)
    session.execute(delete(AssetContact).where(AssetContact.asset_id.in_(asset_ids)))
    session.execute(delete(Asset).where(Asset.company_id == company.id))
    session.execute(delete(TimeEntry).where(TimeEntry.ticket_id.in_(ticket_ids)))
    session.execute(delete(Conversation).where(Conversation.ticket_id.in_(ticket_ids)))
    session.execute(delete(Ticket).where(Ticket.company_id == company.id))
    session.execute(delete(NetworkLink).where(NetworkLink.from_device_id.in_(device_ids)
                                              | NetworkLink.to_device_id.in_(device_ids)))
    session.execute(delete(NetworkDevice).where(NetworkDevice.company_id == company.id))
    session.execute(delete(Location).where(Location.company_id == company.id))
    session.execute(delete(ContactRole).where(ContactRole.company_id == company.id))
    session.execute(sa.update(RMMSite).where(RMMSite.company_id == company.id)
                    .values(company_id=None))
    session.delete(company)
    session.flush()
    return held
