"""`/api/assets/<id>/rmm...` against the Datto contract fake over real HTTP: live details,
a quick job started and followed to its output, and who may do what."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from hivematrix.codex import SERVICE, create_app
from hivematrix.codex.models import Asset
from hivematrix.common.testing import migrated_database
from tests.codex import seeding
from tests.codex.fakes.datto import API_KEY, API_SECRET, DattoFake, seeded

Headers = Callable[..., dict[str, str]]


@pytest.fixture
def fake() -> DattoFake:
    return seeded()


@pytest.fixture
def datto_url(fake: DattoFake) -> Iterator[str]:
    with fake.serve() as url:
        yield url


def rmm_settings(url: str) -> dict[str, Any]:
    return {"CODEX_RMM_PROVIDER": "datto", "DATTO_URL": url, "DATTO_API_KEY": API_KEY,
            "DATTO_API_SECRET": API_SECRET, "CODEX_OUTBOUND_ALLOWLIST": "127.0.0.1",
            "CODEX_HTTP_RETRIES": 1}


@pytest.fixture
def database_url(tmp_path: Path) -> Iterator[str]:
    assert SERVICE.migrations
    with migrated_database(SERVICE.migrations, f"sqlite:///{tmp_path}/codex.db") as url:
        yield url


@pytest.fixture
def app(service_settings: dict[str, Any], database_url: str, datto_url: str) -> Iterator[Flask]:
    app = create_app({**service_settings, "DATABASE_URL": database_url,
                      **rmm_settings(datto_url)})
    yield app
    app.extensions["hivematrix.db"].dispose()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def ids(app: Flask, client: FlaskClient, fake: DattoFake, as_user: Headers) -> dict[str, Any]:
    """Acme with its Datto server and a manual (not RMM-managed) printer; Beta's laptop."""
    admin = as_user("admin")
    seeding.company(client, admin, "100001", "Acme Dental")
    seeding.company(client, admin, "100002", "Beta Law")
    dental = next(site["uid"] for site in fake.sites if site["name"] == "Acme Dental")
    law = next(site["uid"] for site in fake.sites if site["name"] != "Acme Dental")
    server_uid = fake.devices[dental][0]["uid"]
    with seeding.database(app) as session:
        acme = seeding.company_id(session, "100001")
        beta = seeding.company_id(session, "100002")
        server = Asset(company_id=acme, hostname="ACME-DC01", device_category="Server",
                       billing_type="Server", source="rmm", rmm_source="datto",
                       rmm_device_id=server_uid)
        printer = Asset(company_id=acme, hostname="ACME-PRN9", device_category="Printer",
                        billing_type="Printer", source="manual")
        laptop = Asset(company_id=beta, hostname="BAKER-ESX1", device_category="Server",
                       billing_type="Server", source="rmm", rmm_source="datto",
                       rmm_device_id=fake.devices[law][0]["uid"])
        session.add_all([server, printer, laptop])
        session.flush()
        return {"server": server.id, "printer": printer.id, "beta": laptop.id,
                "server_uid": server_uid}


