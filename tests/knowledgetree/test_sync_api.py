"""`/api/admin/sync` against a real Codex served over HTTP (Ledger's fixture) and the real
FalkorDB: admins start it, staff follow its progress, one sync at a time."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from hivematrix.common.testing import FakeCore, TokenFactory
from hivematrix.knowledgetree import create_app, scheduler
from hivematrix.knowledgetree.items import ROOT_ID, KnowledgeTree
from tests.knowledgetree.apiapp import Headers, ok, refused
from tests.knowledgetree.conftest import FalkorDBServer
from tests.ledger.conftest import Codex, codex  # noqa: F401 - the shared real-Codex fixture

SECRET = "knowledgetree-api-test-secret"


@pytest.fixture
def synced_app(falkordb_server: FalkorDBServer, service_settings: dict[str, Any],
               fake_core: FakeCore, codex: Codex, tmp_path: Path) -> Iterator[Flask]:  # noqa: F811
    fake_core.secrets["knowledgetree"] = SECRET
    app = create_app({**service_settings, "SERVICE_SECRET": SECRET,
                      "KT_GRAPH_URL": f"falkordb://127.0.0.1:{falkordb_server.port}/"
                                      f"kt-sync-{uuid.uuid4().hex}",
                      "KT_FILES_DIR": str(tmp_path / "kt-files")})
    yield app
    holder = app.extensions["knowledgetree"]
    deadline = time.monotonic() + 60
    while scheduler.status(holder.store)["running"] and time.monotonic() < deadline:
        time.sleep(0.1)  # a background run still writing
    holder.store.drop_all()
    holder.close()


def wait_finished(client: FlaskClient, headers: dict[str, str],
                  after: float = 0.0) -> dict[str, Any]:
    """The status once a sync that finished after ``after`` (epoch seconds) is recorded
    (an earlier run's result, or a released lease's, is not that sync's)."""
    deadline = time.monotonic() + 60
    while True:
        status = ok(client.get("/api/admin/sync", headers=headers))
        if not status["running"] and status["last_result"] is not None and (
                float(status["finished_at"] or 0) > after):
            return dict(status)
        assert time.monotonic() < deadline, status
        time.sleep(0.1)


def test_admin_starts_the_sync_and_staff_follow_it(synced_app: Flask, as_user: Headers,
                                                    tokens: TokenFactory) -> None:
    client = synced_app.test_client()
    admin = as_user("admin")
    idle = ok(client.get("/api/admin/sync", headers=as_user("billing")))
    assert idle["running"] is False and idle["last_result"] is None
    for level in ("technician", "billing", "client"):
        refused(client.post("/api/admin/sync", headers=as_user(level), json={}), 403)
    brainhair = tokens.headers(tokens.service("brainhair", "knowledgetree"))
    refused(client.post("/api/admin/sync", headers=brainhair, json={}), 403)
    refused(client.post("/api/admin/sync", headers=admin,
                        json={"companies": False, "tickets": False}), 400, "companies")
    started = client.post("/api/admin/sync", headers=admin, json={})
    assert started.status_code == 202, started.get_data(True)
    done = wait_finished(client, as_user("technician"))
    assert done["last_result"]["errors"] == 0 and done["total"] >= 3
    tree: KnowledgeTree = synced_app.extensions["knowledgetree"].tree()
    companies = {child.name: child for child in tree.children(ROOT_ID)}["Companies"]
    names = {child.name for child in tree.children(companies.id)}
    assert {"Acme Dental", "Beta Law", "Gamma Shop"} <= names
    helm = tokens.headers(tokens.service("helm", "knowledgetree"))
    assert ok(client.get("/api/admin/sync", headers=helm))["running"] is False


def test_a_running_sync_refuses_another(synced_app: Flask, as_user: Headers) -> None:
    client = synced_app.test_client()
    admin = as_user("admin")
    store = synced_app.extensions["knowledgetree"].tree().store
    # Someone else (the scheduler, the command) holds the lease.
    lease = scheduler.Lease(store, scheduler.SYNC_LEASE, "elsewhere:1:cli", 60.0)
    assert lease.acquire()
    try:
        body = refused(client.post("/api/admin/sync", headers=admin, json={}), 409, "companies")
        assert "running" in body["detail"]
        status = ok(client.get("/api/admin/sync", headers=admin))
        assert status["running"] is True and status["holder"] == "elsewhere:1:cli"
    finally:
        lease.release()
    released = time.time()
    started = client.post("/api/admin/sync", headers=admin, json={"tickets": False})
    assert started.status_code == 202
    assert wait_finished(client, admin, after=released)["last_result"]["errors"] == 0
