"""Network equipment and the cables between devices, for a company's topology view.

Rules: a device's location belongs to its company; a link joins two different devices of
one company; a named port carries one cable. Deleting a device removes its links, and says
how many. Plain Python over a session; the caller commits.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import delete, func, or_, select
from sqlalchemy.orm import Session

from hivematrix.codex import companies
from hivematrix.codex.companies import CompanyError
from hivematrix.codex.models import Company, Location, NetworkDevice, NetworkLink

EDITABLE = ("kind", "name", "management_ip", "manufacturer", "model", "firmware",
            "serial_number", "notes")


class NetworkError(CompanyError):
    """A refusal about network equipment (same shape as the company rules' refusals)."""


def get_device(session: Session, device_id: int) -> NetworkDevice:
    device = session.get(NetworkDevice, device_id)
    if device is None:
        raise NetworkError(None, f"There is no network device {device_id}.", 404)
    return device


def get_link(session: Session, link_id: int) -> NetworkLink:
    link = session.get(NetworkLink, link_id)
    if link is None:
        raise NetworkError(None, f"There is no network link {link_id}.", 404)
    return link


def links_of(session: Session, device_ids: Any) -> list[NetworkLink]:
    return list(session.scalars(select(NetworkLink).where(or_(
        NetworkLink.from_device_id.in_(device_ids), NetworkLink.to_device_id.in_(device_ids)))
        .order_by(NetworkLink.id)))


def _apply(session: Session, device: NetworkDevice, values: Mapping[str, Any]) -> None:
    if "account_number" in values:
        try:
            company = companies.get(session, values["account_number"])
        except companies.UnknownCompany as exc:
            raise NetworkError("account_number", str(exc)) from None
        if device.id is not None and company.id != device.company_id:
            if links_of(session, [device.id]):
                raise NetworkError("account_number", "This device is cabled to devices of "
                                                     "its company; remove its links before "
                                                     "moving it to another company.", 409)
            if "location_id" not in values:
                device.location = None  # the old company's location cannot stay
        device.company = company
    for name in EDITABLE:
        if name in values:
            value = values[name]
            if name == "management_ip":
                value = "" if value is None else str(value)
            setattr(device, name, value.strip() if isinstance(value, str) else value)
    if "location_id" in values:
        location_id = values["location_id"]
        if location_id is None:
            device.location = None
        else:
            location = session.get(Location, location_id)
            if location is None or location.company_id != device.company.id:
                raise NetworkError("location_id", f"{device.company.name} has no location "
                                                  f"{location_id}.")
            device.location = location


def create_device(session: Session, values: Mapping[str, Any]) -> NetworkDevice:
    device = NetworkDevice()
    _apply(session, device, values)
    session.add(device)
    session.flush()
    return device


def update_device(session: Session, device: NetworkDevice,
                  values: Mapping[str, Any]) -> NetworkDevice:
    _apply(session, device, values)
    session.flush()
    return device


def remove_device(session: Session, device: NetworkDevice) -> int:
    """Delete a device and its links; returns how many links went with it."""
    removed = session.execute(delete(NetworkLink).where(or_(
        NetworkLink.from_device_id == device.id, NetworkLink.to_device_id == device.id)))
    session.delete(device)
    session.flush()
    return int(getattr(removed, "rowcount", 0) or 0)


def _port_taken(session: Session, device_id: int, port: str) -> bool:
    return bool(session.scalar(select(func.count()).select_from(NetworkLink).where(or_(
        (NetworkLink.from_device_id == device_id) & (NetworkLink.from_port == port),
        (NetworkLink.to_device_id == device_id) & (NetworkLink.to_port == port)))))


def add_link(session: Session, device: NetworkDevice, values: Mapping[str, Any]) -> NetworkLink:
    """Cable ``device`` (the downstream side) to ``to_device_id``."""
    other = session.get(NetworkDevice, values["to_device_id"])
    if other is None:
        raise NetworkError("to_device_id", f"There is no network device "
                                           f"{values['to_device_id']}.")
    if other.id == device.id:
        raise NetworkError("to_device_id", "A device cannot be linked to itself.")
    if other.company_id != device.company_id:
        raise NetworkError("to_device_id", f"{other.name} belongs to another company; links "
                                           "join devices of one company.")
    from_port = str(values.get("from_port", "")).strip()
    to_port = str(values.get("to_port", "")).strip()
    if session.scalar(select(NetworkLink.id).where(NetworkLink.from_device_id == device.id,
                                                   NetworkLink.from_port == from_port)):
        what = f"Port '{from_port}'" if from_port else "A link without a port"
        raise NetworkError("from_port", f"{what} of {device.name} is already linked; name "
                                        "the port.", 409)
    if from_port and _port_taken(session, device.id, from_port):
        raise NetworkError("from_port", f"Port '{from_port}' of {device.name} already "
                                        "carries a cable.", 409)
    if to_port and _port_taken(session, other.id, to_port):
        raise NetworkError("to_port", f"Port '{to_port}' of {other.name} already carries a "
                                      "cable.", 409)
    link = NetworkLink(from_device_id=device.id, from_port=from_port, to_device_id=other.id,
                       to_port=to_port, kind=values.get("kind", "uplink"))
    session.add(link)
    session.flush()
    return link


def topology(session: Session, company: Company) -> dict[str, Any]:
    """The company's devices as nodes and its cables as edges (for a drawing)."""
    devices = list(session.scalars(select(NetworkDevice).where(
        NetworkDevice.company_id == company.id).order_by(NetworkDevice.name, NetworkDevice.id)))
    ids = [device.id for device in devices]
    links = links_of(session, ids) if ids else []
    locations = {location.id: location for location in company.locations}
    return {
        "account_number": company.account_number,
        "nodes": [{"id": device.id, "name": device.name, "kind": device.kind,
                   "management_ip": device.management_ip, "model": device.model,
                   "location_id": device.location_id,
                   "location_name": (locations[device.location_id].name
                                     if device.location_id in locations else None)}
                  for device in devices],
        "edges": [{"id": link.id, "from": link.from_device_id, "to": link.to_device_id,
                   "from_port": link.from_port, "to_port": link.to_port, "kind": link.kind}
                  for link in links],
    }