def problem_of(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, (response.status_code, response.get_data(True))
    assert response.mimetype == "application/problem+json"
    body: dict[str, Any] = response.get_json()
    return body


def test_live_details_are_what_datto_reports_now(client: FlaskClient, ids: dict[str, Any],
                                                 fake: DattoFake, as_user: Headers) -> None:
    response = client.get(f"/api/assets/{ids['server']}/rmm", headers=as_user("billing"))
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["asset"] == {"id": ids["server"], "hostname": "ACME-DC01",
                             "account_number": "100001", "rmm_source": "datto",
                             "rmm_device_id": ids["server_uid"]}
    device = body["device"]
    assert device["hostname"] == "ACME-DC01" and device["online"] is True
    assert device["patch_management"]["status"] == "FullyPatched"
    assert device["last_seen"] == "2026-11-02T08:15:30.123000+00:00"
    assert device["backup_bytes"] == 1649267441664
    assert f"GET /api/v2/device/{ids['server_uid']}" in fake.calls


def test_the_assistant_service_may_read_but_not_other_services(
        client: FlaskClient, ids: dict[str, Any], tokens: Any) -> None:
    as_brainhair = tokens.headers(tokens.service("brainhair", "codex"))
    assert client.get(f"/api/assets/{ids['server']}/rmm", headers=as_brainhair).status_code \
        == 200
    as_ledger = tokens.headers(tokens.service("ledger", "codex"))
    assert client.get(f"/api/assets/{ids['server']}/rmm", headers=as_ledger).status_code \
        == 403


def test_a_quick_job_runs_and_is_followed_to_its_output(
        client: FlaskClient, ids: dict[str, Any], fake: DattoFake, as_user: Headers) -> None:
    fake.job_polls_to_complete = 2
    component = fake.add_component("Restart service", ("ServiceName",))
    tech = as_user("technician", preferred_username="tech-1")
    started = client.post(f"/api/assets/{ids['server']}/rmm/jobs", headers=tech, json={
        "component_uid": component, "variables": {"ServiceName": "Spooler"},
        "job_name": "Restart spooler"})
    assert started.status_code == 201, started.get_json()
    job = started.get_json()["job"]
    assert job["status"] == "active" and job["device_uid"] == ids["server_uid"]
    assert fake.writes == [("PUT", f"/api/v2/device/{ids['server_uid']}/quickjob", {
        "jobName": "Restart spooler (by tech-1)",
        "jobComponent": {"componentUid": component,
                         "variables": [{"name": "ServiceName", "value": "Spooler"}]}})]
    path = f"/api/assets/{ids['server']}/rmm/jobs/{job['job_uid']}"
    first = client.get(path, headers=tech).get_json()
    assert first["job"]["status"] == "active" and first["results"] is None
    done = client.get(path, headers=tech).get_json()
    assert done["job"]["status"] == "completed"
    assert done["results"]["status"] == "Success"
    assert done["results"]["components"][0]["stdout"] == \
        "Restart service ran with ServiceName=Spooler"


def test_billing_users_and_clients_cannot_run_jobs(client: FlaskClient, ids: dict[str, Any],
                                                   fake: DattoFake, as_user: Headers) -> None:
    component = fake.add_component("Restart service", ("ServiceName",))
    body = {"component_uid": component}
    for headers in (as_user("billing"), as_user("client", account_number="100001")):
        response = client.post(f"/api/assets/{ids['server']}/rmm/jobs", headers=headers,
                               json=body)
        assert response.status_code == 403
    assert fake.jobs == {}
    # A client does not even get live details of their own machine from the RMM.
    own = client.get(f"/api/assets/{ids['server']}/rmm",
                     headers=as_user("client", account_number="100001"))
    assert own.status_code == 403


def test_bad_input_is_refused_naming_the_field(client: FlaskClient, ids: dict[str, Any],
                                               fake: DattoFake, as_user: Headers) -> None:
    admin = as_user("admin")
    missing = problem_of(client.post(f"/api/assets/{ids['server']}/rmm/jobs", headers=admin,
                                     json={"variables": {}}), 422)
    assert "component_uid" in missing["errors"]["json"]
    odd = problem_of(client.post(f"/api/assets/{ids['server']}/rmm/jobs", headers=admin,
                                 json={"component_uid": "../../account"}), 422)
    assert "component_uid" in odd["errors"]["json"]
    bad_job = problem_of(client.get(f"/api/assets/{ids['server']}/rmm/jobs/bad.job",
                                    headers=admin), 400)
    assert "job_uid" in bad_job["errors"]["path"]
    assert fake.jobs == {} and fake.writes == []


def test_datto_refusing_a_job_is_a_502_with_its_reason(
        client: FlaskClient, ids: dict[str, Any], fake: DattoFake, as_user: Headers) -> None:
    component = fake.add_component("Restart service", ("ServiceName",))
    body = problem_of(client.post(f"/api/assets/{ids['server']}/rmm/jobs",
                                  headers=as_user("admin"),
                                  json={"component_uid": component,
                                        "variables": {"Colour": "blue"}}), 502)
    assert "Unknown component variable(s): Colour" in body["detail"]
    assert fake.jobs == {}


def test_assets_without_an_rmm_device_and_unknown_ones(
        client: FlaskClient, ids: dict[str, Any], as_user: Headers) -> None:
    admin = as_user("admin")
    manual = problem_of(client.get(f"/api/assets/{ids['printer']}/rmm", headers=admin), 409)
    assert "not managed by an RMM" in manual["detail"]
    problem_of(client.get("/api/assets/999999/rmm", headers=admin), 404)


def test_no_rmm_configured_is_a_503(service_settings: dict[str, Any], database_url: str,
                                    as_user: Headers) -> None:
    app = create_app({**service_settings, "DATABASE_URL": database_url})
    try:
        client = app.test_client()
        admin = as_user("admin")
        seeding.company(client, admin, "100001", "Acme Dental")
        with seeding.database(app) as session:
            asset = Asset(company_id=seeding.company_id(session, "100001"),
                          hostname="ACME-DC01", billing_type="Server", source="rmm",
                          rmm_source="datto", rmm_device_id="0b6e7a52-0000-4000-8000-0001")
            session.add(asset)
            session.flush()
            asset_id = asset.id
        body = problem_of(client.get(f"/api/assets/{asset_id}/rmm", headers=admin), 503)
        assert "no RMM is configured" in body["detail"]
    finally:
        app.extensions["hivematrix.db"].dispose()
