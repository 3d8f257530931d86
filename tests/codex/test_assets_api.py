"""`/api/assets`: manual assets, the RMM's read-only fields, billing types, warranty status,
filters, deletion, users and permissions."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from hivematrix.codex import create_app
from hivematrix.codex.assets import warranty_status
from hivematrix.codex.models import Asset, AssetContact
from tests.codex.seeding import Headers, company, company_id, database, field_errors, ok

TODAY = datetime.now(UTC).date()


@pytest.fixture
def admin(as_user: Headers) -> dict[str, str]:
    return as_user("admin")


@pytest.fixture
def companies(codex_client: FlaskClient, admin: dict[str, str]) -> None:
    company(codex_client, admin, "620547", "Acme Dental")
    company(codex_client, admin, "100002", "Beta Law")


def rmm_asset(app: Flask, account_number: str, hostname: str, **fields: Any) -> int:
    """A device as the Datto sync stores it."""
    with database(app) as session:
        values: dict[str, Any] = {"device_category": "Desktop", "billing_type": "Workstation",
                                  "source": "rmm", "rmm_source": "datto",
                                  "rmm_device_id": f"uid-{hostname}", "udfs": {}, **fields}
        row = Asset(company_id=company_id(session, account_number), hostname=hostname,
                    **values)
        session.add(row)
        session.flush()
        return row.id


def manual(client: FlaskClient, headers: dict[str, str], **fields: Any) -> Any:
    return ok(client.post("/api/assets", json={"account_number": "620547", **fields},
                          headers=headers), 201)


def hostnames(client: FlaskClient, headers: dict[str, str], query: str = "") -> list[str]:
    body = ok(client.get(f"/api/assets?{query}", headers=headers))
    return [item["hostname"] for item in body["items"]]


def test_warranty_status_edges() -> None:
    today = date(2025, 6, 1)
    assert warranty_status(None, today) == "unknown"
    assert warranty_status(date(2025, 5, 31), today) == "expired"
    assert warranty_status(today, today) == "expiring"
    assert warranty_status(date(2025, 7, 31), today) == "expiring"  # day 60
    assert warranty_status(date(2025, 8, 1), today) == "ok"  # day 61
    assert warranty_status(date(2025, 6, 11), today, days=10) == "expiring"
    assert warranty_status(date(2025, 6, 12), today, days=10) == "ok"


def test_manual_asset_and_billing_types(codex_client: FlaskClient, admin: dict[str, str],
                                        companies: None) -> None:
    laptop = manual(codex_client, admin, hostname=" ACME-LT1 ", device_category="Laptop",
                    serial_number="SN123", warranty_expiry=(TODAY - timedelta(days=1)).isoformat(),
                    backup_bytes=5_000_000_000_000)
    assert (laptop["source"], laptop["hostname"], laptop["billing_type"]) == (
        "manual", "ACME-LT1", "Workstation")
    assert laptop["warranty_status"] == "expired"
    assert laptop["backup_bytes"] == 5_000_000_000_000 and laptop["contacts"] == []
    odd = manual(codex_client, admin, hostname="ACME-X", device_category="Toaster")
    assert (odd["billing_type"], odd["billing_type_unmapped"]) == ("Workstation", True)
    printer = manual(codex_client, admin, hostname="ACME-PRN", device_category="printer",
                     billing_type_override="Switch")
    assert (printer["billing_type"], printer["billing_type_derived"]) == ("Switch", "Printer")
    assert printer["warranty_status"] == "unknown"
    # A manual asset is the staff's: everything may change, the type follows the category.
    body = ok(codex_client.patch(f"/api/assets/{odd['id']}", headers=admin, json={
        "device_category": "Server", "hostname": "ACME-SRV", "account_number": "100002"}))
    assert (body["billing_type"], body["billing_type_unmapped"], body["account_number"]) == (
        "Server", False, "100002")
    body = ok(codex_client.patch(f"/api/assets/{printer['id']}", headers=admin,
                                 json={"billing_type_override": None}))
    assert body["billing_type"] == "Printer"


def test_the_configured_billing_map_is_used(service_settings: dict[str, Any],
                                            codex_db_url: str, as_user: Headers) -> None:
    app = create_app({**service_settings, "DATABASE_URL": codex_db_url,
                      "CODEX_BILLING_TYPE_MAP": '{"NAS": "Server"}'})
    try:
        client = app.test_client()
        admin = as_user("admin")
        company(client, admin, "620547", "Acme Dental")
        body = ok(client.post("/api/assets", headers=admin, json={
            "account_number": "620547", "hostname": "NAS1", "device_category": "nas"}), 201)
        assert body["billing_type"] == "Server"
    finally:
        app.extensions["hivematrix.db"].dispose()


def test_bad_input_names_the_field(codex_client: FlaskClient, admin: dict[str, str],
                                   companies: None) -> None:
    assert "hostname" in field_errors(codex_client.post(
        "/api/assets", json={"account_number": "620547"}, headers=admin))
    assert "account_number" in field_errors(codex_client.post(
        "/api/assets", json={"account_number": "404", "hostname": "X"}, headers=admin))
    assert "billing_type_override" in field_errors(codex_client.post(
        "/api/assets", json={"account_number": "620547", "hostname": "X",
                             "billing_type_override": "Toaster"}, headers=admin))
    assert "backup_bytes" in field_errors(codex_client.post(
        "/api/assets", json={"account_number": "620547", "hostname": "X",
                             "backup_bytes": "1.5 TB"}, headers=admin))
    assert "warranty_expiry" in field_errors(codex_client.post(
        "/api/assets", json={"account_number": "620547", "hostname": "X",
                             "warranty_expiry": "soon"}, headers=admin))
    for query, parameter in (("billing_type=Toaster", "billing_type"),
                             ("warranty=maybe", "warranty"),
                             ("warranty=expiring&warranty_days=-1", "warranty_days"),
                             ("retired=sometimes", "retired"), ("sort=secret", "sort"),
                             ("source=magic", "source")):
        response = codex_client.get(f"/api/assets?{query}", headers=admin)
        assert response.status_code == 400, query
        assert parameter in response.get_json()["errors"]["query"], query
    assert codex_client.get("/api/assets/999", headers=admin).status_code == 404


def test_rmm_fields_are_read_only(codex_client: FlaskClient, codex_app: Flask,
                                  admin: dict[str, str], companies: None) -> None:
    device = rmm_asset(codex_app, "620547", "ACME-PC1", backup_bytes=1024)
    for field, value in (("hostname", "RENAMED"), ("backup_bytes", 0),
                         ("device_category", "Server"), ("account_number", "100002"),
                         ("operating_system", "Windows 11")):
        errors = field_errors(codex_client.patch(f"/api/assets/{device}", headers=admin,
                                                 json={field: value}))
        assert field in errors and "datto" in errors[field][0], field
    expiry = (TODAY + timedelta(days=30)).isoformat()
    body = ok(codex_client.patch(f"/api/assets/{device}", headers=admin, json={
        "serial_number": "CZC123", "model": "EliteDesk 800", "manufacturer": "HP",
        "purchase_date": "2023-01-15", "warranty_expiry": expiry,
        "billing_type_override": "Server"}))
    assert (body["serial_number"], body["warranty_expiry"], body["warranty_status"]) == (
        "CZC123", expiry, "expiring")
    assert (body["billing_type"], body["hostname"], body["backup_bytes"]) == (
        "Server", "ACME-PC1", 1024)
    response = codex_client.delete(f"/api/assets/{device}", headers=admin)
    assert response.status_code == 409 and "retired" in response.get_json()["detail"]


def test_filters_sort_and_paging(codex_client: FlaskClient, codex_app: Flask,
                                 admin: dict[str, str], companies: None) -> None:
    soon = TODAY + timedelta(days=20)
    rmm_asset(codex_app, "620547", "ACME-PC1", online=True, last_logged_in_user="ACME\\dana",
              warranty_expiry=TODAY - timedelta(days=3), serial_number="SN-AAA")
    rmm_asset(codex_app, "620547", "ACME-SRV", device_category="Server", billing_type="Server",
              warranty_expiry=soon)
    rmm_asset(codex_app, "620547", "ACME-OLD", retired_at=datetime(2024, 1, 1, tzinfo=UTC))
    rmm_asset(codex_app, "100002", "BETA-PC1", billing_type_override="Server",
              warranty_expiry=TODAY + timedelta(days=400))
    manual(codex_client, admin, hostname="ACME-PRN", device_category="Printer")

    assert hostnames(codex_client, admin) == ["ACME-PC1", "ACME-PRN", "ACME-SRV", "BETA-PC1"]
    assert hostnames(codex_client, admin, "sort=-hostname&limit=2") == ["BETA-PC1", "ACME-SRV"]
    body = ok(codex_client.get("/api/assets?limit=2&offset=2", headers=admin))
    assert [item["hostname"] for item in body["items"]] == ["ACME-SRV", "BETA-PC1"]
    assert body["total"] == 4
    assert hostnames(codex_client, admin, "account_number=100002") == ["BETA-PC1"]
    assert hostnames(codex_client, admin, "billing_type=Server") == ["ACME-SRV", "BETA-PC1"]
    assert hostnames(codex_client, admin, "device_category=server") == ["ACME-SRV"]
    assert hostnames(codex_client, admin, "online=true") == ["ACME-PC1"]
    assert hostnames(codex_client, admin, "source=manual") == ["ACME-PRN"]
    assert hostnames(codex_client, admin, "retired=true") == ["ACME-OLD"]
    assert len(hostnames(codex_client, admin, "retired=any")) == 5
    assert hostnames(codex_client, admin, "warranty=expired") == ["ACME-PC1"]
    assert hostnames(codex_client, admin, "warranty=expiring") == ["ACME-SRV"]
    assert hostnames(codex_client, admin, "warranty=expiring&warranty_days=10") == []
    assert hostnames(codex_client, admin, "warranty=ok") == ["BETA-PC1"]
    assert hostnames(codex_client, admin, "warranty=unknown") == ["ACME-PRN"]
    assert hostnames(codex_client, admin, "q=dana") == ["ACME-PC1"]
    assert hostnames(codex_client, admin, "q=sn-aaa") == ["ACME-PC1"]
    assert hostnames(codex_client, admin, "q=beta") == ["BETA-PC1"]
    statuses = {item["hostname"]: item["warranty_status"] for item in
                ok(codex_client.get("/api/assets", headers=admin))["items"]}
    assert statuses == {"ACME-PC1": "expired", "ACME-SRV": "expiring", "BETA-PC1": "ok",
                        "ACME-PRN": "unknown"}


def test_users_and_deletion(codex_client: FlaskClient, codex_app: Flask,
                            admin: dict[str, str], companies: None) -> None:
    dana = ok(codex_client.post("/api/contacts", headers=admin, json={
        "name": "Dana", "roles": [{"account_number": "620547", "role": "primary"}]}), 201)
    gus = ok(codex_client.post("/api/contacts", headers=admin, json={
        "name": "Gus", "roles": [{"account_number": "100002", "role": "general"}]}), 201)
    laptop = manual(codex_client, admin, hostname="ACME-LT1")
    body = ok(codex_client.put(f"/api/assets/{laptop['id']}/contacts", headers=admin,
                               json={"contact_ids": [dana["id"], dana["id"]]}))
    assert [person["name"] for person in body["contacts"]] == ["Dana"]
    assert ok(codex_client.get(f"/api/assets/{laptop['id']}",
                               headers=admin))["contacts"][0]["id"] == dana["id"]
    errors = field_errors(codex_client.put(f"/api/assets/{laptop['id']}/contacts",
                                           headers=admin, json={"contact_ids": [dana["id"],
                                                                                gus["id"]]}))
    assert "Acme Dental" in errors["contact_ids.1"][0]
    assert "contact_ids.0" in field_errors(codex_client.put(
        f"/api/assets/{laptop['id']}/contacts", headers=admin, json={"contact_ids": [999]}))
    assert "contact_ids" in field_errors(codex_client.put(
        f"/api/assets/{laptop['id']}/contacts", headers=admin, json={"contact_ids": ["x"]}))
    body = ok(codex_client.delete(f"/api/assets/{laptop['id']}", headers=admin))
    assert body["removed"] == {"contact_links": 1}
    assert codex_client.get(f"/api/assets/{laptop['id']}", headers=admin).status_code == 404
    with database(codex_app) as session:
        assert session.query(AssetContact).count() == 0
    assert ok(codex_client.get(f"/api/contacts/{dana['id']}", headers=admin))["active"]


def test_permission_levels(codex_client: FlaskClient, codex_app: Flask, admin: dict[str, str],
                           as_user: Headers, as_service: Callable[[str], dict[str, str]],
                           companies: None) -> None:
    acme = rmm_asset(codex_app, "620547", "ACME-PC1")
    beta = rmm_asset(codex_app, "100002", "BETA-PC1")
    technician = as_user("technician")
    made = manual(codex_client, technician, hostname="ACME-PRN")
    ok(codex_client.patch(f"/api/assets/{acme}", json={"serial_number": "S1"},
                          headers=technician))
    ok(codex_client.put(f"/api/assets/{made['id']}/contacts", json={"contact_ids": []},
                        headers=technician))
    writes: list[tuple[str, str, Any]] = [
        ("post", "/api/assets", {"account_number": "620547", "hostname": "N"}),
        ("patch", f"/api/assets/{acme}", {"serial_number": "S2"}),
        ("put", f"/api/assets/{acme}/contacts", {"contact_ids": []}),
        ("delete", f"/api/assets/{made['id']}", None),
    ]
    for headers in (as_user("billing"), as_user("client", account_number="620547"),
                    as_service("ledger"), as_service("brainhair")):
        for method, path, body in writes:
            response = getattr(codex_client, method)(path, json=body, headers=headers)
            assert response.status_code == 403, (method, path)
    for method, path, body in writes:
        assert getattr(codex_client, method)(path, json=body).status_code == 401

    assert len(hostnames(codex_client, as_user("billing"))) == 3
    client = as_user("client", account_number="620547")
    assert hostnames(codex_client, client) == ["ACME-PC1", "ACME-PRN"]
    assert hostnames(codex_client, client, "account_number=100002") == []
    ok(codex_client.get(f"/api/assets/{acme}", headers=client))
    response = codex_client.get(f"/api/assets/{beta}", headers=client)
    assert response.status_code == 404 and "100002" not in response.get_json()["detail"]
    assert hostnames(codex_client, as_user("client")) == []
    for service in ("ledger", "brainhair", "knowledgetree"):
        assert len(hostnames(codex_client, as_service(service))) == 3
        ok(codex_client.get(f"/api/assets/{beta}", headers=as_service(service)))
    for service in ("beacon", "template"):
        assert codex_client.get("/api/assets", headers=as_service(service)).status_code == 403
    assert codex_client.get("/api/assets").status_code == 401
