"""Asset rules: which fields staff may change, billing types, warranty status, deletion.

An RMM asset's facts (hostname, category, addresses, last seen, backup size...) are the RMM's:
every sync rewrites them, so Codex refuses edits to them instead of letting them silently
come undone. What the RMM does not know is the staff's: serial number, model, manufacturer,
purchase date and warranty (kept by the sync unless the RMM reports a value), the billing
type override and the asset's users. Manual and imported assets are entirely the staff's.

RMM assets are never deleted here: a device that leaves the RMM is retired by the sync and
kept for history and billing. The caller commits.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from hivematrix.codex import companies
from hivematrix.codex.billing_types import BillingTypeMap
from hivematrix.codex.companies import CompanyError
from hivematrix.codex.models import Asset, AssetContact, Contact, ContactRole

#: Days before expiry from which a warranty counts as "expiring".
WARRANTY_WARNING_DAYS = 60
WARRANTY_STATES = ("expired", "expiring", "ok", "unknown")

#: Fields staff may change on any asset.
STAFF_FIELDS = ("serial_number", "model", "manufacturer", "purchase_date", "warranty_expiry",
                "billing_type_override")
#: Fields an RMM sync writes; editable only on manual and imported assets.
RMM_FIELDS = ("account_number", "hostname", "device_category", "operating_system",
              "internal_ip", "external_ip", "last_logged_in_user", "domain", "description",
              "backup_bytes")


class AssetError(CompanyError):
    """A refusal about an asset (same shape as the company rules' refusals)."""


def warranty_status(expiry: date | None, today: date,
                    days: int = WARRANTY_WARNING_DAYS) -> str:
    """expired (before today), expiring (within ``days``), ok, or unknown (no date)."""
    if expiry is None:
        return "unknown"
    if expiry < today:
        return "expired"
    if expiry <= today + timedelta(days=days):
        return "expiring"
    return "ok"


def warranty_condition(state: str, today: date, days: int = WARRANTY_WARNING_DAYS) -> Any:
    """The SQL condition matching :func:`warranty_status` == ``state``."""
    column = Asset.warranty_expiry
    horizon = today + timedelta(days=days)
    if state == "expired":
        return column < today
    if state == "expiring":
        return column.between(today, horizon)
    if state == "ok":
        return column > horizon
    if state == "unknown":
        return column.is_(None)
    raise ValueError(state)


def get(session: Session, asset_id: int) -> Asset:
    asset = session.get(Asset, asset_id)
    if asset is None:
        raise AssetError(None, f"There is no asset {asset_id}.", 404)
    return asset


def is_rmm(asset: Asset) -> bool:
    return asset.source == "rmm"


def _apply(session: Session, asset: Asset, values: Mapping[str, Any],
           billing: BillingTypeMap) -> None:
    if "account_number" in values:
        try:
            asset.company = companies.get(session, values["account_number"])
        except companies.UnknownCompany as exc:
            raise AssetError("account_number", str(exc)) from None
    for name in (*STAFF_FIELDS, *RMM_FIELDS):
        if name in values and name != "account_number":
            value = values[name]
            setattr(asset, name, value.strip() if isinstance(value, str) else value)
    if "device_category" in values:
        asset.billing_type, asset.billing_type_unmapped = billing.classify(
            asset.device_category)


def create(session: Session, values: Mapping[str, Any], billing: BillingTypeMap) -> Asset:
    """A manual asset (one the RMM does not manage: a printer, a spare laptop...)."""
    asset = Asset(source="manual", hostname="", device_category="", udfs={})
    asset.billing_type, asset.billing_type_unmapped = billing.classify("")
    _apply(session, asset, values, billing)
    session.add(asset)
    session.flush()
    return asset


def update(session: Session, asset: Asset, values: Mapping[str, Any],
           billing: BillingTypeMap) -> Asset:
    if is_rmm(asset):
        for name in RMM_FIELDS:
            if name in values:
                raise AssetError(name, f"{name} of this asset comes from the RMM "
                                       f"({asset.rmm_source}) and is rewritten by every sync; "
                                       "it is read-only here.")
    _apply(session, asset, values, billing)
    session.flush()
    return asset


def set_contacts(session: Session, asset: Asset, contact_ids: Iterable[int]) -> Asset:
    """The asset's users: contacts of the asset's company."""
    wanted = list(dict.fromkeys(contact_ids))
    found = {contact.id: contact for contact in session.scalars(
        select(Contact).where(Contact.id.in_(wanted)))} if wanted else {}
    of_company = set(session.scalars(select(ContactRole.contact_id).where(
        ContactRole.company_id == asset.company_id, ContactRole.contact_id.in_(wanted))))
    for index, contact_id in enumerate(wanted):
        if contact_id not in found:
            raise AssetError(f"contact_ids.{index}", f"There is no contact {contact_id}.")
        if contact_id not in of_company:
            raise AssetError(f"contact_ids.{index}", f"{found[contact_id].name} has no role "
                                                     f"at {asset.company.name}; give them one "
                                                     "first.")
    asset.contacts = [found[contact_id] for contact_id in wanted]
    session.flush()
    return asset


@dataclass(frozen=True)
class Removed:
    contact_links: int


def remove(session: Session, asset: Asset) -> Removed:
    if is_rmm(asset):
        raise AssetError(None, f"{asset.hostname} is managed by the RMM ({asset.rmm_source}); "
                               "it is retired by the sync when it leaves the RMM, not "
                               "deleted here.", 409)
    links = session.scalar(select(func.count()).select_from(AssetContact).where(
        AssetContact.asset_id == asset.id)) or 0
    session.execute(delete(AssetContact).where(AssetContact.asset_id == asset.id))
    session.expire(asset, ["contacts"])
    session.delete(asset)
    session.flush()
    return Removed(contact_links=links)
