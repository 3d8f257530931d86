"""The companies list (the home page), one company's page, and its edit, archive and delete
forms. Reads mirror ``/api/companies``; changes go through :mod:`hivematrix.codex.companies`."""

from __future__ import annotations

import re
from typing import Any

from flask import current_app, g, redirect, request, url_for
from marshmallow import ValidationError
from sqlalchemy import func, select
from sqlalchemy.orm import selectinload
from werkzeug.wrappers import Response

from hivematrix.codex import access, companies, display, network
from hivematrix.codex.api import refusals
from hivematrix.codex.api.companies import COMPANY_LIST
from hivematrix.codex.assets import warranty_status
from hivematrix.codex.billing_types import effective
from hivematrix.codex.listing import boolean, page
from hivematrix.codex.models import (
    COMPLIANCE_LEVELS,
    CONTRACT_TERMS,
    Asset,
    Company,
    Contact,
    ContactRole,
    NetworkDevice,
    Ticket,
)
from hivematrix.codex.pages.base import ListPage, bp, form_errors, render, wants
from hivematrix.codex.schemas import CompanyPatch
from hivematrix.common.auth import permission_required, token_required
from hivematrix.common.db import get_session, utcnow

#: Tickets shown on a company's page (the newest).
RECENT_TICKETS = 25
#: What the form's fields are called in the schema, in the order the form shows them.
FORM_FIELDS = ("name", "account_number", "parent_account_number", "description",
               "compliance_level", "billing_plan", "contract_term_length",
               "contract_start_date", "support_level", "domains", "main_phone", "address",
               "active")
#: Fields whose empty input means "none" rather than an empty text.
NULLABLE = ("parent_account_number", "billing_plan", "contract_term_length",
            "contract_start_date", "support_level")


@bp.get("/")
@token_required
@refusals
def company_list() -> Any:
    """Companies: search, filters (archived ones hidden unless asked for), sort, pages."""
    listed = ListPage(COMPANY_LIST, request.args, ("active", "archived", "compliance_level"),
                      defaults={"archived": "false"})
    archived = listed.values["archived"]
    if archived != "any":
        boolean("archived", archived)  # anything but true, false or any is refused here
    query = access.scope(select(Company).options(selectinload(Company.parent)), Company.id)
    found = page(get_session(), COMPANY_LIST, query,
                 listed.listing_args(drop=("archived",) if archived == "any" else ()),
                 lambda row: row, Company.id)
    return render("codex/companies.html", companies=found["items"], listed=listed,
                  pager=listed.pager(found["total"]), compliance_levels=COMPLIANCE_LEVELS,
                  deleted=request.args.get("deleted", ""))


def _visible(account_number: str) -> Company:
    return access.check_company(companies.get(get_session(), account_number))


def _company_page(company: Company, *, status: int = 200, error: str | None = None) -> Any:
    session = get_session()
    today = utcnow().date()
    contacts = session.scalars(
        select(Contact).where(Contact.roles.any(ContactRole.company_id == company.id))
        .options(selectinload(Contact.roles)).order_by(Contact.name, Contact.id))
    assets = [{"row": row, "billing_type": effective(row.billing_type, row.billing_type_override),
               "warranty": warranty_status(row.warranty_expiry, today)}
              for row in session.scalars(select(Asset).where(
                  Asset.company_id == company.id, Asset.retired_at.is_(None))
                  .order_by(Asset.hostname, Asset.id))]
    devices = list(session.scalars(select(NetworkDevice).where(
        NetworkDevice.company_id == company.id).options(selectinload(NetworkDevice.location))
        .order_by(NetworkDevice.name, NetworkDevice.id)))
    tickets = list(session.scalars(select(Ticket).where(Ticket.company_id == company.id)
                                   .order_by(Ticket.created_at.desc(), Ticket.id.desc())
                                   .limit(RECENT_TICKETS)))
    ticket_total = session.scalar(select(func.count()).select_from(Ticket).where(
        Ticket.company_id == company.id)) or 0
    return render(
        "codex/company.html", status, company=company,
        ancestors=list(reversed(companies.ancestors(company))),
        children=sorted(company.children, key=lambda child: child.name.lower()),
        contacts=[(person, sorted(role.role for role in person.roles
                                  if role.company_id == company.id)) for person in contacts],
        assets=assets, devices=devices,
        topology=display.uplink_tree(network.topology(session, company)),
        tickets=tickets, ticket_total=ticket_total, locations=company.locations,
        holdings=companies.holdings(session, company), error=error,
        saved=wants("saved"), archived_now=wants("archived"),
        unarchived_now=wants("unarchived"))


