"""`/api/overrides/<account>/...`: the client billing override and the per-row kinds (asset
and user overrides, manual assets and users, custom line items, features)."""

from __future__ import annotations

from typing import Any

from apiflask import APIBlueprint

from hivematrix.common.auth import permission_required, service_allowed
from hivematrix.common.db import get_session
from hivematrix.ledger import overrides
from hivematrix.ledger.api import READER_SERVICES, READERS, WRITERS, json_body, refusals

bp = APIBlueprint("ledger_overrides", __name__, tag="Overrides")

KIND_LIST = ", ".join(overrides.KINDS)


@bp.get("/api/overrides/<account_number>")
@bp.doc(summary="Everything one company's bill is adjusted by",
        description=f"`client` (each field `{{enabled, value}}`) and lists of {KIND_LIST}.")
@permission_required(*READERS)
@service_allowed(*READER_SERVICES)
@refusals
def everything(account_number: str) -> Any:
    return overrides.everything_json(get_session(), account_number)


@bp.get("/api/overrides/<account_number>/client")
@bp.doc(summary="The client billing override")
@permission_required(*READERS)
@service_allowed(*READER_SERVICES)
@refusals
def get_client(account_number: str) -> Any:
    return overrides.client_json(overrides.get_client(get_session(), account_number))


@bp.put("/api/overrides/<account_number>/client")
@bp.doc(summary="Set fields of the client billing override",
        description="Body: field → `{\"enabled\": bool, \"value\": ...}` for `plan_name`, "
                    "`support_level` and each rate; an enabled 0 is honoured.")
@permission_required(*WRITERS)
@refusals
def put_client(account_number: str) -> Any:
    row = overrides.put_client(get_session(), account_number, json_body())
    get_session().commit()
    return overrides.client_json(row)


@bp.delete("/api/overrides/<account_number>/client")
@bp.doc(summary="Remove the client billing override")
@permission_required(*WRITERS)
@refusals
def delete_client(account_number: str) -> Any:
    overrides.delete_client(get_session(), account_number)
    get_session().commit()
    return "", 204


@bp.get("/api/overrides/<account_number>/<kind>")
@bp.doc(summary="One kind of override rows", description=f"`kind`: {KIND_LIST}.")
@permission_required(*READERS)
@service_allowed(*READER_SERVICES)
@refusals
def list_rows(account_number: str, kind: str) -> Any:
    spec = overrides.kind(kind)
    return [spec.to_json(row) for row in overrides.rows(get_session(), spec, account_number)]


@bp.post("/api/overrides/<account_number>/<kind>")
@bp.doc(summary="Add an override row",
        description="assets: `asset_id`, `billing_type`, `custom_cost`; users: `contact_id`, "
                    "`billing_type` (Paid, No Charge, Custom), `custom_cost`; manual-assets: "
                    "`hostname`, `billing_type`, `custom_cost`, `notes`; manual-users: "
                    "`full_name`, `billing_type`, `custom_cost`, `notes`; line-items: `name`, "
                    "`kind` (recurring, one_off, yearly), `amount`, `description`, "
                    "`start_period`, `end_period`, `one_off_period` (YYYY-MM), "
                    "`yearly_month`; features: `feature_key`, `value`, `enabled`.")
@permission_required(*WRITERS)
@refusals
def create_row(account_number: str, kind: str) -> Any:
    spec = overrides.kind(kind)
    row = overrides.create(get_session(), spec, account_number, json_body())
    get_session().commit()
    return spec.to_json(row), 201


@bp.put("/api/overrides/<account_number>/<kind>/<int:row_id>")
@bp.doc(summary="Change an override row", description="Fields left out keep their values.")
@permission_required(*WRITERS)
@refusals
def update_row(account_number: str, kind: str, row_id: int) -> Any:
    spec = overrides.kind(kind)
    row = overrides.update(get_session(), spec, account_number, row_id, json_body())
    get_session().commit()
    return spec.to_json(row)


@bp.delete("/api/overrides/<account_number>/<kind>/<int:row_id>")
@bp.doc(summary="Remove an override row")
@permission_required(*WRITERS)
@refusals
def delete_row(account_number: str, kind: str, row_id: int) -> Any:
    overrides.delete(get_session(), overrides.kind(kind), account_number, row_id)
    get_session().commit()
    return "", 204
