"""Contact rules: who owns which field, roles at companies, and when deleting is allowed.

A contact synced from a PSA belongs to the PSA: the next sync rewrites every field Codex
stores about it and its roles at that PSA's companies, so Codex refuses to change those
(an edit here would silently come undone) and says where to make the change instead. Manual
contacts are Codex's own and fully editable.

Deletion, the safe rule: a manual contact that nothing refers to is deleted. One that is an
asset's user or the requester of a ticket is deactivated instead (history keeps its name),
unless an admin asks for ``force``; then its asset links are removed explicitly and counted
(tickets keep the requester's name and address as text). A PSA contact is never deleted
here: remove or deactivate it in the PSA and the next sync follows.

Plain Python over a session; the caller commits.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, func, or_, select
from sqlalchemy.orm import Session

from hivematrix.codex.companies import CompanyError
from hivematrix.codex.models import AssetContact, Company, Contact, ContactRole, Ticket

#: Every field a PSA sync writes on a contact.
SYNCED_FIELDS = ("name", "first_name", "last_name", "email", "secondary_emails", "title",
                 "work_phone", "mobile_phone", "active", "vip")
EDITABLE = SYNCED_FIELDS


class ContactError(CompanyError):
    """A refusal about a contact (same shape as the company rules' refusals)."""


def get(session: Session, contact_id: int) -> Contact:
    contact = session.get(Contact, contact_id)
    if contact is None:
        raise ContactError(None, f"There is no contact {contact_id}.", 404)
    return contact


def normalise_email(value: str | None) -> str | None:
    text = (value or "").strip().lower()
    return text or None


def _check_email(session: Session, email: str | None, contact: Contact | None) -> None:
    """Two manual contacts with one address is almost always a typo or a duplicate."""
    if email is None:
        return
    query = select(Contact.id).where(Contact.email == email, Contact.external_source.is_(None))
    if contact is not None and contact.id is not None:
        query = query.where(Contact.id != contact.id)
    other = session.scalar(query.limit(1))
    if other is not None:
        raise ContactError("email", f"{email} is already the address of contact {other}.", 409)


def _apply(session: Session, contact: Contact, values: Mapping[str, Any]) -> None:
    for name in EDITABLE:
        if name not in values:
            continue
        value = values[name]
        if name == "email":
            value = normalise_email(value)
            _check_email(session, value, contact)
        elif name == "secondary_emails":
            value = sorted({email for email in (normalise_email(item) for item in value)
                            if email})
        elif isinstance(value, str):
            value = value.strip()
        setattr(contact, name, value)
    if not contact.name:
        contact.name = " ".join(part for part in (contact.first_name, contact.last_name)
                                if part)
    if not contact.name:
        raise ContactError("name", "Give a name (or a first and last name).")


def create(session: Session, values: Mapping[str, Any]) -> Contact:
    contact = Contact(name="", secondary_emails=[])
    _apply(session, contact, values)
    session.add(contact)
    session.flush()
    if "roles" in values:
        set_roles(session, contact, values["roles"])
    return contact


def update(session: Session, contact: Contact, values: Mapping[str, Any]) -> Contact:
    if contact.external_source:
        for name in SYNCED_FIELDS:
            if name in values:
                raise ContactError(name, f"This contact comes from {contact.external_source}, "
                                         f"which owns its {name.replace('_', ' ')}; change it "
                                         "there and the next sync brings it here.")
    _apply(session, contact, values)
    session.flush()
    return contact


def set_roles(session: Session, contact: Contact,
              wanted: Iterable[Mapping[str, str]]) -> Contact:
    """Replace the contact's roles with ``wanted`` ({account_number, role} items)."""
    entries = list(wanted)
    numbers = {str(entry["account_number"]) for entry in entries}
    found = {company.account_number: company for company in session.scalars(
        select(Company).where(Company.account_number.in_(numbers)))} if numbers else {}
    target: dict[tuple[int, str], Company] = {}
    for index, entry in enumerate(entries):
        company = found.get(str(entry["account_number"]))
        if company is None:
            raise ContactError(f"roles.{index}.account_number", "There is no company with "
                               f"account number '{entry['account_number']}'.")
        target[(company.id, entry["role"])] = company
    current = {(role.company_id, role.role): role for role in contact.roles}
    source = contact.external_source
    if source:
        # Roles at this PSA's companies are rewritten by every sync: they must stay as they are.
        def psa_owned(keys: Iterable[tuple[int, str]], companies: Mapping[int, Company]
                      ) -> set[tuple[int, str]]:
            return {key for key in keys if companies[key[0]].psa_source == source}

        known = {role.company_id: role.company for role in contact.roles}
        known.update({company.id: company for company in target.values()})
        if psa_owned(current, known) != psa_owned(target, known):
            raise ContactError("roles", f"This contact's roles at companies synced from "
                                        f"{source} belong to {source}; change them there. "
                                        "Roles at other companies may be changed here.")
    for key, role in current.items():
        if key not in target:
            contact.roles.remove(role)
    for company_id, role_name in target.keys() - current.keys():
        contact.roles.append(ContactRole(company_id=company_id, role=role_name))
    session.flush()
    session.refresh(contact, ["roles"])
    return contact


@dataclass(frozen=True)
class References:
    assets: int
    tickets: int

    @property
    def any(self) -> bool:
        return bool(self.assets or self.tickets)


def references(session: Session, contact: Contact) -> References:
    assets = session.scalar(select(func.count()).select_from(AssetContact).where(
        AssetContact.contact_id == contact.id)) or 0
    asked = []
    if contact.email:
        asked.append(func.lower(Ticket.requester_email) == contact.email)
    if contact.external_source and contact.external_id:
        asked.append((Ticket.source == contact.external_source)
                     & (Ticket.requester_external_id == contact.external_id))
    tickets = 0
    if asked:
        tickets = session.scalar(select(func.count()).select_from(Ticket).where(
            or_(*asked))) or 0
    return References(assets=assets, tickets=tickets)


@dataclass(frozen=True)
class Removal:
    deleted: bool
    references: References
    reason: str = ""


def remove(session: Session, contact: Contact, *, force: bool) -> Removal:
    """Delete or deactivate a contact by the rule in this module's docstring."""
    if contact.external_source:
        raise ContactError(None, f"This contact comes from {contact.external_source}; remove "
                                 "or deactivate it there and the next sync follows.", 409)
    refs = references(session, contact)
    if refs.any and not force:
        contact.active = False
        session.flush()
        parts = [f"{count} {what}" for what, count in (("assets", refs.assets),
                                                        ("tickets", refs.tickets)) if count]
        return Removal(deleted=False, references=refs,
                       reason=f"Deactivated, not deleted: it is named by {', '.join(parts)}.")
    session.execute(delete(AssetContact).where(AssetContact.contact_id == contact.id))
    session.delete(contact)
    session.flush()
    return Removal(deleted=True, references=refs)
