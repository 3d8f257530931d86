"""One client's billing settings: the client billing override and every per-row kind (asset
and user overrides, manual assets and users, custom line items, feature overrides), each
with add, edit and delete forms. The changes go through :mod:`hivematrix.ledger.overrides`,
as the API's do; a refused form comes back with the message under its field."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import redirect, request, url_for
from werkzeug.wrappers import Response

from hivematrix.common.auth import permission_required
from hivematrix.common.db import get_session
from hivematrix.ledger import fields, overrides, plans
from hivematrix.ledger.api import refusals, today
from hivematrix.ledger.errors import LedgerError
from hivematrix.ledger.inputs import (
    LINE_ITEM_KINDS,
    RATE_NAMES,
    SUPPORT_LEVELS,
    USER_TYPES,
    CompanyData,
    InputError,
    from_codex_bulk_item,
)
from hivematrix.ledger.models import CLIENT_FIELDS
from hivematrix.ledger.pages.base import (
    MONTHS,
    READERS,
    WRITERS,
    bp,
    company_item,
    field_errors,
    render,
)
from hivematrix.ledger.pages.forms import ROW_FIELDS, client_body, row_body

#: How each override kind is titled on the page.
KIND_TITLES = {"assets": "Asset overrides", "users": "User overrides",
               "manual-assets": "Manual assets", "manual-users": "Manual users",
               "line-items": "Custom line items", "features": "Feature overrides"}
RATE_LABELS = {
    "per_user": "Per user", "per_workstation": "Per workstation", "per_server": "Per server",
    "per_vm": "Per VM", "per_switch": "Per switch", "per_firewall": "Per firewall",
    "per_printer": "Per printer", "per_hour": "Hourly ticket rate",
    "backup_base_workstation": "Backup base fee per workstation",
    "backup_base_server": "Backup base fee per server",
    "backup_included_tb": "Included TB per backed-up device",
    "backup_per_tb": "Backup overage per TB", "prepaid_hours_monthly": "Prepaid hours (monthly)",
    "prepaid_hours_yearly": "Prepaid hours (yearly)"}
KIND_LABELS = {"recurring": "Recurring monthly", "one_off": "One-off", "yearly": "Yearly"}


def _company(item: Mapping[str, Any]) -> tuple[str, CompanyData | None]:
    """The company's name, and its Codex data when Ledger can read it (for the pickers)."""
    name = str(item.get("company", {}).get("name", ""))
    try:
        return name, from_codex_bulk_item(item)
    except InputError:
        return name, None


def _back_args() -> dict[str, Any]:
    """The month the user came from, to link back to the same bill."""
    return {name: request.args[name] for name in ("year", "month")
            if request.args.get(name, "").isdigit()}


def _settings_page(account_number: str, *, status: int = 200, failed: str = "",
                   errors: dict[str, list[str]] | None = None,
                   values: Mapping[str, Any] | None = None, saved: str = "") -> Any:
    session = get_session()
    item = company_item(account_number, today().year)
    name, data = _company(item)
    rows = {kind: overrides.rows(session, spec, account_number)
            for kind, spec in overrides.KINDS.items()}
    assets = {asset.id: asset for asset in (data.assets if data else ())}
    contacts = {person.id: person for person in (data.contacts if data else ())}
    client_row = overrides.get_client(session, account_number)
    client = overrides.client_json(client_row)
    if failed == "client" and values is not None:
        client = {field: {"enabled": values.get(f"{field}_enabled") == "on",
                          "value": values.get(field, "")} for field in CLIENT_FIELDS}
    return render(
        "ledger/settings.html", status, account_number=account_number, company_name=name,
        rows=rows, assets=assets, contacts=contacts, client=client,
        has_client=client_row is not None, plan_names=sorted(
            {plan.plan_name for plan in plans.list_plans(session)}),
        failed=failed, errors=errors or {}, values=values or {}, saved=saved,
        back=_back_args(), **choices(data))


def choices(data: CompanyData | None) -> dict[str, Any]:
    """What the forms' pickers offer: the company's Codex assets and contacts, the types."""
    assets = [(asset.id, f"{asset.hostname} ({asset.billing_type or 'no type'})"
                         + (" — retired" if asset.retired else ""))
              for asset in (data.assets if data else ())]
    contacts = [(person.id, f"{person.name}" + (f" <{person.email}>" if person.email else "")
                 + ("" if person.active else " — inactive"))
                for person in (data.contacts if data else ())]
    return {"c": {
        "asset_options": assets, "contact_options": contacts,
        "asset_billing_options": [(value, value) for value in overrides.ASSET_BILLING_TYPES],
        "user_options": [(value, value) for value in USER_TYPES],
        "line_item_options": [(value, KIND_LABELS[value]) for value in LINE_ITEM_KINDS],
        "month_options": [(number, label) for number, label in enumerate(MONTHS, start=1)],
        "support_options": [(value, value) for value in SUPPORT_LEVELS]},
        "kind_titles": KIND_TITLES, "rate_names": RATE_NAMES, "rate_labels": RATE_LABELS,
        "line_item_labels": KIND_LABELS}


