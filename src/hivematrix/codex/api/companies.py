"""`/api/companies`: list, read, create, change, archive and delete companies, and what hangs
off one company (assets, contacts, locations, tickets, children)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from apiflask import APIBlueprint
from flask import current_app, g
from sqlalchemy import Select, select
from sqlalchemy.orm import selectinload

from hivematrix.codex import access, companies, serialise
from hivematrix.codex.api import query_args, refusals
from hivematrix.codex.listing import BadQuery, Listing, boolean, integer, page
from hivematrix.codex.models import (
    COMPLIANCE_LEVELS,
    Asset,
    Company,
    Contact,
    ContactRole,
    Location,
    Ticket,
)
from hivematrix.codex.schemas import CompanyIn, CompanyPatch
from hivematrix.common.auth import permission_required, service_allowed, token_required
from hivematrix.common.db import get_session

bp = APIBlueprint("codex_companies", __name__, tag="Companies")


def _compliance(query: Select[Any], raw: str) -> Select[Any]:
    if raw not in COMPLIANCE_LEVELS:
        raise BadQuery("compliance_level", f"must be one of {', '.join(COMPLIANCE_LEVELS)}")
    return query.where(Company.compliance_level == raw)


COMPANY_LIST = Listing(
    sorts={"name": Company.name, "account_number": Company.account_number,
           "updated_at": Company.updated_at, "contract_end_date": Company.contract_end_date},
    filters={
        "active": lambda query, raw: query.where(Company.active.is_(boolean("active", raw))),
        "archived": lambda query, raw: query.where(
            Company.archived_at.isnot(None) if boolean("archived", raw)
            else Company.archived_at.is_(None)),
        "compliance_level": _compliance,
        "billing_plan": lambda query, raw: query.where(Company.billing_plan == raw),
        "parent": lambda query, raw: query.where(Company.parent.has(account_number=raw)),
    },
    search=(Company.name, Company.account_number, Company.description))


def _company(account_number: str) -> Company:
    return access.check_company(companies.get(get_session(), account_number))


@bp.get("/api/companies")
@bp.doc(summary="List companies",
        description="Filters: `q` (name, account number, description), `active`, `archived`, "
                    "`compliance_level`, `billing_plan`, `parent`; `sort` (name, "
                    "account_number, updated_at, contract_end_date; prefix - to reverse), "
                    "`limit` (≤ 500), `offset`. Client users see their own company only.")
@token_required
@service_allowed(*access.READER_SERVICES)
@refusals
def list_companies() -> Any:
    args = query_args()
    query = access.scope(select(Company).options(selectinload(Company.parent)), Company.id)
    return page(get_session(), COMPANY_LIST, query, args, serialise.company, Company.id)


@bp.get("/api/companies/<account_number>")
@bp.doc(summary="One company")
@token_required
@service_allowed(*access.READER_SERVICES)
@refusals
def get_company(account_number: str) -> Any:
    company = _company(account_number)
    data = serialise.company(company)
    data["ancestors"] = [{"account_number": parent.account_number, "name": parent.name}
                         for parent in reversed(companies.ancestors(company))]
    return data


@bp.post("/api/companies")
@bp.doc(summary="Create a company", description="Admins and technicians.")
@permission_required(*access.WRITERS)
@bp.input(CompanyIn, location="json", arg_name="data")
@refusals
def create_company(data: dict[str, Any]) -> Any:
    session = get_session()
    company = companies.create(session, data)
    session.commit()
    current_app.logger.info(f"company {company.account_number} created by "
                            f"{g.user.get('preferred_username')}")
    return serialise.company(company), 201


@bp.patch("/api/companies/<account_number>")
@bp.doc(summary="Change a company", description="Admins and technicians. Send only the "
                                                "fields to change.")
@permission_required(*access.WRITERS)
@bp.input(CompanyPatch, location="json", arg_name="data")
@refusals
def update_company(account_number: str, data: dict[str, Any]) -> Any:
    session = get_session()
    company = companies.update(session, companies.get(session, account_number), data)
    session.commit()
    return serialise.company(company)


@bp.post("/api/companies/<account_number>/archive")
@bp.doc(summary="Archive a company", description="Admins and technicians. Archived "
                                                 "companies are inactive and may be deleted.")
@permission_required(*access.WRITERS)
@refusals
def archive_company(account_number: str) -> Any:
    session = get_session()
    company = companies.get(session, account_number)
    companies.archive(company)
    session.commit()
    return serialise.company(company)


@bp.post("/api/companies/<account_number>/unarchive")
@bp.doc(summary="Bring an archived company back")
@permission_required(*access.WRITERS)
@refusals
def unarchive_company(account_number: str) -> Any:
    session = get_session()
    company = companies.get(session, account_number)
    companies.unarchive(company)
    session.commit()
    return serialise.company(company)


@bp.delete("/api/companies/<account_number>")
@bp.doc(summary="Delete a company",
        description="Admins only. A company with assets, contacts, tickets, locations or "
                    "network equipment must be archived first; child companies must be moved "
                    "first. Returns what was removed.")
@permission_required("admin")
@refusals
def delete_company(account_number: str) -> Any:
    session = get_session()
    company = companies.get(session, account_number)
    removed = companies.remove(session, company)
    session.commit()
    what = removed.describe() or "no data"
    current_app.logger.warning(f"company {account_number} deleted by "
                               f"{g.user.get('preferred_username')}: {what}")
    return {"deleted": account_number, "removed": removed.__dict__}


@bp.get("/api/companies/<account_number>/children")
@bp.doc(summary="A company's direct child companies")
@token_required
@service_allowed(*access.READER_SERVICES)
@refusals
def company_children(account_number: str) -> Any:
    company = _company(account_number)
    return [serialise.company(child) for child in sorted(company.children,
                                                         key=lambda child: child.name)]


@bp.get("/api/companies/<account_number>/locations")
@bp.doc(summary="A company's locations")
@token_required
@service_allowed(*access.READER_SERVICES)
@refusals
def company_locations(account_number: str) -> Any:
    company = _company(account_number)
    rows = get_session().scalars(select(Location).where(Location.company_id == company.id)
                                 .order_by(Location.name))
    return [serialise.location(row) for row in rows]


@bp.get("/api/companies/<account_number>/contacts")
@bp.doc(summary="A company's contacts, with their roles there")
@token_required
@service_allowed(*access.READER_SERVICES)
@refusals
def company_contacts(account_number: str) -> Any:
    company = _company(account_number)
    rows = get_session().scalars(
        select(Contact).where(Contact.roles.any(ContactRole.company_id == company.id))
        .options(selectinload(Contact.roles).selectinload(ContactRole.company))
        .order_by(Contact.name, Contact.id))
    return [serialise.contact(row, company_id=company.id) for row in rows]


@bp.get("/api/companies/<account_number>/assets")
@bp.doc(summary="A company's assets", description="`include_retired=true` adds retired ones.")
@token_required
@service_allowed(*access.READER_SERVICES)
@refusals
def company_assets(account_number: str) -> Any:
    company = _company(account_number)
    query = select(Asset).where(Asset.company_id == company.id).options(
        selectinload(Asset.company)).order_by(Asset.hostname, Asset.id)
    if not boolean("include_retired", query_args().get("include_retired", "false")):
        query = query.where(Asset.retired_at.is_(None))
    return [serialise.asset(row) for row in get_session().scalars(query)]


@bp.get("/api/companies/<account_number>/tickets")
@bp.doc(summary="A company's tickets", description="`year=YYYY` keeps tickets created that "
                                                   "year; `details=true` adds time entries "
                                                   "and conversations.")
@token_required
@service_allowed(*access.READER_SERVICES)
@refusals
def company_tickets(account_number: str) -> Any:
    company = _company(account_number)
    args = query_args()
    details = boolean("details", args.get("details", "false"))
    query = select(Ticket).where(Ticket.company_id == company.id).options(
        selectinload(Ticket.company)).order_by(Ticket.created_at.desc(), Ticket.id.desc())
    if "year" in args:
        year = integer("year", args["year"], minimum=1970, maximum=9999)
        query = query.where(Ticket.created_at >= datetime(year, 1, 1, tzinfo=UTC),
                            Ticket.created_at < datetime(year + 1, 1, 1, tzinfo=UTC))
    if details:
        query = query.options(selectinload(Ticket.time_entries),
                              selectinload(Ticket.conversations))
    return [serialise.ticket(row, details=details) for row in get_session().scalars(query)]
