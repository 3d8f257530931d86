"""The assets list and one asset's page, with the form for what the RMM does not know
(billing type override, serial, model, purchase and warranty dates)."""

from __future__ import annotations

from typing import Any

from flask import current_app, g, redirect, request, url_for
from marshmallow import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import selectinload
from werkzeug.wrappers import Response

from hivematrix.codex import access, assets
from hivematrix.codex.api import refusals
from hivematrix.codex.api.assets import ASSET_LIST
from hivematrix.codex.api.visibility import own_company_only
from hivematrix.codex.billing_types import BILLING_TYPES, effective
from hivematrix.codex.listing import BadQuery, boolean, page
from hivematrix.codex.models import ASSET_SOURCES, Asset, RMMSite
from hivematrix.codex.pages.base import ListPage, billing_map, bp, form_errors, render, wants
from hivematrix.codex.schemas import AssetPatch
from hivematrix.common.auth import permission_required, token_required
from hivematrix.common.db import get_session, utcnow

#: Link schemes an RMM-supplied URL may have to be shown as a link (never ``javascript:``).
SAFE_SCHEMES = ("https://", "http://")


def _one_of(parameter: str, raw: str, allowed: tuple[str, ...]) -> str:
    if raw not in allowed:
        raise BadQuery(parameter, f"must be one of {', '.join(allowed)}")
    return raw


@bp.get("/assets")
@token_required
@refusals
def asset_list() -> Any:
    listed = ListPage(ASSET_LIST, request.args,
                      ("account_number", "billing_type", "device_category", "online", "source",
                       "retired", "warranty"), defaults={"retired": "false"})
    query = access.scope(select(Asset).options(selectinload(Asset.company)), Asset.company_id)
    retired = listed.values["retired"]
    if retired != "any":
        query = query.where(Asset.retired_at.isnot(None) if boolean("retired", retired)
                            else Asset.retired_at.is_(None))
    if "warranty" in listed.values:
        state = _one_of("warranty", listed.values["warranty"], assets.WARRANTY_STATES)
        query = query.where(assets.warranty_condition(state, utcnow().date()))
    found = page(get_session(), ASSET_LIST, query,
                 listed.listing_args(drop=("retired", "warranty")), lambda row: row, Asset.id)
    today = utcnow().date()
    rows = [{"row": row, "billing_type": effective(row.billing_type, row.billing_type_override),
             "warranty": assets.warranty_status(row.warranty_expiry, today)}
            for row in found["items"]]
    return render("codex/assets.html", assets=rows, listed=listed,
                  pager=listed.pager(found["total"]), billing_types=BILLING_TYPES,
                  sources=ASSET_SOURCES, warranty_states=assets.WARRANTY_STATES)


def _visible(asset_id: int) -> Asset:
    found = assets.get(get_session(), asset_id)
    own_company_only(found.company, f"There is no asset {asset_id}.")
    return found


def _form_values(asset: Asset) -> dict[str, str]:
    return {"billing_type_override": asset.billing_type_override or "",
            "serial_number": asset.serial_number, "model": asset.model,
            "manufacturer": asset.manufacturer,
            "purchase_date": asset.purchase_date.isoformat() if asset.purchase_date else "",
            "warranty_expiry": (asset.warranty_expiry.isoformat() if asset.warranty_expiry
                                else "")}


def _asset_page(asset: Asset, values: dict[str, str] | None = None,
                errors: dict[str, list[str]] | None = None, status: int = 200) -> Any:
    site = get_session().get(RMMSite, asset.rmm_site_id) if asset.rmm_site_id else None
    links = {name: url for name, url in (("Portal", asset.portal_url),
                                         ("Web remote", asset.web_remote_url))
             if url and url.lower().startswith(SAFE_SCHEMES)}
    return render("codex/asset.html", status, asset=asset, site=site, links=links,
                  billing_type=effective(asset.billing_type, asset.billing_type_override),
                  warranty=assets.warranty_status(asset.warranty_expiry, utcnow().date()),
                  contacts=sorted(asset.contacts, key=lambda person: person.name.lower()),
                  billing_types=BILLING_TYPES, values=values or _form_values(asset),
                  errors=errors or {}, saved=wants("saved"))


@bp.get("/assets/<int:asset_id>")
@token_required
@refusals
def asset(asset_id: int) -> Any:
    return _asset_page(_visible(asset_id))


@bp.post("/assets/<int:asset_id>")
@permission_required(*access.WRITERS)
@refusals
def save_asset(asset_id: int) -> Response | Any:
    """The staff's fields; an empty override means "use the derived billing type"."""
    session = get_session()
    found = assets.get(session, asset_id)
    shown = {name: str(request.form.get(name, "")).strip() for name in assets.STAFF_FIELDS}
    data: dict[str, Any] = {
        name: (value or None) if name in ("billing_type_override", "purchase_date",
                                          "warranty_expiry") else value
        for name, value in shown.items()}
    try:
        loaded = AssetPatch().load(data)
        changed = assets.update(session, found, loaded, billing_map())
    except ValidationError as exc:
        return _asset_page(found, shown, form_errors(exc), 400)
    except assets.AssetError as exc:
        session.rollback()
        return _asset_page(assets.get(session, asset_id), shown,
                           {exc.field or "form": [str(exc)]}, exc.status)
    session.commit()
    current_app.logger.info(f"asset {changed.id} ({changed.hostname}) changed by "
                            f"{g.user.get('preferred_username')} (web form)")
    return redirect(url_for(".asset", asset_id=asset_id, saved="1"), 303)
