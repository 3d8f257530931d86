"""The contacts list and one contact's page (read-only: contacts come from the PSA or the
import; the API changes them). A client sees only people with a role at their company, and
only that role."""

from __future__ import annotations

from typing import Any

from flask import request
from sqlalchemy import Select, false, func, or_, select
from sqlalchemy.orm import selectinload
from werkzeug.exceptions import NotFound

from hivematrix.codex import access, contacts
from hivematrix.codex.api import refusals
from hivematrix.codex.api.contacts import CONTACT_LIST
from hivematrix.codex.listing import page
from hivematrix.codex.models import Asset, AssetContact, Company, Contact, ContactRole, Ticket
from hivematrix.codex.pages.base import ListPage, bp, render
from hivematrix.common.auth import token_required
from hivematrix.common.db import get_session

RECENT_TICKETS = 10


def _client_company() -> Company | None:
    account = access.client_account()
    if account is None:
        return None
    return get_session().scalar(select(Company).where(Company.account_number == account))


def _scoped(query: Select[Any], values: dict[str, str]) -> Select[Any]:
    account = access.client_account()
    if account is None:
        return query
    if values.get("account_number", account) != account:
        return query.where(false())  # where a client's people also work is not theirs to see
    return query.where(Contact.roles.any(ContactRole.company.has(
        Company.account_number == account)))


@bp.get("/contacts")
@token_required
@refusals
def contact_list() -> Any:
    listed = ListPage(CONTACT_LIST, request.args, ("active", "vip", "account_number"))
    query = _scoped(select(Contact).options(
        selectinload(Contact.roles).selectinload(ContactRole.company)), listed.values)
    found = page(get_session(), CONTACT_LIST, query, listed.listing_args(), lambda row: row,
                 Contact.id)
    own = _client_company()
    rows = [(person, [role for role in person.roles if own is None or role.company_id == own.id])
            for person in found["items"]]
    return render("codex/contacts.html", contacts=rows, listed=listed,
                  pager=listed.pager(found["total"]))


@bp.get("/contacts/<int:contact_id>")
@token_required
@refusals
def contact(contact_id: int) -> Any:
    session = get_session()
    person = contacts.get(session, contact_id)
    own = _client_company()
    if access.client_account() is not None and (
            own is None or all(role.company_id != own.id for role in person.roles)):
        raise NotFound(f"There is no contact {contact_id}.")
    roles = sorted((role for role in person.roles if own is None or role.company_id == own.id),
                   key=lambda role: (role.company.name.lower(), role.role))
    used = select(Asset).join(AssetContact, AssetContact.asset_id == Asset.id).where(
        AssetContact.contact_id == person.id).options(selectinload(Asset.company)).order_by(
        Asset.hostname)
    if own is not None:
        used = used.where(Asset.company_id == own.id)
    asked = []
    if person.email:
        asked.append(func.lower(Ticket.requester_email) == person.email)
    if person.external_source and person.external_id:
        asked.append((Ticket.source == person.external_source)
                     & (Ticket.requester_external_id == person.external_id))
    tickets: list[Ticket] = []
    if asked:
        query = select(Ticket).where(or_(*asked)).options(selectinload(Ticket.company))
        if own is not None:
            query = query.where(Ticket.company_id == own.id)
        tickets = list(session.scalars(query.order_by(Ticket.created_at.desc(), Ticket.id.desc())
                                       .limit(RECENT_TICKETS)))
    return render("codex/contact.html", person=person, roles=roles,
                  assets=list(session.scalars(used)), tickets=tickets)
