"""`/api/companies`: the rules (hierarchy, deletion) and who may do what."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from flask.testing import FlaskClient

Headers = Callable[..., dict[str, str]]


@pytest.fixture
def admin(as_user: Headers) -> dict[str, str]:
    return as_user("admin")


def create(client: FlaskClient, headers: dict[str, str], **fields: Any) -> Any:
    response = client.post("/api/companies", json=fields, headers=headers)
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def test_create_read_and_list(codex_client: FlaskClient, admin: dict[str, str]) -> None:
    body = create(codex_client, admin, account_number="620547", name="Acme Dental",
                  contract_term_length="2 Year", contract_start_date="2025-03-01",
                  domains=["AcmeDental.example", "acmedental.example"])
    assert body["contract_end_date"] == "2027-02-28"
    assert body["domains"] == ["acmedental.example"]
    create(codex_client, admin, account_number="100002", name="Beta Law")
    listed = codex_client.get("/api/companies?sort=-name", headers=admin).get_json()
    assert [item["name"] for item in listed["items"]] == ["Beta Law", "Acme Dental"]
    assert listed["total"] == 2
    found = codex_client.get("/api/companies?q=dent", headers=admin).get_json()
    assert [item["account_number"] for item in found["items"]] == ["620547"]


def test_bad_input_names_the_field(codex_client: FlaskClient, admin: dict[str, str]) -> None:
    response = codex_client.post("/api/companies", json={"account_number": "1",
                                                         "name": "X",
                                                         "compliance_level": "secret"},
                                 headers=admin)
    assert response.status_code == 422
    assert "compliance_level" in response.get_json()["errors"]["json"]
    response = codex_client.get("/api/companies?sort=password", headers=admin)
    assert response.status_code == 400
    assert "sort" in response.get_json()["errors"]["query"]
    response = codex_client.get("/api/companies?limit=100000", headers=admin)
    assert response.status_code == 400 and "limit" in response.get_json()["detail"]
    create(codex_client, admin, account_number="1", name="One")
    response = codex_client.post("/api/companies", json={"account_number": "1", "name": "Two"},
                                 headers=admin)
    assert response.status_code == 409
    assert "account_number" in response.get_json()["errors"]["json"]


def test_hierarchy_refuses_cycles(codex_client: FlaskClient, admin: dict[str, str]) -> None:
    create(codex_client, admin, account_number="P", name="Parent Group")
    create(codex_client, admin, account_number="C", name="Child Clinic",
           parent_account_number="P")
    create(codex_client, admin, account_number="G", name="Grandchild",
           parent_account_number="C")
    body = codex_client.get("/api/companies/G", headers=admin).get_json()
    assert [item["account_number"] for item in body["ancestors"]] == ["P", "C"]
    for parent in ("G", "P"):  # its grandchild, itself
        response = codex_client.patch("/api/companies/P", json={"parent_account_number": parent},
                                      headers=admin)
        assert response.status_code == 422
        assert "parent_account_number" in response.get_json()["errors"]["json"]
    children = codex_client.get("/api/companies/P/children", headers=admin).get_json()
    assert [child["account_number"] for child in children] == ["C"]


def test_delete_refused_until_archived(codex_client: FlaskClient, admin: dict[str, str],
                                       as_user: Headers) -> None:
    create(codex_client, admin, account_number="E", name="Empty")
    create(codex_client, admin, account_number="P", name="Parent")
    create(codex_client, admin, account_number="K", name="Kid", parent_account_number="P")
    assert codex_client.delete("/api/companies/E", headers=as_user("technician")
                               ).status_code == 403
    assert codex_client.delete("/api/companies/E", headers=admin).status_code == 200
    response = codex_client.delete("/api/companies/P", headers=admin)
    assert response.status_code == 409 and "child companies" in response.get_json()["detail"]
    assert codex_client.get("/api/companies/P", headers=admin).status_code == 200


def test_delete_of_a_company_with_data(codex_client: FlaskClient, admin: dict[str, str],
                                       codex_app: Any) -> None:
    from hivematrix.codex.models import Asset, Company

    create(codex_client, admin, account_number="A", name="With assets")
    with codex_app.app_context():
        from hivematrix.common.db import get_session

        session = get_session()
        company = session.query(Company).filter_by(account_number="A").one()
        session.add(Asset(company_id=company.id, hostname="PC1", billing_type="Workstation"))
        session.commit()
    response = codex_client.delete("/api/companies/A", headers=admin)
    assert response.status_code == 409
    assert "1 assets" in response.get_json()["detail"]
    assert codex_client.post("/api/companies/A/archive", headers=admin).status_code == 200
    response = codex_client.delete("/api/companies/A", headers=admin)
    assert response.status_code == 200
    assert response.get_json()["removed"]["assets"] == 1
    assert codex_client.get("/api/companies/A", headers=admin).status_code == 404


def test_permission_levels(codex_client: FlaskClient, admin: dict[str, str],
                           as_user: Headers, as_service: Callable[[str], dict[str, str]]) -> None:
    create(codex_client, admin, account_number="620547", name="Acme Dental")
    create(codex_client, admin, account_number="100002", name="Beta Law")
    technician = as_user("technician")
    assert codex_client.patch("/api/companies/620547", json={"main_phone": "555-0100"},
                              headers=technician).status_code == 200
    for level in ("billing", "client"):
        response = codex_client.patch("/api/companies/620547", json={"name": "Hacked"},
                                      headers=as_user(level, account_number="620547"))
        assert response.status_code == 403
        assert codex_client.post("/api/companies", json={"account_number": "9", "name": "N"},
                                 headers=as_user(level)).status_code == 403
    client = as_user("client", account_number="620547")
    listed = codex_client.get("/api/companies", headers=client).get_json()
    assert [item["account_number"] for item in listed["items"]] == ["620547"]
    assert codex_client.get("/api/companies/620547", headers=client).status_code == 200
    assert codex_client.get("/api/companies/100002", headers=client).status_code == 404
    assert codex_client.get("/api/companies/100002/assets", headers=client).status_code == 404
    no_company = as_user("client")
    assert codex_client.get("/api/companies", headers=no_company).get_json()["total"] == 0
    assert codex_client.get("/api/companies", headers=as_service("ledger")).status_code == 200
    assert codex_client.get("/api/companies", headers=as_service("template")).status_code == 403
    assert codex_client.post("/api/companies", json={"account_number": "9", "name": "N"},
                             headers=as_service("ledger")).status_code == 403
    assert codex_client.get("/api/companies").status_code == 401
