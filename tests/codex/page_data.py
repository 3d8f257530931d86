"""What Codex's page tests (Flask client and browser) find in the database: a small MSP's
companies, people, machines, network gear and tickets, with hostile text where customers
type it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from sqlalchemy.orm import Session

from hivematrix.codex.models import (
    Asset,
    AssetContact,
    Company,
    Contact,
    ContactRole,
    Location,
    NetworkDevice,
    NetworkLink,
    Ticket,
)

XSS_NAME = '<script>window.__pwned=1</script>Acme "Dental"'
XSS_SUBJECT = '<img src=x onerror="window.__pwned=2"> printer jammed'
TODAY = datetime.now(UTC).date()


@dataclass
class Seeded:
    parent: str = "P100"
    acme: str = "620547"
    beta: str = "100002"
    expired_asset: int = 0
    expiring_asset: int = 0
    beta_asset: int = 0
    dana: int = 0
    beta_contact: int = 0


def seed(session: Session) -> Seeded:
    """Two client companies under a parent group, with people, machines, network gear,
    tickets and locations, as the syncs would have written them (the caller commits)."""
    found = Seeded()
    now = datetime.now(UTC)
    parent = Company(account_number=found.parent, name="Northwind Group")
    acme = Company(account_number=found.acme, name=XSS_NAME, parent=parent,
                   compliance_level="hipaa", billing_plan="Gold", domains=["acme.example"])
    beta = Company(account_number=found.beta, name="Beta Law", parent=parent)
    session.add_all([parent, acme, beta])
    session.flush()
    office = Location(company_id=acme.id, name="Main office", address="1 Harbour St")
    session.add(office)
    dana = Contact(name="Dana Reyes", email="dana@acme.example", title="Office Manager")
    dana.roles.append(ContactRole(company_id=acme.id, role="primary"))
    dana.roles.append(ContactRole(company_id=beta.id, role="billing"))
    eli = Contact(name="Eli Park", email="eli@beta.example")
    eli.roles.append(ContactRole(company_id=beta.id, role="technical"))
    session.add_all([dana, eli])
    assets = [
        Asset(company_id=acme.id, hostname="ACME-DC1", device_category="Server",
              billing_type="Server", warranty_expiry=TODAY - timedelta(days=3),
              backup_bytes=3 * 1024**3 + 512 * 1024**2, source="rmm", rmm_source="datto",
              rmm_device_id="d-1", udfs={"udf1": "rack 4"}, online=True,
              portal_url="javascript:alert(1)", web_remote_url="https://rmm.example/r/1"),
        Asset(company_id=acme.id, hostname="ACME-PC7", device_category="Laptop",
              billing_type="Workstation", warranty_expiry=TODAY + timedelta(days=30),
              source="rmm", rmm_source="datto", rmm_device_id="d-2"),
        Asset(company_id=acme.id, hostname="ACME-CAM", device_category="Camera",
              billing_type="Workstation", billing_type_unmapped=True,
              warranty_expiry=TODAY + timedelta(days=400), source="manual"),
        Asset(company_id=beta.id, hostname="BETA-PC1", device_category="Desktop",
              billing_type="Workstation", source="manual"),
    ]
    session.add_all(assets)
    session.flush()
    session.add(AssetContact(asset_id=assets[0].id, contact_id=dana.id))
    gateway = NetworkDevice(company_id=acme.id, kind="firewall", name="fw-edge",
                            management_ip="10.0.0.1", location_id=office.id)
    core = NetworkDevice(company_id=acme.id, kind="switch", name="sw-core",
                         management_ip="10.0.0.2")
    floor = NetworkDevice(company_id=acme.id, kind="switch", name="sw-floor2")
    wifi = NetworkDevice(company_id=acme.id, kind="access_point", name="ap-lobby")
    session.add_all([gateway, core, floor, wifi])
    session.flush()
    session.add_all([
        NetworkLink(from_device_id=core.id, from_port="ge-0/0/1", to_device_id=gateway.id,
                    to_port="port2"),
        NetworkLink(from_device_id=floor.id, from_port="1", to_device_id=core.id,
                    to_port="24"),
        NetworkLink(from_device_id=wifi.id, from_port="eth0", to_device_id=floor.id,
                    to_port="7"),
    ])
    session.add_all([
        Ticket(source="freshservice", external_id="501", number="INC-501",
               company_id=acme.id, subject=XSS_SUBJECT, status="open", priority="urgent",
               requester_email="dana@acme.example", requester_name="Dana Reyes",
               created_at=now - timedelta(hours=2), updated_at=now,
               total_hours=Decimal("1.25")),
        Ticket(source="freshservice", external_id="502", number="INC-502",
               company_id=acme.id, subject="New starter laptop", status="closed",
               priority="low", created_at=now - timedelta(days=9),
               updated_at=now - timedelta(days=8)),
        Ticket(source="freshservice", external_id="503", number="INC-503",
               company_id=beta.id, subject="Beta's VPN", status="pending",
               priority="medium", created_at=now - timedelta(days=1)),
    ])
    session.flush()
    found.expired_asset, found.expiring_asset = assets[0].id, assets[1].id
    found.beta_asset, found.dana, found.beta_contact = assets[3].id, dana.id, eli.id
    return found
