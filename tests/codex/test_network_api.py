"""Locations, network equipment, links and the topology: rules and permissions."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from flask.testing import FlaskClient

from tests.codex.seeding import Headers, company, field_errors, ok


@pytest.fixture
def admin(as_user: Headers) -> dict[str, str]:
    return as_user("admin")


@pytest.fixture
def companies(codex_client: FlaskClient, admin: dict[str, str]) -> None:
    company(codex_client, admin, "620547", "Acme Dental")
    company(codex_client, admin, "100002", "Beta Law")


def location(client: FlaskClient, headers: dict[str, str], account_number: str,
             **fields: Any) -> Any:
    return ok(client.post(f"/api/companies/{account_number}/locations", json=fields,
                          headers=headers), 201)


def device(client: FlaskClient, headers: dict[str, str], **fields: Any) -> Any:
    values = {"account_number": "620547", "kind": "switch", **fields}
    return ok(client.post("/api/network_equipment", json=values, headers=headers), 201)


def link(client: FlaskClient, headers: dict[str, str], from_id: int, **fields: Any) -> Any:
    return client.post(f"/api/network_equipment/{from_id}/links", json=fields, headers=headers)


def test_locations(codex_client: FlaskClient, admin: dict[str, str], as_user: Headers,
                   companies: None) -> None:
    main = location(codex_client, admin, "620547", name=" Main Office ", address="1 Main St")
    assert (main["name"], main["account_number"]) == ("Main Office", "620547")
    location(codex_client, admin, "100002", name="Main Office")  # another company: fine
    assert "name" in field_errors(codex_client.post(
        "/api/companies/620547/locations", json={"name": "Main Office"}, headers=admin), 409)
    assert "name" in field_errors(codex_client.post(
        "/api/companies/620547/locations", json={"name": "  "}, headers=admin))
    assert codex_client.post("/api/companies/404/locations", json={"name": "X"},
                             headers=admin).status_code == 404
    annex = location(codex_client, admin, "620547", name="Annex")
    assert "name" in field_errors(codex_client.patch(
        f"/api/locations/{annex['id']}", json={"name": "Main Office"}, headers=admin), 409)
    body = ok(codex_client.patch(f"/api/locations/{annex['id']}", headers=as_user("technician"),
                                 json={"phone": "555-0101"}))
    assert body["phone"] == "555-0101"
    listed = ok(codex_client.get("/api/companies/620547/locations", headers=admin))
    assert [item["name"] for item in listed] == ["Annex", "Main Office"]
    # A location with equipment placed there stays until the equipment moves.
    switch = device(codex_client, admin, name="SW1", location_id=main["id"])
    response = codex_client.delete(f"/api/locations/{main['id']}", headers=admin)
    assert response.status_code == 409 and "1 network devices" in response.get_json()["detail"]
    ok(codex_client.patch(f"/api/network_equipment/{switch['id']}",
                          json={"location_id": annex["id"]}, headers=admin))
    ok(codex_client.delete(f"/api/locations/{main['id']}", headers=admin))
    assert codex_client.get(f"/api/locations/{main['id']}", headers=admin).status_code == 404


def test_devices_links_and_topology(codex_client: FlaskClient, admin: dict[str, str],
                                    companies: None) -> None:
    office = location(codex_client, admin, "620547", name="Office")
    beta_site = location(codex_client, admin, "100002", name="Beta HQ")
    firewall = device(codex_client, admin, kind="firewall", name="FW1",
                      management_ip="192.168.1.1", model="FortiGate 60F",
                      location_id=office["id"])
    assert (firewall["location_name"], firewall["management_ip"]) == ("Office", "192.168.1.1")
    switch = device(codex_client, admin, name="SW1", management_ip="192.168.1.2")
    access_point = device(codex_client, admin, kind="access_point", name="AP1")
    beta_router = device(codex_client, admin, account_number="100002", kind="router",
                         name="BETA-RTR")

    uplink = ok(link(codex_client, admin, switch["id"], to_device_id=firewall["id"],
                     from_port="ge-0/1", to_port="port2"), 201)
    assert uplink["kind"] == "uplink"
    ok(link(codex_client, admin, access_point["id"], to_device_id=switch["id"],
            from_port="eth0", to_port="ge-0/8", kind="port"), 201)
    assert "to_device_id" in field_errors(link(codex_client, admin, switch["id"],
                                               to_device_id=switch["id"], from_port="x"))
    errors = field_errors(link(codex_client, admin, switch["id"],
                               to_device_id=beta_router["id"], from_port="ge-0/2"))
    assert "another company" in errors["to_device_id"][0]
    assert "to_device_id" in field_errors(link(codex_client, admin, switch["id"],
                                               to_device_id=9999))
    assert "from_port" in field_errors(link(codex_client, admin, switch["id"],
                                            to_device_id=firewall["id"], from_port="ge-0/1"),
                                       409)
    # ge-0/8 of the switch already carries the access point's cable.
    assert "from_port" in field_errors(link(codex_client, admin, switch["id"],
                                            to_device_id=firewall["id"], from_port="ge-0/8"),
                                       409)
    assert "to_port" in field_errors(link(codex_client, admin, access_point["id"],
                                          to_device_id=firewall["id"], from_port="eth1",
                                          to_port="port2"), 409)
    assert "kind" in field_errors(link(codex_client, admin, access_point["id"],
                                       to_device_id=firewall["id"], kind="wifi"))

    topology = ok(codex_client.get("/api/companies/620547/topology", headers=admin))
    assert [node["name"] for node in topology["nodes"]] == ["AP1", "FW1", "SW1"]
    edges = {(edge["from"], edge["to"], edge["from_port"], edge["to_port"])
             for edge in topology["edges"]}
    assert edges == {(switch["id"], firewall["id"], "ge-0/1", "port2"),
                     (access_point["id"], switch["id"], "eth0", "ge-0/8")}
    fw_node = next(node for node in topology["nodes"] if node["name"] == "FW1")
    assert fw_node["location_name"] == "Office" and fw_node["kind"] == "firewall"
    one = ok(codex_client.get(f"/api/network_equipment/{switch['id']}", headers=admin))
    assert len(one["links"]) == 2

    # Locations belong to the device's company; a cabled device stays with its company.
    assert "location_id" in field_errors(codex_client.patch(
        f"/api/network_equipment/{switch['id']}", json={"location_id": beta_site["id"]},
        headers=admin))
    assert "account_number" in field_errors(codex_client.patch(
        f"/api/network_equipment/{switch['id']}", json={"account_number": "100002"},
        headers=admin), 409)
    assert "management_ip" in field_errors(codex_client.patch(
        f"/api/network_equipment/{switch['id']}", json={"management_ip": "not-an-ip"},
        headers=admin))
    moved = ok(codex_client.patch(f"/api/network_equipment/{beta_router['id']}",
                                  json={"account_number": "620547", "firmware": "7.2.5"},
                                  headers=admin))
    assert (moved["account_number"], moved["firmware"]) == ("620547", "7.2.5")

    ok(codex_client.delete(f"/api/network_links/{uplink['id']}", headers=admin))
    assert codex_client.delete(f"/api/network_links/{uplink['id']}",
                               headers=admin).status_code == 404
    body = ok(codex_client.delete(f"/api/network_equipment/{switch['id']}", headers=admin))
    assert body["removed"] == {"links": 1}
    assert ok(codex_client.get("/api/companies/620547/topology", headers=admin))["edges"] == []


def test_listing_filters(codex_client: FlaskClient, admin: dict[str, str],
                         companies: None) -> None:
    office = location(codex_client, admin, "620547", name="Office")
    device(codex_client, admin, kind="firewall", name="FW1", location_id=office["id"],
           management_ip="10.0.0.1")
    device(codex_client, admin, name="SW1", model="Aruba 2930F")
    device(codex_client, admin, account_number="100002", kind="router", name="BETA-RTR")

    def names(query: str) -> list[str]:
        body = ok(codex_client.get(f"/api/network_equipment?{query}", headers=admin))
        return [item["name"] for item in body["items"]]

    assert names("") == ["BETA-RTR", "FW1", "SW1"]
    assert names("sort=-name&limit=1") == ["SW1"]
    assert names("account_number=620547") == ["FW1", "SW1"]
    assert names("kind=router") == ["BETA-RTR"]
    assert names(f"location={office['id']}") == ["FW1"]
    assert names("q=aruba") == ["SW1"]
    assert names("q=10.0.0") == ["FW1"]
    listed = ok(codex_client.get("/api/companies/620547/network_equipment", headers=admin))
    assert [item["name"] for item in listed] == ["FW1", "SW1"]
    for query, parameter in (("kind=toaster", "kind"), ("location=x", "location"),
                             ("sort=secret", "sort")):
        response = codex_client.get(f"/api/network_equipment?{query}", headers=admin)
        assert response.status_code == 400 and parameter in response.get_json()["errors"][
            "query"]
    assert "kind" in field_errors(codex_client.post("/api/network_equipment", headers=admin,
                                                    json={"account_number": "620547",
                                                          "kind": "toaster", "name": "X"}))
    assert "account_number" in field_errors(codex_client.post(
        "/api/network_equipment", headers=admin,
        json={"account_number": "404", "kind": "switch", "name": "X"}))


def test_permission_levels(codex_client: FlaskClient, admin: dict[str, str], as_user: Headers,
                           as_service: Callable[[str], dict[str, str]],
                           companies: None) -> None:
    technician = as_user("technician")
    office = location(codex_client, technician, "620547", name="Office")
    beta_office = location(codex_client, admin, "100002", name="Beta HQ")
    firewall = device(codex_client, technician, kind="firewall", name="FW1")
    switch = device(codex_client, technician, name="SW1")
    beta = device(codex_client, admin, account_number="100002", name="BETA-SW")
    uplink = ok(link(codex_client, technician, switch["id"], to_device_id=firewall["id"]), 201)
    ok(codex_client.patch(f"/api/network_equipment/{switch['id']}", json={"notes": "rack 2"},
                          headers=technician))
    writes: list[tuple[str, str, Any]] = [
        ("post", "/api/companies/620547/locations", {"name": "New"}),
        ("patch", f"/api/locations/{office['id']}", {"phone": "1"}),
        ("delete", f"/api/locations/{office['id']}", None),
        ("post", "/api/network_equipment", {"account_number": "620547", "kind": "switch",
                                            "name": "N"}),
        ("patch", f"/api/network_equipment/{switch['id']}", {"notes": "x"}),
        ("delete", f"/api/network_equipment/{switch['id']}", None),
        ("post", f"/api/network_equipment/{firewall['id']}/links",
         {"to_device_id": switch["id"], "from_port": "p9"}),
        ("delete", f"/api/network_links/{uplink['id']}", None),
    ]
    for headers in (as_user("billing"), as_user("client", account_number="620547"),
                    as_service("brainhair"), as_service("knowledgetree")):
        for method, path, body in writes:
            response = getattr(codex_client, method)(path, json=body, headers=headers)
            assert response.status_code == 403, (method, path)
    for method, path, body in writes:
        assert getattr(codex_client, method)(path, json=body).status_code == 401

    reads_own = ["/api/companies/620547/topology", "/api/companies/620547/network_equipment",
                 f"/api/network_equipment/{switch['id']}", f"/api/locations/{office['id']}"]
    reads_other = ["/api/companies/100002/topology", "/api/companies/100002/network_equipment",
                   f"/api/network_equipment/{beta['id']}", f"/api/locations/{beta_office['id']}"]
    client = as_user("client", account_number="620547")
    for path in reads_own:
        ok(codex_client.get(path, headers=client))
    for path in reads_other:
        response = codex_client.get(path, headers=client)
        assert response.status_code == 404, path
    listed = ok(codex_client.get("/api/network_equipment", headers=client))
    assert [item["name"] for item in listed["items"]] == ["FW1", "SW1"]
    assert ok(codex_client.get("/api/network_equipment", headers=as_user("client")))[
        "total"] == 0
    for headers in (as_user("billing"), as_service("brainhair"), as_service("knowledgetree")):
        assert ok(codex_client.get("/api/network_equipment", headers=headers))["total"] == 3
        for path in reads_other:
            ok(codex_client.get(path, headers=headers))
    ok(codex_client.get(f"/api/locations/{office['id']}", headers=as_service("ledger")))
    for service in ("ledger", "beacon", "template"):
        for path in ["/api/network_equipment", *reads_own[:3]]:
            response = codex_client.get(path, headers=as_service(service))
            assert response.status_code == 403, (service, path)
    assert codex_client.get("/api/network_equipment").status_code == 401
