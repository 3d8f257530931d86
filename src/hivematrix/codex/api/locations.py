"""A company's locations: create (`POST /api/companies/<acct>/locations`), read, change and
delete (`/api/locations/<id>`). The list is `GET /api/companies/<acct>/locations`."""

from __future__ import annotations

from typing import Any

from apiflask import APIBlueprint
from flask import current_app, g

from hivematrix.codex import access, companies, locations, serialise
from hivematrix.codex.api import refusals
from hivematrix.codex.api.visibility import own_company_only
from hivematrix.codex.models import Location
from hivematrix.codex.schemas import LocationIn, LocationPatch
from hivematrix.common.auth import permission_required, service_allowed, token_required
from hivematrix.common.db import get_session

bp = APIBlueprint("codex_locations", __name__, tag="Locations")

READERS = access.READER_SERVICES


def _show(location: Location) -> dict[str, Any]:
    return {**serialise.location(location), "account_number": location.company.account_number}


@bp.post("/api/companies/<account_number>/locations")
@bp.doc(summary="Add a location to a company",
        description="Admins and technicians. Names are unique within a company (409).")
@permission_required(*access.WRITERS)
@bp.input(LocationIn, location="json", arg_name="data")
@refusals
def create_location(account_number: str, data: dict[str, Any]) -> Any:
    session = get_session()
    location = locations.create(session, companies.get(session, account_number), data)
    session.commit()
    current_app.logger.info(f"location {location.id} of {account_number} created by "
                            f"{g.user.get('preferred_username')}")
    return _show(location), 201


@bp.get("/api/locations/<int:location_id>")
@bp.doc(summary="One location",
        description="Client users see their own company's. Staff and the reading services "
                    "(Ledger, Beacon, Brainhair, KnowledgeTree, Helm).")
@token_required
@service_allowed(*READERS)
@refusals
def get_location(location_id: int) -> Any:
    location = locations.get(get_session(), location_id)
    own_company_only(location.company, f"There is no location {location_id}.")
    return _show(location)


@bp.patch("/api/locations/<int:location_id>")
@bp.doc(summary="Change a location",
        description="Admins and technicians; send only the fields to change. Names stay "
                    "unique within the company (409).")
@permission_required(*access.WRITERS)
@bp.input(LocationPatch, location="json", arg_name="data")
@refusals
def update_location(location_id: int, data: dict[str, Any]) -> Any:
    session = get_session()
    location = locations.update(session, locations.get(session, location_id), data)
    session.commit()
    return _show(location)


@bp.delete("/api/locations/<int:location_id>")
@bp.doc(summary="Delete a location",
        description="Admins and technicians. Refused (409) while network equipment is "
                    "placed there.")
@permission_required(*access.WRITERS)
@refusals
def delete_location(location_id: int) -> Any:
    session = get_session()
    location = locations.get(session, location_id)
    account_number = location.company.account_number
    locations.remove(session, location)
    session.commit()
    return {"deleted": location_id, "account_number": account_number}
