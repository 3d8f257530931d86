"""Helm's web console: every route is for admins, the dashboard, the log viewer and its
script, and (in a real browser) log text that stays text."""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from flask import Flask
from flask.testing import FlaskClient

from hivematrix.common.testing import watched_page
from tests.nexus.conftest import PASSWORD, Platform

from .conftest import service_token

INGEST = "/api/logs/ingest"
HTML = {"Accept": "text/html"}
#: Endpoints every service has, public by design (probes, scrapes, the API document).
KIT_ENDPOINTS = ("hivematrix.", "docs_assets.", "openapi.")
XSS = '<script>window.__pwned=1</script><img src=x onerror="window.__pwned=2">'
#: Screenshots land here (git-ignored), as in the Nexus browser tests.
OUTPUT = Path(os.environ.get("HIVEMATRIX_TEST_OUTPUT",
                             Path(__file__).resolve().parents[2] / "test-output"))


def helm_routes(app: Flask) -> list[tuple[str, str, str]]:
    """``(endpoint, method, url)`` for every route of Helm's own, with sample arguments."""
    samples = {"int": "1", "path": "logs.js", "default": "x"}
    found = []
    for rule in app.url_map.iter_rules():
        if rule.endpoint.startswith(KIT_ENDPOINTS):
            continue
        url = rule.rule
        for argument in rule.arguments:
            converter = type(rule._converters[argument]).__name__.lower()
            kind = next((key for key in samples if key in converter), "default")
            url = re.sub(rf"<(?:[^:<>]+:)?{argument}>", samples[kind], url)
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            found.append((rule.endpoint, method, url))
    return found


def test_helm_has_the_routes_we_expect(helm_app: Flask) -> None:
    endpoints = {endpoint for endpoint, _method, _url in helm_routes(helm_app)}
    assert {"static", "helm.dashboard", "helm.logs_page", "helm.ingest", "helm.api_logs",
            "helm.api_log_entry"} <= endpoints


@pytest.mark.parametrize("level", ["technician", "billing", "client"])
def test_every_helm_route_refuses_non_admins(helm_app: Flask, helm_client: FlaskClient,
                                             as_user, level: str) -> None:
    for endpoint, method, url in helm_routes(helm_app):
        for accept in ({"Accept": "application/json"}, HTML):
            response = helm_client.open(url, method=method, json={"logs": []},
                                        headers={**as_user(level), **accept})
            assert response.status_code == 403, (endpoint, method, url, response.status_code)


def test_every_helm_route_needs_a_token(helm_app: Flask, helm_client: FlaskClient) -> None:
    for endpoint, method, url in helm_routes(helm_app):
        response = helm_client.open(url, method=method, json={"logs": []})
        assert response.status_code == 401, (endpoint, method, url)


def test_service_tokens_reach_only_ingest(helm_app: Flask, helm_client: FlaskClient,
                                          as_service) -> None:
    for endpoint, method, url in helm_routes(helm_app):
        response = helm_client.open(url, method=method, json={"logs": []},
                                    headers=as_service("codex"))
        expected = 200 if endpoint == "helm.ingest" else 403
        assert response.status_code == expected, (endpoint, method, url)


def test_admins_reach_everything_but_ingest(helm_app: Flask, helm_client: FlaskClient,
                                            as_user) -> None:
    for endpoint, method, url in helm_routes(helm_app):
        response = helm_client.open(url, method=method, json={"logs": []},
                                    headers=as_user("admin"))
        if endpoint == "helm.ingest":
            assert response.status_code == 403
        else:
            # Reached: answered on its merits (a sample argument may be unknown, a sample
            # body incomplete), never refused and never a crash.
            assert response.status_code not in (401, 403) and response.status_code < 500, (
                endpoint, url, response.status_code)


# --- the dashboard -------------------------------------------------------------------------

def test_dashboard_lists_services_with_status_and_log_counts(
        helm_client: FlaskClient, as_user, as_service, hm_home: Path) -> None:
    (hm_home / "services.json").write_text(json.dumps({
        "core": {"url": "http://127.0.0.1:9", "port": 9},
        "codex": {"url": "http://127.0.0.1:9", "port": 9}}))
    helm_client.post(INGEST, headers=as_service("codex"), json={"logs": [
        {"level": "ERROR", "message": "a"}, {"level": "ERROR", "message": "b"},
        {"level": "INFO", "message": "c"},
        {"level": "INFO", "message": "old", "timestamp": "2020-01-01T00:00:00Z"}]})
    page = helm_client.get("/", headers={**as_user("admin"), **HTML}).get_data(as_text=True)
    assert 'data-service="core"' in page and 'data-service="codex"' in page
    codex_row = page.split('data-service="codex"')[1].split("</tr>")[0]
    assert "stopped" in codex_row
    assert '<td data-level="ERROR">2</td>' in codex_row
    assert '<td data-level="INFO">1</td>' in codex_row  # the old one is outside the hour


