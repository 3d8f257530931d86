"""A company's locations (offices, sites): names unique per company, and no deleting a
location while network equipment is placed there. The caller commits."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from hivematrix.codex.companies import CompanyError
from hivematrix.codex.models import Company, Location, NetworkDevice

EDITABLE = ("name", "address", "phone")


class LocationError(CompanyError):
    """A refusal about a location (same shape as the company rules' refusals)."""


def get(session: Session, location_id: int) -> Location:
    location = session.get(Location, location_id)
    if location is None:
        raise LocationError(None, f"There is no location {location_id}.", 404)
    return location


def _apply(session: Session, location: Location, values: Mapping[str, Any]) -> None:
    for name in EDITABLE:
        if name in values:
            setattr(location, name, str(values[name]).strip())
    with session.no_autoflush:  # check before the unique index would refuse the row
        taken = session.scalar(select(Location.id).where(
            Location.company_id == location.company_id, Location.name == location.name,
            Location.id != (location.id or 0)))
    if taken is not None:
        raise LocationError("name", f"This company already has a location named "
                                    f"'{location.name}'.", 409)


def create(session: Session, company: Company, values: Mapping[str, Any]) -> Location:
    location = Location(company_id=company.id, name="")
    _apply(session, location, values)
    session.add(location)
    session.flush()
    return location


def update(session: Session, location: Location, values: Mapping[str, Any]) -> Location:
    _apply(session, location, values)
    session.flush()
    return location


def remove(session: Session, location: Location) -> None:
    placed = session.scalar(select(func.count()).select_from(NetworkDevice).where(
        NetworkDevice.location_id == location.id)) or 0
    if placed:
        raise LocationError(None, f"{placed} network devices are placed at '{location.name}'; "
                                  "move or delete them first.", 409)
    session.delete(location)
    session.flush()
