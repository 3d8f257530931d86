"""`/api/sync/...` with the Freshservice contract fake configured in the app's settings.

A sync runs in a background thread of the app: the start answers 202 with the job id at once,
and the test follows the job through `/api/sync/jobs/<id>` until it ends (a bounded loop of
polls, never a timed assertion).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from hivematrix.codex import create_app
from hivematrix.codex.sync import runner
from hivematrix.common.testing import serve_wsgi
from tests.codex.fakes.freshservice import API_KEY, FreshserviceFake

Headers = Callable[..., dict[str, str]]
#: Polls of a job before giving up on it (each a few milliseconds apart).
MAX_POLLS = 2000


class Gate:
    """WSGI middleware holding requests to one path until released: a sync that is reading
    that listing stays running while the test looks at it."""

    def __init__(self, app: Any, path: str) -> None:
        self.app = app
        self.path = path
        self.entered = threading.Event()
        self.opened = threading.Event()

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        if environ.get("PATH_INFO") == self.path and not self.opened.is_set():
            self.entered.set()
            self.opened.wait(60)
        return self.app(environ, start_response)


@pytest.fixture
def fake() -> FreshserviceFake:
    return FreshserviceFake().seed()


@pytest.fixture
def gate(fake: FreshserviceFake) -> Iterator[Gate]:
    gate = Gate(fake.wsgi(), "/api/v2/departments")
    gate.opened.set()  # open unless a test closes it
    yield gate
    gate.opened.set()


@pytest.fixture
def sync_app(service_settings: dict[str, Any], codex_db_url: str,
             gate: Gate) -> Iterator[Flask]:
    with serve_wsgi(gate) as url:
        app = create_app({**service_settings, "DATABASE_URL": codex_db_url,
                          "CODEX_OUTBOUND_ALLOWLIST": "127.0.0.1",
                          "CODEX_PSA_PROVIDER": "freshservice", "FRESHSERVICE_URL": url,
                          "FRESHSERVICE_API_KEY": API_KEY, "CODEX_HTTP_RETRIES": 2})
        yield app
        app.extensions["hivematrix.db"].dispose()


@pytest.fixture
def client(sync_app: Flask) -> FlaskClient:
    return sync_app.test_client()


def start(client: FlaskClient, kind: str, headers: dict[str, str], **body: Any) -> Any:
    response = client.post(f"/api/sync/{kind}", json=body, headers=headers)
    assert response.status_code == 202, response.get_json()
    started = response.get_json()
    assert started["status"] == "running"
    assert started["status_url"] == f"/api/sync/jobs/{started['job_id']}"
    return started["job_id"]


def finished(client: FlaskClient, job_id: str, headers: dict[str, str]) -> dict[str, Any]:
    """Poll a job until it is no longer running."""
    for _ in range(MAX_POLLS):
        response = client.get(f"/api/sync/jobs/{job_id}", headers=headers)
        assert response.status_code == 200, response.get_json()
        job: dict[str, Any] = response.get_json()
        if job["status"] != "running":
            return job
        time.sleep(0.01)
    raise AssertionError(f"job {job_id} still running after {MAX_POLLS} polls: {job}")


def test_a_psa_sync_runs_in_the_background_and_is_recorded(
        client: FlaskClient, as_user: Headers, fake: FreshserviceFake) -> None:
    admin = as_user("admin")
    job_id = start(client, "psa", admin)
    job = finished(client, job_id, admin)
    assert job["status"] == "succeeded", job["log"]
    assert (job["kind"], job["provider"], job["full"], job["triggered_by"]) == (
        "psa", "freshservice", False, "admin-user")
    assert job["counts"]["companies"]["created"] == 3
    assert job["counts"]["contacts"]["created"] == 4
    assert job["counts"]["agents"]["created"] == 2
    assert job["finished_at"] and job["error"] == ""
    # The whole log: who started it, each listing, the account numbers written back.
    log = job["log"]
    assert "psa sync from freshservice started by admin-user" in log
    assert "companies: 3 read" in log and "contacts: 4 read" in log
    assert "account number 620548 written to the PSA" in log
    assert log.rstrip().endswith("psa sync finished")
    # Again: the same rows, nothing new (idempotent), and no second write-back.
    again = finished(client, start(client, "psa", admin), admin)
    assert again["counts"]["companies"] == {"created": 0, "updated": 0, "unchanged": 3,
                                            "retired": 0, "failed": 0}
    assert len(fake.writes) == 2
    history = client.get("/api/sync/jobs", headers=admin).get_json()
    assert [item["id"] for item in history] == [again["id"], job_id]
    assert "log" not in history[0]


def test_technicians_refresh_tickets_and_admins_reread_the_history(
        client: FlaskClient, as_user: Headers, fake: FreshserviceFake) -> None:
    technician = as_user("technician")
    job = finished(client, start(client, "tickets", technician), technician)
    assert job["status"] == "succeeded", job["log"]
    assert job["triggered_by"] == "technician-user" and job["full"] is False
    assert job["counts"]["tickets"]["created"] == 6
    assert "tickets: full history" in job["log"]  # no earlier run: everything
    # A technician may not ask for the whole history; an admin may.
    refused = client.post("/api/sync/tickets", json={"full": True}, headers=technician)
    assert refused.status_code == 403
    assert "admin" in refused.get_json()["detail"]
    admin = as_user("admin")
    full = finished(client, start(client, "tickets", admin, full=True), admin)
    assert full["full"] is True and "tickets: full history" in full["log"]
    assert full["counts"]["tickets"]["unchanged"] == 6
    incremental = finished(client, start(client, "tickets", technician), technician)
    assert "tickets: updated since" in incremental["log"]
    assert fake.queries("/tickets")[-1]["updated_since"]


def test_a_second_start_while_running_is_refused(
        client: FlaskClient, as_user: Headers, gate: Gate) -> None:
    admin = as_user("admin")
    gate.opened.clear()
    job_id = start(client, "psa", admin)
    assert gate.entered.wait(30), "the sync never reached the departments listing"
    refused = client.post("/api/sync/psa", headers=admin)
    assert refused.status_code == 409
    body = refused.get_json()
    assert body["job_id"] == job_id and "already running" in body["detail"]
    running = client.get(f"/api/sync/jobs/{job_id}", headers=admin).get_json()
    assert running["status"] == "running" and running["finished_at"] is None
    gate.opened.set()
    assert finished(client, job_id, admin)["status"] == "succeeded"
    # Once it ended, a new run starts.
    assert finished(client, start(client, "psa", admin), admin)["status"] == "succeeded"


def test_simultaneous_starts_of_one_kind_run_it_once(
        sync_app: Flask, as_user: Headers, gate: Gate) -> None:
    """Starts racing in several workers (threads here, each with its own connection)."""
    admin = as_user("admin")
    gate.opened.clear()
    barrier = threading.Barrier(6)
    answers: list[int] = []

    def press() -> None:
        client = sync_app.test_client()
        barrier.wait()
        answers.append(client.post("/api/sync/psa", headers=admin).status_code)

    threads = [threading.Thread(target=press) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    gate.opened.set()
    assert sorted(answers) == [202, 409, 409, 409, 409, 409]
    client = sync_app.test_client()
    (job,) = client.get("/api/sync/jobs", headers=admin).get_json()
    assert finished(client, job["id"], admin)["status"] == "succeeded"


def test_a_job_recorded_as_running_elsewhere_blocks_its_kind_only(
        client: FlaskClient, as_user: Headers, sync_app: Flask) -> None:
    """A run of another process (the CLI, another worker) shows only as its job row."""
    other = runner.start_job(sync_app.extensions["hivematrix.db"], "psa", "freshservice",
                             triggered_by="cli")
    admin = as_user("admin")
    refused = client.post("/api/sync/psa", headers=admin)
    assert refused.status_code == 409 and refused.get_json()["job_id"] == other
    assert finished(client, start(client, "tickets", admin), admin)["status"] == "succeeded"


def test_a_vendor_refusing_the_key_fails_the_job_with_the_reason(
        client: FlaskClient, as_user: Headers, fake: FreshserviceFake) -> None:
    fake.api_key = "rotated-key"
    admin = as_user("admin")
    job = finished(client, start(client, "psa", admin), admin)
    assert job["status"] == "failed"
    assert "401" in job["error"] and "401" in job["log"]


def test_a_malformed_record_makes_the_job_partial(
        client: FlaskClient, as_user: Headers, fake: FreshserviceFake) -> None:
    fake.requesters.append({"id": "21-x", "first_name": "Broken"})
    admin = as_user("admin")
    job = finished(client, start(client, "psa", admin), admin)
    assert job["status"] == "partial"
    assert job["counts"]["contacts"]["failed"] == 1
    assert job["counts"]["contacts"]["created"] == 4
    assert "contacts 21-x: id '21-x' is not an id" in job["log"]


def test_unconfigured_vendors_unknown_kinds_and_jobs(codex_client: FlaskClient,
                                                     as_user: Headers) -> None:
    admin = as_user("admin")
    for kind, setting in (("psa", "CODEX_PSA_PROVIDER"), ("tickets", "CODEX_PSA_PROVIDER"),
                          ("rmm", "CODEX_RMM_PROVIDER")):
        response = codex_client.post(f"/api/sync/{kind}", headers=admin)
        assert response.status_code == 503, kind
        assert setting in response.get_json()["detail"]
    unknown = codex_client.post("/api/sync/invoices", headers=admin)
    assert unknown.status_code == 404 and "psa, tickets, rmm, agents" in unknown.get_json()[
        "detail"]
    assert codex_client.get("/api/sync/jobs/no-such-job", headers=admin).status_code == 404
    assert codex_client.get("/api/sync/jobs", headers=admin).get_json() == []


def test_full_must_be_a_boolean(client: FlaskClient, as_user: Headers) -> None:
    admin = as_user("admin")
    for body in ({"full": "yes"}, {"full": 1}, {"full": None}):
        response = client.post("/api/sync/tickets", json=body, headers=admin)
        assert response.status_code == 422, body
        assert response.get_json()["errors"]["json"] == {"full": ["Must be true or false."]}
    not_an_object = client.post("/api/sync/tickets", json=[True], headers=admin)
    assert not_an_object.status_code == 422
    assert "json" in not_an_object.get_json()["errors"]
    assert client.get("/api/sync/jobs", headers=admin).get_json() == []


def test_job_listing_parameters_are_checked(client: FlaskClient, as_user: Headers) -> None:
    admin = as_user("admin")
    bad_kind = client.get("/api/sync/jobs?kind=invoices", headers=admin)
    assert bad_kind.status_code == 400 and "kind" in bad_kind.get_json()["errors"]["query"]
    bad_limit = client.get("/api/sync/jobs?limit=500", headers=admin)
    assert bad_limit.status_code == 400 and "limit" in bad_limit.get_json()["errors"]["query"]
    job_id = finished(client, start(client, "tickets", admin), admin)["id"]
    assert [job["id"] for job in client.get("/api/sync/jobs?kind=tickets&limit=1",
                                            headers=admin).get_json()] == [job_id]
    assert client.get("/api/sync/jobs?kind=psa", headers=admin).get_json() == []


def test_technicians_may_not_start_master_data_syncs(client: FlaskClient,
                                                     as_user: Headers) -> None:
    for kind in ("psa", "rmm", "agents"):
        response = client.post(f"/api/sync/{kind}", headers=as_user("technician"))
        assert response.status_code == 403
        assert response.get_json()["detail"] == (f"Starting a {kind} sync requires "
                                                 "permission level: admin.")


def test_billing_and_clients_may_not_start_or_read_jobs(client: FlaskClient,
                                                        as_user: Headers) -> None:
    admin = as_user("admin")
    job_id = finished(client, start(client, "tickets", admin), admin)["id"]
    for level in ("billing", "client"):
        headers = as_user(level)
        for kind in ("tickets", "psa"):
            assert client.post(f"/api/sync/{kind}", headers=headers).status_code == 403
        assert client.get("/api/sync/jobs", headers=headers).status_code == 403
        assert client.get(f"/api/sync/jobs/{job_id}", headers=headers).status_code == 403
        # Billing sees what is configured and when it last ran; clients see nothing of it.
        expected = 200 if level == "billing" else 403
        assert client.get("/api/sync/status", headers=headers).status_code == expected
    assert len(client.get("/api/sync/jobs", headers=admin).get_json()) == 1


def test_services_read_per_route_and_never_start(client: FlaskClient, as_user: Headers,
                                                 as_service: Callable[[str], dict[str, str]]
                                                 ) -> None:
    job_id = finished(client, start(client, "tickets", as_user("admin")), as_user("admin"))["id"]
    for caller in ("beacon", "helm"):
        headers = as_service(caller)
        assert [job["id"] for job in client.get("/api/sync/jobs",
                                                headers=headers).get_json()] == [job_id]
        assert client.get(f"/api/sync/jobs/{job_id}", headers=headers).get_json()["log"]
        assert client.get("/api/sync/status", headers=headers).status_code == 200
    for caller in ("beacon", "helm", "brainhair", "ledger"):
        for kind in ("tickets", "psa"):
            response = client.post(f"/api/sync/{kind}", headers=as_service(caller))
            assert response.status_code == 403, (caller, kind)
    assert client.get("/api/sync/status", headers=as_service("brainhair")).status_code == 200
    for caller in ("brainhair", "ledger"):
        assert client.get("/api/sync/jobs", headers=as_service(caller)).status_code == 403
        assert client.get(f"/api/sync/jobs/{job_id}",
                          headers=as_service(caller)).status_code == 403
    assert client.get("/api/sync/status", headers=as_service("ledger")).status_code == 403
    # Without a token: a read is 401; a write is refused before that by the kit's CSRF
    # check (no bearer token means a browser form), and nothing starts.
    assert client.get("/api/sync/jobs").status_code == 401
    assert client.post("/api/sync/tickets").status_code == 400
    assert len(client.get("/api/sync/jobs", headers=as_user("admin")).get_json()) == 1


def test_status_per_kind(client: FlaskClient, as_user: Headers) -> None:
    admin = as_user("admin")
    before = client.get("/api/sync/status", headers=admin).get_json()
    assert before["scheduler"] is True
    assert set(before["kinds"]) == {"psa", "tickets", "rmm", "agents"}
    assert before["kinds"]["psa"] == {"provider": "freshservice", "every_minutes": 1440,
                                      "every_seconds": 86400.0, "last_job": None,
                                      "last_success_at": None}
    assert before["kinds"]["tickets"]["every_minutes"] == 5
    assert before["kinds"]["rmm"]["provider"] is None
    assert before["kinds"]["agents"]["provider"] == "identity"
    job = finished(client, start(client, "psa", admin), admin)
    after = client.get("/api/sync/status", headers=admin).get_json()["kinds"]["psa"]
    assert after["last_job"]["id"] == job["id"]
    assert after["last_job"]["status"] == "succeeded" and "log" not in after["last_job"]
    assert after["last_success_at"] == job["finished_at"]
    assert client.get("/api/sync/status", headers=admin).get_json()["kinds"]["tickets"][
        "last_job"] is None


def test_status_of_a_schedule_finer_than_a_minute(service_settings: dict[str, Any],
                                                  codex_db_url: str, as_user: Headers) -> None:
    app = create_app({**service_settings, "DATABASE_URL": codex_db_url,
                      "CODEX_SCHEDULE_TICKETS_SECONDS": 30.0})
    try:
        client = app.test_client()
        tickets = client.get("/api/sync/status",
                             headers=as_user("admin")).get_json()["kinds"]["tickets"]
        assert (tickets["every_minutes"], tickets["every_seconds"]) == (0, 30.0)
        html = client.get("/sync", headers={"Accept": "text/html", **as_user("admin")})
        assert "every 30 seconds" in html.get_data(as_text=True)
    finally:
        app.extensions["hivematrix.db"].dispose()