def test_dashboard_without_services(helm_client: FlaskClient, as_user) -> None:
    page = helm_client.get("/", headers=as_user("admin")).get_data(as_text=True)
    assert "No services are registered" in page


# --- the log viewer ------------------------------------------------------------------------

def push_xss(client: FlaskClient, as_service) -> None:
    response = client.post(INGEST, headers=as_service("codex"), json={"logs": [
        {"level": "ERROR", "message": XSS, "correlation_id": "corr-1", "user": "u-<b>",
         "context": {"html": "<img src=x onerror=alert(1)>"}}]})
    assert response.status_code == 200


def test_log_viewer_escapes_everything(helm_client: FlaskClient, as_user, as_service) -> None:
    push_xss(helm_client, as_service)
    page = helm_client.get("/logs", headers={**as_user("admin"), **HTML}).get_data(as_text=True)
    assert "<script>window.__pwned" not in page
    assert "<img src=x" not in page
    assert "&lt;script&gt;window.__pwned=1&lt;/script&gt;" in page
    assert "u-&lt;b&gt;" in page
    # Click-to-filter links keep the other filters and are URL-encoded.
    assert 'href="/logs?correlation_id=corr-1"' in page
    assert 'href="/logs?user=u-%3Cb%3E"' in page
    # The only script element is the viewer's own file.
    assert re.findall(r"<script[^>]*>", page) == ['<script src="/static/logs.js" defer>']


def test_log_viewer_filters(helm_client: FlaskClient, as_user, as_service) -> None:
    helm_client.post(INGEST, headers=as_service("codex"), json={"logs": [
        {"level": "INFO", "message": "routine"}, {"level": "ERROR", "message": "broken"}]})
    helm_client.post(INGEST, headers=as_service("ledger"), json={"logs": [
        {"level": "WARNING", "message": "late invoice", "user": "bill"}]})
    admin = {**as_user("admin"), **HTML}

    def rows(query: str) -> list[str]:
        page = helm_client.get(f"/logs?{query}", headers=admin).get_data(as_text=True)
        return re.findall(r'data-testid="log-message">([^<]*)<', page)

    assert rows("") == ["late invoice", "broken", "routine"]
    assert rows("level=WARNING") == ["late invoice", "broken"]
    assert rows("service=codex") == ["broken", "routine"]
    assert rows("user=bill") == ["late invoice"]
    assert rows("q=rout") == ["routine"]
    page = helm_client.get("/logs?service=ledger", headers=admin).get_data(as_text=True)
    assert '<option value="ledger" selected>' in page


def test_log_viewer_names_a_bad_filter(helm_client: FlaskClient, as_user) -> None:
    response = helm_client.get("/logs?since=soon", headers={**as_user("admin"), **HTML})
    assert response.status_code == 400
    assert 'class="alert alert--error"' in response.get_data(as_text=True)
    assert "since:" in response.get_data(as_text=True)


def test_log_viewer_pages_back(helm_client: FlaskClient, as_user, as_service) -> None:
    helm_client.post(INGEST, headers=as_service("codex"), json={"logs": [
        {"level": "INFO", "message": f"m{n}", "timestamp": f"2026-01-01T00:{n // 60:02}:"
                                                          f"{n % 60:02}Z"}
        for n in range(130)]})
    admin = {**as_user("admin"), **HTML}
    page = helm_client.get("/logs?service=codex", headers=admin).get_data(as_text=True)
    assert page.count('data-testid="log-message"') == 100
    older = re.search(r'href="(/logs\?[^"]*before_id=\d+[^"]*)"', page)
    assert older and "service=codex" in older.group(1)
    second = helm_client.get(older.group(1).replace("&amp;", "&"), headers=admin)
    assert second.get_data(as_text=True).count('data-testid="log-message"') == 30


def test_viewer_script_is_served_and_builds_rows_as_text(helm_client: FlaskClient,
                                                         as_user) -> None:
    response = helm_client.get("/static/logs.js", headers=as_user("admin"))
    assert response.status_code == 200
    script = response.get_data(as_text=True)
    for forbidden in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write",
                      "eval(", "new Function"):
        assert forbidden not in script
    assert "textContent" in script and "credentials: \"same-origin\"" in script
    assert helm_client.get("/static/logs.js", headers=as_user("technician")).status_code == 403


def test_pages_allow_no_inline_script(helm_client: FlaskClient, as_user) -> None:
    response = helm_client.get("/logs", headers={**as_user("admin"), **HTML})
    policy = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy


def test_page_is_for_admins_and_says_so_in_html(helm_client: FlaskClient, as_user) -> None:
    response = helm_client.get("/logs", headers={**as_user("client"), **HTML})
    assert response.status_code == 403
    assert "text/html" in response.content_type