def _saved(account_number: str, what: str) -> Response:
    return redirect(url_for(".client_settings", account_number=account_number, saved=what,
                            **_back_args()), 303)


@bp.get("/clients/<account_number>/settings")
@permission_required(*READERS)
@refusals
def client_settings(account_number: str) -> Any:
    saved = request.args.get("saved", "")
    return _settings_page(account_number, saved=saved if saved in (
        "client", "removed", *overrides.KINDS) else "")


@bp.post("/clients/<account_number>/settings/client")
@permission_required(*WRITERS)
@refusals
def save_client(account_number: str) -> Any:
    session = get_session()
    try:
        overrides.put_client(session, account_number, client_body(request.form))
    except LedgerError as exc:
        session.rollback()
        return _settings_page(account_number, status=exc.status, failed="client",
                              errors=field_errors(exc, CLIENT_FIELDS),
                              values=request.form.to_dict())
    session.commit()
    return _saved(account_number, "client")


@bp.post("/clients/<account_number>/settings/client/delete")
@permission_required(*WRITERS)
@refusals
def delete_client(account_number: str) -> Any:
    session = get_session()
    overrides.delete_client(session, account_number)
    session.commit()
    return _saved(account_number, "removed")


def _validated(kind: str, form: Mapping[str, str]) -> dict[str, Any]:
    """The row form as a body, checked as a whole row (an edit sends every field, so a
    required one left empty is refused here, not written as nothing)."""
    body = row_body(kind, form)
    overrides.kind(kind).parse(fields.body(body), False)
    return body


@bp.post("/clients/<account_number>/settings/<kind>")
@permission_required(*WRITERS)
@refusals
def add_row(account_number: str, kind: str) -> Any:
    spec = overrides.kind(kind)
    session = get_session()
    try:
        overrides.create(session, spec, account_number, _validated(kind, request.form))
    except LedgerError as exc:
        session.rollback()
        return _settings_page(account_number, status=exc.status, failed=kind,
                              errors=field_errors(exc, tuple(ROW_FIELDS[kind])),
                              values=request.form.to_dict())
    session.commit()
    return _saved(account_number, kind)


def _row_page(account_number: str, kind: str, row: Any, *, status: int = 200,
              errors: dict[str, list[str]] | None = None,
              values: Mapping[str, Any] | None = None) -> Any:
    item = company_item(account_number, today().year)
    name, data = _company(item)
    shown = dict(values) if values is not None else {
        field: _shown(getattr(row, field)) for field in ROW_FIELDS[kind]}
    return render("ledger/settings_row.html", status, account_number=account_number,
                  company_name=name, kind=kind, row=row, values=shown, errors=errors or {},
                  assets={asset.id: asset for asset in (data.assets if data else ())},
                  contacts={person.id: person for person in (data.contacts if data else ())},
                  back=_back_args(), **choices(data))


def _shown(value: Any) -> str:
    """A column as a form field shows it (booleans as the checkbox's "on")."""
    if value is None or value is False:
        return ""
    if value is True:
        return "on"
    return str(value)


@bp.get("/clients/<account_number>/settings/<kind>/<int:row_id>")
@permission_required(*READERS)
@refusals
def edit_row(account_number: str, kind: str, row_id: int) -> Any:
    spec = overrides.kind(kind)
    return _row_page(account_number, kind,
                     overrides.get_row(get_session(), spec, account_number, row_id))


@bp.post("/clients/<account_number>/settings/<kind>/<int:row_id>")
@permission_required(*WRITERS)
@refusals
def save_row(account_number: str, kind: str, row_id: int) -> Any:
    spec = overrides.kind(kind)
    session = get_session()
    try:
        overrides.update(session, spec, account_number, row_id,
                         _validated(kind, request.form))
    except LedgerError as exc:
        session.rollback()
        if exc.status == 404:
            raise
        row = overrides.get_row(session, spec, account_number, row_id)
        return _row_page(account_number, kind, row, status=exc.status,
                         errors=field_errors(exc, tuple(ROW_FIELDS[kind])),
                         values=request.form.to_dict())
    session.commit()
    return _saved(account_number, kind)


@bp.post("/clients/<account_number>/settings/<kind>/<int:row_id>/delete")
@permission_required(*WRITERS)
@refusals
def delete_row(account_number: str, kind: str, row_id: int) -> Any:
    session = get_session()
    overrides.delete(session, overrides.kind(kind), account_number, row_id)
    session.commit()
    return _saved(account_number, kind)
