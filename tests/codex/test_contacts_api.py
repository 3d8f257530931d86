"""`/api/contacts`: listing, validation, roles, the PSA's fields, deletion and permissions."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from hivematrix.codex.models import Asset, AssetContact, Contact, ContactRole, Ticket
from tests.codex.seeding import Headers, company, company_id, database, field_errors, ok


@pytest.fixture
def admin(as_user: Headers) -> dict[str, str]:
    return as_user("admin")


@pytest.fixture
def companies(codex_client: FlaskClient, admin: dict[str, str]) -> None:
    company(codex_client, admin, "620547", "Acme Dental")
    company(codex_client, admin, "100002", "Beta Law")


def contact(client: FlaskClient, headers: dict[str, str], **fields: Any) -> Any:
    return ok(client.post("/api/contacts", json=fields, headers=headers), 201)


def psa_contact(app: Flask) -> int:
    """A Freshservice requester at a Freshservice company, as the PSA sync stores it."""
    with database(app) as session:
        from hivematrix.codex.models import Company

        psa_company = Company(account_number="700001", name="Cobalt Clinic",
                              psa_source="freshservice", psa_external_id="21000097759")
        session.add(psa_company)
        session.flush()
        row = Contact(name="Fay Olsen", email="fay@cobalt.example", external_source="freshservice",
                      external_id="21001000003")
        row.roles.append(ContactRole(company_id=psa_company.id, role="primary"))
        session.add(row)
        session.flush()
        return row.id


def test_create_list_filter_sort_and_page(codex_client: FlaskClient, admin: dict[str, str],
                                          companies: None) -> None:
    dana = contact(codex_client, admin, name="Dana Reyes", email=" Dana.Reyes@AcmeDental.COM ",
                   secondary_emails=["Billing@AcmeDental.com", "billing@acmedental.com"],
                   title="Office Manager", roles=[{"account_number": "620547",
                                                   "role": "primary"}])
    assert dana["email"] == "dana.reyes@acmedental.com"
    assert dana["secondary_emails"] == ["billing@acmedental.com"]
    assert dana["roles"] == [{"account_number": "620547", "company_name": "Acme Dental",
                              "role": "primary"}]
    contact(codex_client, admin, first_name="Eli", last_name="Park", vip=True,
            roles=[{"account_number": "620547", "role": "technical"}])
    contact(codex_client, admin, name="Gus Hale", active=False,
            roles=[{"account_number": "100002", "role": "billing"}])

    def names(query: str) -> list[str]:
        body = ok(codex_client.get(f"/api/contacts?{query}", headers=admin))
        return [item["name"] for item in body["items"]]

    assert names("") == ["Dana Reyes", "Eli Park", "Gus Hale"]  # the name built from parts
    assert names("sort=-name") == ["Gus Hale", "Eli Park", "Dana Reyes"]
    assert names("account_number=620547") == ["Dana Reyes", "Eli Park"]
    assert names("active=false") == ["Gus Hale"]
    assert names("vip=true") == ["Eli Park"]
    assert names("q=office") == ["Dana Reyes"]
    assert names("q=ACMEDENTAL") == ["Dana Reyes"]
    body = ok(codex_client.get("/api/contacts?limit=1&offset=1", headers=admin))
    assert [item["name"] for item in body["items"]] == ["Eli Park"]
    assert (body["total"], body["limit"], body["offset"]) == (3, 1, 1)
    one = ok(codex_client.get(f"/api/contacts/{dana['id']}", headers=admin))
    assert one["title"] == "Office Manager"
    changed = ok(codex_client.patch(f"/api/contacts/{dana['id']}", headers=admin,
                                    json={"email": "DANA@acmedental.com", "vip": True}))
    assert (changed["email"], changed["vip"]) == ("dana@acmedental.com", True)


def test_bad_input_names_the_field(codex_client: FlaskClient, admin: dict[str, str],
                                   companies: None) -> None:
    assert "email" in field_errors(codex_client.post(
        "/api/contacts", json={"name": "X", "email": "not-an-address"}, headers=admin))
    assert "roles" in field_errors(codex_client.post(
        "/api/contacts", json={"name": "X", "roles": [{"account_number": "620547",
                                                       "role": "boss"}]}, headers=admin))
    assert "roles.0.account_number" in field_errors(codex_client.post(
        "/api/contacts", json={"name": "X", "roles": [{"account_number": "999",
                                                       "role": "billing"}]}, headers=admin))
    assert "name" in field_errors(codex_client.post("/api/contacts", json={"title": "CEO"},
                                                    headers=admin))
    assert "password" in field_errors(codex_client.post(
        "/api/contacts", json={"name": "X", "password": "x"}, headers=admin))
    first = contact(codex_client, admin, name="Dana", email="dana@acme.example")
    assert "email" in field_errors(codex_client.post(
        "/api/contacts", json={"name": "Dana again", "email": "DANA@acme.example"},
        headers=admin), 409)
    other = contact(codex_client, admin, name="Eli")
    assert "email" in field_errors(codex_client.patch(
        f"/api/contacts/{other['id']}", json={"email": "dana@acme.example"}, headers=admin), 409)
    # Keeping one's own address is no conflict.
    ok(codex_client.patch(f"/api/contacts/{first['id']}", json={"email": "Dana@acme.example"},
                          headers=admin))
    response = codex_client.get("/api/contacts?sort=password", headers=admin)
    assert response.status_code == 400 and "sort" in response.get_json()["errors"]["query"]
    response = codex_client.get("/api/contacts?vip=maybe", headers=admin)
    assert response.status_code == 400 and "vip" in response.get_json()["errors"]["query"]
    assert codex_client.get("/api/contacts/4242", headers=admin).status_code == 404


def test_roles_are_replaced(codex_client: FlaskClient, admin: dict[str, str],
                            companies: None) -> None:
    dana = contact(codex_client, admin, name="Dana",
                   roles=[{"account_number": "620547", "role": "primary"}])
    body = ok(codex_client.put(f"/api/contacts/{dana['id']}/roles", headers=admin, json={
        "roles": [{"account_number": "620547", "role": "billing"},
                  {"account_number": "100002", "role": "technical"},
                  {"account_number": "100002", "role": "technical"}]}))
    assert sorted((role["account_number"], role["role"]) for role in body["roles"]) == [
        ("100002", "technical"), ("620547", "billing")]
    listed = ok(codex_client.get("/api/companies/100002/contacts", headers=admin))
    assert [item["name"] for item in listed] == ["Dana"]
    assert "roles" in field_errors(codex_client.put(f"/api/contacts/{dana['id']}/roles",
                                                    headers=admin, json={}))
    assert ok(codex_client.put(f"/api/contacts/{dana['id']}/roles", headers=admin,
                               json={"roles": []}))["roles"] == []


def test_a_psa_contact_is_the_psas(codex_client: FlaskClient, codex_app: Flask,
                                   admin: dict[str, str], companies: None) -> None:
    fay = psa_contact(codex_app)
    errors = field_errors(codex_client.patch(f"/api/contacts/{fay}", json={"name": "Faye"},
                                             headers=admin))
    assert "freshservice" in errors["name"][0]
    assert "active" in field_errors(codex_client.patch(f"/api/contacts/{fay}",
                                                       json={"active": False}, headers=admin))
    # Dropping her role at the PSA's company would come undone at the next sync.
    assert "roles" in field_errors(codex_client.put(
        f"/api/contacts/{fay}/roles", headers=admin,
        json={"roles": [{"account_number": "620547", "role": "technical"}]}))
    assert "roles" in field_errors(codex_client.put(
        f"/api/contacts/{fay}/roles", headers=admin,
        json={"roles": [{"account_number": "700001", "role": "primary"},
                        {"account_number": "700001", "role": "billing"}]}))
    body = ok(codex_client.put(f"/api/contacts/{fay}/roles", headers=admin, json={"roles": [
        {"account_number": "700001", "role": "primary"},
        {"account_number": "620547", "role": "technical"}]}))
    assert len(body["roles"]) == 2
    response = codex_client.delete(f"/api/contacts/{fay}", headers=admin)
    assert response.status_code == 409 and "freshservice" in response.get_json()["detail"]
    response = codex_client.delete(f"/api/contacts/{fay}?force=true", headers=admin)
    assert response.status_code == 409


def test_deletion_rule(codex_client: FlaskClient, codex_app: Flask, admin: dict[str, str],
                       as_user: Headers, companies: None) -> None:
    technician = as_user("technician")
    loose = contact(codex_client, admin, name="Nobody")
    body = ok(codex_client.delete(f"/api/contacts/{loose['id']}", headers=technician))
    assert body["deleted"] is True
    assert codex_client.get(f"/api/contacts/{loose['id']}", headers=admin).status_code == 404

    user = contact(codex_client, admin, name="Desk User",
                   roles=[{"account_number": "620547", "role": "general"}])
    requester = contact(codex_client, admin, name="Requester", email="req@acme.example")
    with database(codex_app) as session:
        asset = Asset(company_id=company_id(session, "620547"), hostname="ACME-PC1",
                      billing_type="Workstation")
        session.add(asset)
        session.flush()
        session.add(AssetContact(asset_id=asset.id, contact_id=user["id"]))
        session.add(Ticket(source="freshservice", external_id="1001", status="open",
                           priority="low", requester_email="REQ@acme.example"))
    body = ok(codex_client.delete(f"/api/contacts/{user['id']}", headers=technician))
    assert body["deleted"] is False and body["contact"]["active"] is False
    assert body["references"] == {"assets": 1, "tickets": 0}
    assert "1 assets" in body["detail"]
    body = ok(codex_client.delete(f"/api/contacts/{requester['id']}", headers=admin))
    assert body["deleted"] is False and body["references"]["tickets"] == 1
    # Forcing is an admin's call.
    assert codex_client.delete(f"/api/contacts/{user['id']}?force=true",
                               headers=technician).status_code == 403
    body = ok(codex_client.delete(f"/api/contacts/{user['id']}?force=true", headers=admin))
    assert body["deleted"] is True and body["references"]["assets"] == 1
    asset_view = ok(codex_client.get("/api/companies/620547/assets", headers=admin))
    assert [item["hostname"] for item in asset_view] == ["ACME-PC1"]  # the asset stays
    with database(codex_app) as session:
        assert session.query(AssetContact).count() == 0


def test_permission_levels(codex_client: FlaskClient, codex_app: Flask, admin: dict[str, str],
                           as_user: Headers, as_service: Callable[[str], dict[str, str]],
                           companies: None) -> None:
    dana = contact(codex_client, admin, name="Dana",
                   roles=[{"account_number": "620547", "role": "primary"},
                          {"account_number": "100002", "role": "billing"}])
    gus = contact(codex_client, admin, name="Gus",
                  roles=[{"account_number": "100002", "role": "general"}])
    technician = as_user("technician")
    made = contact(codex_client, technician, name="By a technician")
    ok(codex_client.patch(f"/api/contacts/{made['id']}", json={"title": "Nurse"},
                          headers=technician))
    ok(codex_client.put(f"/api/contacts/{made['id']}/roles", headers=technician,
                        json={"roles": [{"account_number": "620547", "role": "general"}]}))
    writes: list[tuple[str, str, Any]] = [
        ("post", "/api/contacts", {"name": "N"}),
        ("patch", f"/api/contacts/{dana['id']}", {"name": "Hacked"}),
        ("put", f"/api/contacts/{dana['id']}/roles", {"roles": []}),
        ("delete", f"/api/contacts/{gus['id']}", None),
    ]
    refused = [as_user("billing"), as_user("client", account_number="620547"),
               as_service("ledger"), as_service("brainhair")]
    for headers in refused:
        for method, path, body in writes:
            response = getattr(codex_client, method)(path, json=body, headers=headers)
            assert response.status_code == 403, (method, path)
    for method, path, body in writes:
        assert getattr(codex_client, method)(path, json=body).status_code == 401

    assert ok(codex_client.get("/api/contacts", headers=as_user("billing")))["total"] == 3
    client = as_user("client", account_number="620547")
    listed = ok(codex_client.get("/api/contacts", headers=client))
    assert [item["name"] for item in listed["items"]] == ["By a technician", "Dana"]
    # Where else Dana works is not the client's business.
    assert [role["account_number"] for role in listed["items"][1]["roles"]] == ["620547"]
    assert ok(codex_client.get("/api/contacts?account_number=100002",
                               headers=client))["total"] == 0
    assert ok(codex_client.get(f"/api/contacts/{dana['id']}", headers=client))["roles"] == [
        {"account_number": "620547", "company_name": "Acme Dental", "role": "primary"}]
    assert codex_client.get(f"/api/contacts/{gus['id']}", headers=client).status_code == 404
    assert ok(codex_client.get("/api/contacts", headers=as_user("client")))["total"] == 0
    for service in ("ledger", "brainhair", "knowledgetree"):
        assert ok(codex_client.get("/api/contacts", headers=as_service(service)))["total"] == 3
        ok(codex_client.get(f"/api/contacts/{gus['id']}", headers=as_service(service)))
    for service in ("beacon", "template"):
        assert codex_client.get("/api/contacts", headers=as_service(service)).status_code == 403
    assert codex_client.get("/api/contacts").status_code == 401