def test_samples_api(helm_client: FlaskClient, as_user, helm_db, hm_home: Path) -> None:
    from hivematrix.helm import jobs

    with helm_db.sessionmaker() as session:
        jobs.sample_services(session, hm_home, {"core": {"url": "http://127.0.0.1:9",
                                                         "port": 9}})
    response = helm_client.get("/api/services/core/samples", headers=as_user("admin"))
    assert response.status_code == 200
    assert [sample["state"] for sample in response.json["samples"]] == ["stopped"]
    bad = helm_client.get("/api/services/core/samples?since=x", headers=as_user("admin"))
    assert bad.status_code == 400


# --- a real platform in a real browser -----------------------------------------------------

def ingest_as(platform: Platform, caller: str, *entries: dict[str, Any]) -> None:
    token = service_token(platform, caller)
    response = httpx.post(f"{platform.processes['helm'].url}{INGEST}",
                          headers={"Authorization": f"Bearer {token}"},
                          json={"logs": list(entries)}, timeout=10)
    assert response.status_code == 200, response.text


@pytest.mark.processes
def test_platform_logs_reach_helm_once(helm_platform: Platform) -> None:
    alice = helm_platform.login("alice", next_path="/helm/")
    assert alice.get("/helm/", headers={"X-Correlation-ID": "e2e-chain-1"}).status_code == 200

    def found() -> list[dict[str, Any]]:
        response = alice.get("/helm/api/logs", params={"correlation_id": "e2e-chain-1"})
        assert response.status_code == 200, response.text
        return list(response.json()["logs"])

    deadline = time.monotonic() + 30
    while {"nexus", "helm"} - {entry["service"] for entry in found()}:
        assert time.monotonic() < deadline, found()
        time.sleep(0.2)
    time.sleep(2)  # the tailer has read every file again by now (it runs every 0.2 s)
    requests = [(entry["service"], entry["context"].get("path")) for entry in found()
                if entry["message"] == "request"]
    assert sorted(requests) == [("helm", "/"), ("nexus", "/helm/")]
    sources = {entry["service"]: entry["source"] for entry in found()}
    assert sources["nexus"] in ("push", "file") and sources["helm"] == "file"


@pytest.mark.processes
def test_technicians_are_refused_through_nexus(helm_platform: Platform) -> None:
    tom = helm_platform.login("tom", next_path="/")
    for path in ("/helm/", "/helm/logs", "/helm/api/logs", "/helm/static/logs.js"):
        assert tom.get(path).status_code == 403, path


@pytest.mark.browser
@pytest.mark.processes
def test_log_text_never_runs_in_the_viewer(browser: Any, helm_platform: Platform) -> None:
    context, page, problems = watched_page(browser)
    ingest_as(helm_platform, "identity", {
        "level": "ERROR", "message": XSS, "correlation_id": "xss-1",
        "context": {"html": "<img src=x onerror=\"window.__pwned=3\">"}})

    nexus = helm_platform.nexus
    page.goto(f"{nexus}/helm/logs?correlation_id=xss-1")
    page.fill("#username", "alice")
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{nexus}/helm/logs?correlation_id=xss-1")
    messages = page.get_by_test_id("log-message")
    assert messages.count() == 1
    assert messages.first.inner_text() == XSS
    page.locator("tbody details summary").first.click()
    assert "<img src=x" in page.locator("tbody details pre").first.inner_text()
    assert page.evaluate("typeof window.__pwned") == "undefined"
    assert page.locator("img[src=x], tbody script").count() == 0

    page.click("[data-live-toggle]")
    assert page.get_attribute("[data-live-toggle]", "aria-pressed") == "true"
    ingest_as(helm_platform, "identity", {
        "level": "CRITICAL", "message": XSS + " (live)", "correlation_id": "xss-1",
        "user": "<b>mallory</b>", "context": {"html": XSS}})
    live = page.locator("tr[data-live] [data-testid=log-message]")
    live.first.wait_for(timeout=15_000)
    assert live.first.inner_text() == XSS + " (live)"
    assert page.locator("tr[data-live] a[data-filter=user]").inner_text() == "<b>mallory</b>"
    page.locator("tr[data-live] details summary").click()
    shown = json.loads(page.locator("tr[data-live] details pre").inner_text())
    assert shown == {"html": XSS}
    page.wait_for_timeout(2500)  # another poll: nothing is added twice
    assert page.locator("tr[data-live]").count() == 1
    assert page.evaluate("typeof window.__pwned") == "undefined"
    assert page.locator("img[src=x], tbody script, tbody b").count() == 0

    # Clicking a user filters the viewer by that user.
    page.locator("tr[data-live] a[data-filter=user]").click()
    page.wait_for_url("**/helm/logs?correlation_id=xss-1&user=*")
    assert page.get_by_test_id("log-message").count() == 1
    OUTPUT.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(OUTPUT / "helm-log-viewer.png"), full_page=True)
    assert problems == []
    context.close()
