"""`/api/network_equipment`: routers, switches, firewalls and access points, the links
between them, and a company's topology (`/api/companies/<acct>/topology`)."""

from __future__ import annotations

from typing import Any

from apiflask import APIBlueprint
from flask import current_app, g
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from hivematrix.codex import access, companies, network, serialise
from hivematrix.codex.api import query_args, refusals
from hivematrix.codex.api.visibility import own_company_only
from hivematrix.codex.listing import BadQuery, Listing, integer, page
from hivematrix.codex.models import NETWORK_KINDS, NetworkDevice
from hivematrix.codex.schemas import NetworkDeviceIn, NetworkDevicePatch, NetworkLinkIn
from hivematrix.common.auth import permission_required, service_allowed, token_required
from hivematrix.common.db import get_session

bp = APIBlueprint("codex_network", __name__, tag="Network equipment")

#: The assistant and the knowledge base describe a client's network.
READERS = ("brainhair", "knowledgetree")


def _kind(raw: str) -> str:
    if raw not in NETWORK_KINDS:
        raise BadQuery("kind", f"must be one of {', '.join(NETWORK_KINDS)}")
    return raw


DEVICE_LIST = Listing(
    sorts={"name": NetworkDevice.name, "kind": NetworkDevice.kind,
           "management_ip": NetworkDevice.management_ip,
           "updated_at": NetworkDevice.updated_at},
    filters={
        "account_number": lambda query, raw: query.where(
            NetworkDevice.company.has(account_number=raw)),
        "kind": lambda query, raw: query.where(NetworkDevice.kind == _kind(raw)),
        "location": lambda query, raw: query.where(
            NetworkDevice.location_id == integer("location", raw, minimum=1)),
    },
    search=(NetworkDevice.name, NetworkDevice.management_ip, NetworkDevice.model,
            NetworkDevice.serial_number))


def _loaded() -> Any:
    return select(NetworkDevice).options(selectinload(NetworkDevice.company),
                                         selectinload(NetworkDevice.location))


def _visible(device_id: int) -> NetworkDevice:
    device = network.get_device(get_session(), device_id)
    own_company_only(device.company, f"There is no network device {device_id}.")
    return device


def _with_links(device: NetworkDevice) -> dict[str, Any]:
    links = network.links_of(get_session(), [device.id])
    return {**serialise.network_device(device),
            "links": [serialise.network_link(link) for link in links]}


@bp.get("/api/network_equipment")
@bp.doc(summary="List network equipment",
        description="Filters: `q` (name, management IP, model, serial), `account_number`, "
                    "`kind` (router, switch, firewall, access_point), `location` (a location "
                    "id); `sort` (name, kind, management_ip, updated_at; prefix - to "
                    "reverse), `limit` (≤ 500), `offset`. Client users see their own "
                    "company's. Staff and the Brainhair and KnowledgeTree services.")
@token_required
@service_allowed(*READERS)
@refusals
def list_devices() -> Any:
    query = access.scope(_loaded(), NetworkDevice.company_id)
    return page(get_session(), DEVICE_LIST, query, query_args(), serialise.network_device,
                NetworkDevice.id)


@bp.get("/api/companies/<account_number>/network_equipment")
@bp.doc(summary="A company's network equipment",
        description="Sorted by name. Client users: their own company only. Staff and the "
                    "Brainhair and KnowledgeTree services.")
@token_required
@service_allowed(*READERS)
@refusals
def company_devices(account_number: str) -> Any:
    company = access.check_company(companies.get(get_session(), account_number))
    rows = get_session().scalars(_loaded().where(NetworkDevice.company_id == company.id)
                                 .order_by(NetworkDevice.name, NetworkDevice.id))
    return [serialise.network_device(row) for row in rows]


@bp.get("/api/companies/<account_number>/topology")
@bp.doc(summary="A company's network as nodes and edges",
        description="`nodes` are the devices (id, name, kind, management_ip, model, "
                    "location); `edges` the links (`from` is the downstream device, `to` "
                    "its uplink), with ports and kind.")
@token_required
@service_allowed(*READERS)
@refusals
def company_topology(account_number: str) -> Any:
    company = access.check_company(companies.get(get_session(), account_number))
    return network.topology(get_session(), company)


@bp.get("/api/network_equipment/<int:device_id>")
@bp.doc(summary="One network device, with its links",
        description="`links` are the cables at either end of it. Client users: their own "
                    "company only. Staff and the Brainhair and KnowledgeTree services.")
@token_required
@service_allowed(*READERS)
@refusals
def get_device(device_id: int) -> Any:
    return _with_links(_visible(device_id))


@bp.post("/api/network_equipment")
@bp.doc(summary="Add a network device",
        description="Admins and technicians. `location_id` must be a location of the "
                    "device's company.")
@permission_required(*access.WRITERS)
@bp.input(NetworkDeviceIn, location="json", arg_name="data")
@refusals
def create_device(data: dict[str, Any]) -> Any:
    session = get_session()
    device = network.create_device(session, data)
    session.commit()
    current_app.logger.info(f"network device {device.id} ({device.name}) created by "
                            f"{g.user.get('preferred_username')}")
    return _with_links(device), 201


@bp.patch("/api/network_equipment/<int:device_id>")
@bp.doc(summary="Change a network device",
        description="Admins and technicians; send only the fields to change. Moving a "
                    "device to another company is refused while it has links.")
@permission_required(*access.WRITERS)
@bp.input(NetworkDevicePatch, location="json", arg_name="data")
@refusals
def update_device(device_id: int, data: dict[str, Any]) -> Any:
    session = get_session()
    device = network.update_device(session, network.get_device(session, device_id), data)
    session.commit()
    return _with_links(device)


@bp.delete("/api/network_equipment/<int:device_id>")
@bp.doc(summary="Delete a network device",
        description="Admins and technicians. Its links are removed with it; the answer "
                    "says how many.")
@permission_required(*access.WRITERS)
@refusals
def delete_device(device_id: int) -> Any:
    session = get_session()
    device = network.get_device(session, device_id)
    name = device.name
    links = network.remove_device(session, device)
    session.commit()
    current_app.logger.warning(f"network device {device_id} ({name}) deleted with {links} "
                               f"links by {g.user.get('preferred_username')}")
    return {"deleted": device_id, "removed": {"links": links}}


@bp.post("/api/network_equipment/<int:device_id>/links")
@bp.doc(summary="Cable a device to another",
        description="Admins and technicians. This device is the downstream side; "
                    "`to_device_id` (same company, not itself), `from_port`, `to_port`, "
                    "`kind` (uplink or port). A named port carries one cable (409).")
@permission_required(*access.WRITERS)
@bp.input(NetworkLinkIn, location="json", arg_name="data")
@refusals
def create_link(device_id: int, data: dict[str, Any]) -> Any:
    session = get_session()
    link = network.add_link(session, network.get_device(session, device_id), data)
    session.commit()
    return serialise.network_link(link), 201


@bp.delete("/api/network_links/<int:link_id>")
@bp.doc(summary="Remove a link",
        description="Admins and technicians. The devices stay.")
@permission_required(*access.WRITERS)
@refusals
def delete_link(link_id: int) -> Any:
    session = get_session()
    link = network.get_link(session, link_id)
    session.delete(link)
    session.commit()
    return {"deleted": link_id}
