"""`/api/contacts`: list, read, create, change and delete contacts, and set their roles."""

from __future__ import annotations

from typing import Any

from apiflask import APIBlueprint
from flask import current_app, g
from sqlalchemy import Select, false, select
from sqlalchemy.orm import selectinload
from werkzeug.exceptions import Forbidden, NotFound

from hivematrix.codex import access, contacts, serialise
from hivematrix.codex.api import query_args, refusals
from hivematrix.codex.listing import Listing, boolean, page
from hivematrix.codex.models import Company, Contact, ContactRole
from hivematrix.codex.schemas import ContactFields, ContactIn, ContactRolesIn
from hivematrix.common.auth import permission_required, service_allowed, token_required
from hivematrix.common.db import get_session

bp = APIBlueprint("codex_contacts", __name__, tag="Contacts")

#: Ledger counts billable users, the assistant and the knowledge base look people up.
READERS = ("ledger", "brainhair", "knowledgetree")


def _at_company(account_number: str) -> Any:
    return Contact.roles.any(ContactRole.company.has(Company.account_number == account_number))


CONTACT_LIST = Listing(
    sorts={"name": Contact.name, "email": Contact.email, "updated_at": Contact.updated_at},
    filters={
        "active": lambda query, raw: query.where(Contact.active.is_(boolean("active", raw))),
        "vip": lambda query, raw: query.where(Contact.vip.is_(boolean("vip", raw))),
        "account_number": lambda query, raw: query.where(_at_company(raw)),
    },
    search=(Contact.name, Contact.email, Contact.title))


def _client_company_id() -> int | None:
    """The client's company id (-1 when it does not exist); None for staff and services."""
    account = access.client_account()
    if account is None:
        return None
    found = get_session().scalar(select(Company.id).where(Company.account_number == account))
    return found if found is not None else -1


def _scoped(query: Select[Any], args: dict[str, str]) -> Select[Any]:
    account = access.client_account()
    if account is None:
        return query
    if args.get("account_number", account) != account:
        # Asking who else works at another company would reveal where the client's own
        # contacts also work.
        return query.where(false())
    return query.where(_at_company(account))


def _show(row: Contact) -> dict[str, Any]:
    # A client sees a contact's role at their own company, never where else they work.
    return serialise.contact(row, company_id=_client_company_id())


def _visible(contact_id: int) -> Contact:
    contact = contacts.get(get_session(), contact_id)
    company_id = _client_company_id()
    if company_id is not None and all(role.company_id != company_id for role in contact.roles):
        raise NotFound(f"There is no contact {contact_id}.")
    return contact


@bp.get("/api/contacts")
@bp.doc(summary="List contacts",
        description="Filters: `q` (name, email, title), `active`, `vip`, `account_number` "
                    "(contacts with a role there); `sort` (name, email, updated_at; prefix - "
                    "to reverse), `limit` (≤ 500), `offset`. Client users see their own "
                    "company's contacts only. Staff and the Ledger, Brainhair and "
                    "KnowledgeTree services.")
@token_required
@service_allowed(*READERS)
@refusals
def list_contacts() -> Any:
    args = query_args()
    query = _scoped(select(Contact).options(
        selectinload(Contact.roles).selectinload(ContactRole.company)), args)
    company_id = _client_company_id()
    return page(get_session(), CONTACT_LIST, query, args,
                lambda row: serialise.contact(row, company_id=company_id), Contact.id)


@bp.get("/api/contacts/<int:contact_id>")
@bp.doc(summary="One contact, with their roles",
        description="Client users see contacts of their own company, and only their role "
                    "there. Staff and the Ledger, Brainhair and KnowledgeTree services.")
@token_required
@service_allowed(*READERS)
@refusals
def get_contact(contact_id: int) -> Any:
    return _show(_visible(contact_id))


@bp.post("/api/contacts")
@bp.doc(summary="Create a contact",
        description="Admins and technicians. A contact made here is Codex's own (not a "
                    "PSA's). `email` is stored lower-case and must not belong to another "
                    "manual contact; `roles` is a list of {account_number, role}.")
@permission_required(*access.WRITERS)
@bp.input(ContactIn, location="json", arg_name="data")
@refusals
def create_contact(data: dict[str, Any]) -> Any:
    session = get_session()
    contact = contacts.create(session, data)
    session.commit()
    current_app.logger.info(f"contact {contact.id} created by "
                            f"{g.user.get('preferred_username')}")
    return serialise.contact(contact), 201


@bp.patch("/api/contacts/<int:contact_id>")
@bp.doc(summary="Change a contact",
        description="Admins and technicians; send only the fields to change. A contact "
                    "synced from a PSA is the PSA's: its fields are changed there (422 names "
                    "the field).")
@permission_required(*access.WRITERS)
@bp.input(ContactFields, location="json", arg_name="data")
@refusals
def update_contact(contact_id: int, data: dict[str, Any]) -> Any:
    session = get_session()
    contact = contacts.update(session, contacts.get(session, contact_id), data)
    session.commit()
    return serialise.contact(contact)


@bp.put("/api/contacts/<int:contact_id>/roles")
@bp.doc(summary="Set a contact's roles at companies",
        description="Admins and technicians. `roles` replaces every role: a list of "
                    "{account_number, role} with role one of primary, billing, technical, "
                    "general. For a PSA contact, roles at that PSA's companies are the PSA's "
                    "and must stay as they are.")
@permission_required(*access.WRITERS)
@bp.input(ContactRolesIn, location="json", arg_name="data")
@refusals
def set_contact_roles(contact_id: int, data: dict[str, Any]) -> Any:
    session = get_session()
    contact = contacts.set_roles(session, contacts.get(session, contact_id), data["roles"])
    session.commit()
    return serialise.contact(contact)


@bp.delete("/api/contacts/<int:contact_id>")
@bp.doc(summary="Delete (or deactivate) a contact",
        description="Admins and technicians. A manual contact nothing refers to is deleted. "
                    "One that is an asset's user or a ticket's requester is deactivated "
                    "instead (`deleted: false`), unless an admin sends `force=true`: then "
                    "its asset links are removed and counted. PSA contacts are removed in "
                    "the PSA (409).")
@permission_required(*access.WRITERS)
@refusals
def delete_contact(contact_id: int) -> Any:
    force = boolean("force", query_args().get("force", "false"))
    if force and g.user.get("permission_level") != "admin":
        raise Forbidden("Only admins may force the deletion of a contact in use.")
    session = get_session()
    contact = contacts.get(session, contact_id)
    removal = contacts.remove(session, contact, force=force)
    body: dict[str, Any] = {"id": contact_id, "deleted": removal.deleted,
                            "references": removal.references.__dict__}
    if removal.deleted:
        current_app.logger.warning(f"contact {contact_id} deleted by "
                                   f"{g.user.get('preferred_username')}"
                                   f"{' (forced)' if force else ''}")
    else:
        body["detail"] = removal.reason
        body["contact"] = serialise.contact(contact)
    session.commit()
    return body