@bp.get("/companies/<account_number>")
@token_required
@refusals
def company(account_number: str) -> Any:
    return _company_page(_visible(account_number))


def _form_values(company: Company) -> dict[str, Any]:
    return {"name": company.name, "account_number": company.account_number,
            "parent_account_number": company.parent.account_number if company.parent else "",
            "description": company.description, "compliance_level": company.compliance_level,
            "billing_plan": company.billing_plan or "",
            "contract_term_length": company.contract_term_length or "",
            "contract_start_date": (company.contract_start_date.isoformat()
                                    if company.contract_start_date else ""),
            "support_level": company.support_level or "",
            "domains": "\n".join(company.domains or []), "main_phone": company.main_phone,
            "address": company.address, "active": company.active}


def _edit_page(company: Company, values: dict[str, Any], errors: dict[str, list[str]],
               status: int = 200) -> Any:
    return render("codex/company_edit.html", status, company=company, values=values,
                  errors=errors, compliance_levels=COMPLIANCE_LEVELS,
                  contract_terms=CONTRACT_TERMS)


@bp.get("/companies/<account_number>/edit")
@permission_required(*access.WRITERS)
@refusals
def edit_company(account_number: str) -> Any:
    found = companies.get(get_session(), account_number)
    return _edit_page(found, _form_values(found), {})


def parse_company_form(form: Any) -> dict[str, Any]:
    """The form's text as the API's JSON would carry it (empty → none, domains → a list)."""
    data: dict[str, Any] = {}
    for name in FORM_FIELDS:
        if name == "active":
            data["active"] = form.get("active") == "on"
            continue
        raw = str(form.get(name, "")).strip()
        if name == "domains":
            data["domains"] = [part for part in re.split(r"[\s,;]+", raw) if part]
        elif name in NULLABLE and not raw:
            data[name] = None
        else:
            data[name] = raw
    return data


@bp.post("/companies/<account_number>/edit")
@permission_required(*access.WRITERS)
@refusals
def save_company(account_number: str) -> Any:
    session = get_session()
    found = companies.get(session, account_number)
    shown: dict[str, Any] = {name: request.form.get(name, "") for name in FORM_FIELDS}
    shown["active"] = request.form.get("active") == "on"
    try:
        data = CompanyPatch().load(parse_company_form(request.form))
    except ValidationError as exc:
        return _edit_page(found, shown, form_errors(exc), 400)
    try:
        companies.update(session, found, data)
    except companies.CompanyError as exc:
        session.rollback()
        found = companies.get(session, account_number)
        return _edit_page(found, shown, {exc.field or "form": [str(exc)]}, exc.status)
    session.commit()
    current_app.logger.info(f"company {found.account_number} changed by "
                            f"{g.user.get('preferred_username')} (web form)")
    return redirect(url_for(".company", account_number=found.account_number, saved="1"), 303)


@bp.post("/companies/<account_number>/archive")
@permission_required(*access.WRITERS)
@refusals
def archive_company(account_number: str) -> Response:
    session = get_session()
    companies.archive(companies.get(session, account_number))
    session.commit()
    return redirect(url_for(".company", account_number=account_number, archived="1"), 303)


@bp.post("/companies/<account_number>/unarchive")
@permission_required(*access.WRITERS)
@refusals
def unarchive_company(account_number: str) -> Response:
    session = get_session()
    companies.unarchive(companies.get(session, account_number))
    session.commit()
    return redirect(url_for(".company", account_number=account_number, unarchived="1"), 303)


@bp.post("/companies/<account_number>/delete")
@permission_required("admin")
@refusals
def delete_company(account_number: str) -> Any:
    session = get_session()
    found = companies.get(session, account_number)
    try:
        removed = companies.remove(session, found)
    except companies.CompanyError as exc:
        session.rollback()
        return _company_page(companies.get(session, account_number), status=exc.status,
                             error=str(exc))
    session.commit()
    current_app.logger.warning(f"company {account_number} deleted by "
                               f"{g.user.get('preferred_username')} (web form): "
                               f"{removed.describe() or 'no data'}")
    return redirect(url_for(".company_list", deleted=account_number), 303)
