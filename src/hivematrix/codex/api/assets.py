"""`/api/assets`: list, read, create (manual assets), change and delete assets, and set
their users."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from apiflask import APIBlueprint
from flask import current_app, g
from sqlalchemy import Select, func, select
from sqlalchemy.orm import selectinload

from hivematrix.codex import access, assets, serialise
from hivematrix.codex.api import query_args, refusals
from hivematrix.codex.api.visibility import own_company_only
from hivematrix.codex.billing_types import BILLING_TYPES, BadBillingMap, BillingTypeMap
from hivematrix.codex.listing import BadQuery, Listing, boolean, integer, page
from hivematrix.codex.models import ASSET_SOURCES, Asset
from hivematrix.codex.schemas import AssetContactsIn, AssetIn, AssetPatch
from hivematrix.codex.settings import BadSetting, json_mapping
from hivematrix.common.auth import permission_required, service_allowed, token_required
from hivematrix.common.db import get_session, utcnow

bp = APIBlueprint("codex_assets", __name__, tag="Assets")

#: Ledger bills assets, the assistant and the knowledge base look machines up.
READERS = ("ledger", "brainhair", "knowledgetree")


def _one_of(parameter: str, raw: str, allowed: tuple[str, ...]) -> str:
    if raw not in allowed:
        raise BadQuery(parameter, f"must be one of {', '.join(allowed)}")
    return raw


ASSET_LIST = Listing(
    sorts={"hostname": Asset.hostname, "last_seen": Asset.last_seen,
           "warranty_expiry": Asset.warranty_expiry, "updated_at": Asset.updated_at,
           "device_category": Asset.device_category},
    filters={
        "account_number": lambda query, raw: query.where(Asset.company.has(account_number=raw)),
        # The billing type Ledger uses: the override when set, else the derived one.
        "billing_type": lambda query, raw: query.where(
            func.coalesce(Asset.billing_type_override, Asset.billing_type)
            == _one_of("billing_type", raw, BILLING_TYPES)),
        "device_category": lambda query, raw: query.where(
            func.lower(Asset.device_category) == raw.strip().lower()),
        "online": lambda query, raw: query.where(Asset.online.is_(boolean("online", raw))),
        "source": lambda query, raw: query.where(
            Asset.source == _one_of("source", raw, ASSET_SOURCES)),
    },
    search=(Asset.hostname, Asset.serial_number, Asset.last_logged_in_user))


def _lifecycle(query: Select[Any], args: Mapping[str, str]) -> Select[Any]:
    """Retired and warranty filters, which have defaults or a second parameter."""
    retired = args.get("retired", "false").strip().lower()
    if retired != "any":
        query = query.where(Asset.retired_at.isnot(None) if boolean("retired", retired)
                            else Asset.retired_at.is_(None))
    if "warranty" in args:
        state = _one_of("warranty", args["warranty"], assets.WARRANTY_STATES)
        days = integer("warranty_days", args.get("warranty_days",
                                                 str(assets.WARRANTY_WARNING_DAYS)),
                       minimum=0, maximum=3650)
        query = query.where(assets.warranty_condition(state, utcnow().date(), days))
    return query


def _billing_map() -> BillingTypeMap:
    try:
        return BillingTypeMap.from_config(json_mapping(current_app.config,
                                                       "CODEX_BILLING_TYPE_MAP"))
    except (BadSetting, BadBillingMap) as exc:
        raise assets.AssetError(None, f"Codex is misconfigured: {exc}", 503) from None


def _visible(asset_id: int) -> Asset:
    asset = assets.get(get_session(), asset_id)
    own_company_only(asset.company, f"There is no asset {asset_id}.")
    return asset


@bp.get("/api/assets")
@bp.doc(summary="List assets",
        description="Filters: `q` (hostname, serial number, last logged-in user), "
                    "`account_number`, `billing_type` (the effective one), `device_category`, "
                    "`online`, `source`, `retired` (false by default; true, or any for both), "
                    "`warranty` (expired, expiring within `warranty_days` — 60 by default —, "
                    "ok or unknown); `sort` (hostname, last_seen, warranty_expiry, updated_at, "
                    "device_category; prefix - to reverse), `limit` (≤ 500), `offset`. Client "
                    "users see their own company's assets. Staff and the Ledger, Brainhair "
                    "and KnowledgeTree services.")
@token_required
@service_allowed(*READERS)
@refusals
def list_assets() -> Any:
    args = query_args()
    query = access.scope(select(Asset).options(selectinload(Asset.company)), Asset.company_id)
    today = utcnow().date()
    return page(get_session(), ASSET_LIST, _lifecycle(query, args), args,
                lambda row: serialise.asset(row, today=today), Asset.id)


@bp.get("/api/assets/<int:asset_id>")
@bp.doc(summary="One asset, with its users (`contacts`)",
        description="Client users see their own company's assets. Staff and the Ledger, "
                    "Brainhair and KnowledgeTree services.")
@token_required
@service_allowed(*READERS)
@refusals
def get_asset(asset_id: int) -> Any:
    return serialise.asset(_visible(asset_id), contacts=True)


@bp.post("/api/assets")
@bp.doc(summary="Add a manual asset",
        description="Admins and technicians. For equipment the RMM does not manage; the "
                    "billing type is derived from `device_category` by the configured map "
                    "unless `billing_type_override` is set.")
@permission_required(*access.WRITERS)
@bp.input(AssetIn, location="json", arg_name="data")
@refusals
def create_asset(data: dict[str, Any]) -> Any:
    session = get_session()
    asset = assets.create(session, data, _billing_map())
    session.commit()
    current_app.logger.info(f"asset {asset.id} ({asset.hostname}) created by "
                            f"{g.user.get('preferred_username')}")
    return serialise.asset(asset, contacts=True), 201


@bp.patch("/api/assets/<int:asset_id>")
@bp.doc(summary="Change an asset",
        description="Admins and technicians; send only the fields to change. On an RMM "
                    "asset only the staff's fields may change (serial_number, model, "
                    "manufacturer, purchase_date, warranty_expiry, billing_type_override); "
                    "the RMM's are refused with 422 naming the field.")
@permission_required(*access.WRITERS)
@bp.input(AssetPatch, location="json", arg_name="data")
@refusals
def update_asset(asset_id: int, data: dict[str, Any]) -> Any:
    session = get_session()
    asset = assets.update(session, assets.get(session, asset_id), data, _billing_map())
    session.commit()
    return serialise.asset(asset, contacts=True)


@bp.put("/api/assets/<int:asset_id>/contacts")
@bp.doc(summary="Set an asset's users",
        description="Admins and technicians. `contact_ids` replaces the list; each contact "
                    "must have a role at the asset's company.")
@permission_required(*access.WRITERS)
@bp.input(AssetContactsIn, location="json", arg_name="data")
@refusals
def set_asset_contacts(asset_id: int, data: dict[str, Any]) -> Any:
    session = get_session()
    asset = assets.set_contacts(session, assets.get(session, asset_id), data["contact_ids"])
    session.commit()
    return serialise.asset(asset, contacts=True)


@bp.delete("/api/assets/<int:asset_id>")
@bp.doc(summary="Delete a manual asset",
        description="Admins and technicians. RMM assets are retired by the sync instead "
                    "(409).")
@permission_required(*access.WRITERS)
@refusals
def delete_asset(asset_id: int) -> Any:
    session = get_session()
    asset = assets.get(session, asset_id)
    hostname = asset.hostname
    removed = assets.remove(session, asset)
    session.commit()
    current_app.logger.warning(f"asset {asset_id} ({hostname}) deleted by "
                               f"{g.user.get('preferred_username')}")
    return {"deleted": asset_id, "removed": removed.__dict__}
