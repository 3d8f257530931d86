"""Helm's dashboard refreshing itself, its status API, and (in a real browser, through Nexus)
the metrics charts and a status that changes on the page without a reload."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from hivematrix.common.config import load_settings
from hivematrix.common.db import Database
from hivematrix.common.testing import free_port, watched_page
from hivematrix.helm.models import ServiceSample
from tests.nexus.conftest import PASSWORD, Platform

from .conftest import start_helm_platform
from .test_console import OUTPUT, helm_routes
from .test_restart import STAND_IN

HTML = {"Accept": "text/html"}
INGEST = "/api/logs/ingest"
NEW_ENDPOINTS = {
    "helm.api_services", "helm.service_detail", "helm_console.metrics_page",
    "helm_console.backups_page", "helm_console.create_backup", "helm_console.download_backup",
    "helm_console.delete_backup", "helm_console.api_latest_backup", "helm_console.restart_all"}


def test_the_admin_only_route_checks_cover_the_new_pages(helm_app: Flask) -> None:
    # test_console's route-by-route checks (403 for technicians, billing and clients, 401
    # without a token, 403 for service tokens) walk these too.
    assert {endpoint for endpoint, _method, _url in helm_routes(helm_app)} >= NEW_ENDPOINTS


def test_status_api_reports_each_service(helm_client: FlaskClient, as_user, as_service,
                                         hm_home: Path) -> None:
    (hm_home / "services.json").write_text(json.dumps({
        "core": {"url": "http://127.0.0.1:9", "port": 9},
        "helm": {"url": "http://127.0.0.1:9", "port": 9}}))
    helm_client.post(INGEST, headers=as_service("core"), json={"logs": [
        {"level": "ERROR", "message": "a"}, {"level": "WARNING", "message": "b"}]})
    answer = helm_client.get("/api/services", headers=as_user("admin"))
    assert answer.status_code == 200
    services = {service["name"]: service for service in answer.get_json()["services"]}
    assert set(services) == {"core", "helm"}
    core = services["core"]
    assert (core["state"], core["health"], core["pid"], core["port"], core["restarts"],
            core["restartable"]) == ("stopped", "-", None, 9, 0, False)
    assert core["log_counts"] == {"DEBUG": 0, "INFO": 0, "WARNING": 1, "ERROR": 1,
                                  "CRITICAL": 0, "UNKNOWN": 0}
    assert services["helm"]["restartable"] is False
    assert helm_client.get("/api/services", headers=as_user("technician")).status_code == 403


def test_dashboard_links_services_and_loads_its_refresher(helm_client: FlaskClient, as_user,
                                                          hm_home: Path) -> None:
    (hm_home / "services.json").write_text(json.dumps({
        "codex": {"url": "http://127.0.0.1:9", "port": 9},
        "helm": {"url": "http://127.0.0.1:9", "port": 9}}))
    page = helm_client.get("/", headers={**as_user("admin"), **HTML}).get_data(as_text=True)
    assert '<a href="/services/codex" data-testid="service-link">codex</a>' in page
    assert 'data-status-url="/api/services"' in page and 'data-refresh-seconds="10"' in page
    assert re.findall(r"<script[^>]*>", page) == ['<script src="/static/dashboard.js" defer>']
    codex = page.split('data-service="codex"')[1].split("</tr>")[0]
    # Stopped: the restart form is there for the refresher to show once it runs.
    assert 'action="/services/codex/restart" data-restart hidden' in codex
    assert 'action="/services/helm/restart"' not in page
    for link in ("/resources", "/backups"):
        assert f'href="{link}"' in page


# --- in a real browser -----------------------------------------------------------------------

@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    found = start_helm_platform(tmp_path_factory.mktemp("helm-pages"))
    yield found
    for process in found.processes.values():
        process.stop()


def helm_database(home: Path) -> Database:
    """Helm's own database, as the running Helm found it in its settings."""
    return Database(load_settings("helm", environ={"HIVEMATRIX_HOME": str(home)})["DATABASE_URL"])


def supervise_stand_in(home: Path, name: str) -> subprocess.Popen[bytes]:
    """A real supervisor running a stand-in program as ``name``, as `hivematrix start` would."""
    code = ("import sys; from pathlib import Path; from hivematrix.helm.supervisor import "
            f"Supervisor; sys.exit(Supervisor(Path(sys.argv[1]), {name!r}, stop_timeout=2, "
            f"command=[sys.executable, '-c', {STAND_IN!r}]).run())")
    process = subprocess.Popen([sys.executable, "-c", code, str(home)],
                               start_new_session=True)
    (home / "run").mkdir(exist_ok=True)
    (home / "run" / f"{name}.pid").write_text(f"{process.pid}\n")
    return process


@pytest.mark.browser
@pytest.mark.processes
def test_charts_render_and_the_dashboard_follows_a_service_without_reloading(
        browser: Any, platform: Platform) -> None:
    home = platform.home
    now = datetime.now(UTC)
    database = helm_database(home)
    try:
        with database.sessionmaker() as session:
            session.add_all(ServiceSample(service="core", timestamp=now - timedelta(minutes=n),
                                          cpu_percent=1.0 + n % 5, memory_mb=90.0 + n,
                                          uptime_seconds=600.0, state="running")
                            for n in range(40))
            session.commit()
    finally:
        database.dispose()
    services = json.loads((home / "services.json").read_text())
    services["template"] = {"url": f"http://127.0.0.1:{free_port()}", "port": free_port(),
                            "title": "Template", "visible": False, "admin_only": False,
                            "billing_or_admin_only": False}
    (home / "services.json").write_text(json.dumps(services))

    context, page, problems = watched_page(browser)
    nexus = platform.nexus
    page.goto(f"{nexus}/helm/resources")
    page.fill("#username", "alice")
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{nexus}/helm/resources")
    core_cpu = page.locator('[data-service="core"] [data-chart-kind="cpu"] svg')
    assert core_cpu.get_attribute("aria-label") == "CPU % of core: latest 1.0 %, peak 5.0 %"
    assert page.locator('[data-service="core"] svg polyline').count() == 2
    assert core_cpu.bounding_box()["width"] > 200  # drawn, not collapsed
    # Nexus runs outside Helm's supervision: its samples have no figures.
    assert page.locator('[data-service="nexus"] [data-testid="chart-empty"]').count() == 2
    page.click('a.tabs__tab:has-text("last 24 hours")')
    page.wait_for_url("**/helm/resources?range=24h")
    assert page.locator('[data-service="core"] svg polyline').count() == 2
    OUTPUT.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(OUTPUT / "helm-metrics.png"), full_page=True)

    page.goto(f"{nexus}/helm/")
    template = page.locator('tr[data-service="template"]')
    state = template.locator('[data-field="state"]')
    assert state.inner_text() == "stopped"
    page.evaluate("window.__sameDocument = true")
    supervisor = supervise_stand_in(home, "template")
    try:
        # Supervised now, its address silent: "starting", once the dashboard asked again.
        template.locator('[data-field="state"]:text-is("starting")').wait_for(timeout=40_000)
        assert page.evaluate("window.__sameDocument") is True  # no reload happened
        child = (home / "run" / "template.child.pid").read_text().strip()
        template.locator(f'[data-field="pid"]:text-is("{child}")').wait_for(timeout=40_000)
        assert "status-text--warning" in (state.get_attribute("class") or "")
        assert template.locator("form[data-restart]").is_visible()
        assert "Updated" in page.locator("[data-refresh-status]").inner_text()
        page.screenshot(path=str(OUTPUT / "helm-dashboard.png"), full_page=True)
    finally:
        os.killpg(supervisor.pid, signal.SIGTERM)
        supervisor.wait(10)
    template.locator('[data-field="state"]:text-is("stopped")').wait_for(timeout=40_000)
    assert page.evaluate("window.__sameDocument") is True
    assert not template.locator("form[data-restart]").is_visible()

    page.click('a[data-testid="service-link"]:text-is("core")')
    page.wait_for_url("**/helm/services/core")
    assert page.locator('[data-chart-kind="memory"] svg polyline').count() == 1
    assert problems == []
    context.close()
