"""Beacon's pages and API with a Flask client, over a real Codex (HTTP, seeded tickets)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
from flask.testing import FlaskClient

from tests.beacon.conftest import Codex
from tests.beacon.wall_data import RILEY, XSS_SUBJECT

JSON = {"Accept": "application/json"}
HTML = {"Accept": "text/html"}


def sections(body: dict[str, Any]) -> dict[int, list[str]]:
    return {section["number"]: [row["id"] for row in section["rows"]]
            for section in body["sections"]}


def test_the_helpdesk_feed_holds_each_ticket_in_its_section_with_its_sla(
        client: FlaskClient, codex: Codex, as_user: Callable[..., dict[str, str]]) -> None:
    response = client.get("/api/tickets/helpdesk", headers=as_user("technician"))
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    for number, ids in sections(body).items():
        assert set(ids) == codex.seed.in_section(number)
    slas = {row["id"]: row["sla"] for section in body["sections"] for row in section["rows"]}
    assert slas == {ticket: where.sla for ticket, where in codex.seed.expected.items()
                    if where.section}
    first = body["sections"][0]["rows"]
    overdue = next(row for row in first if row["id"] == "101")
    assert overdue["subject_full"] == XSS_SUBJECT
    assert overdue["url"] == "https://acme-msp.freshservice.com/a/tickets/101"
    assert overdue["sla_tone"] == "status-text--danger"
    assert "Still smoking." in overdue["description"]
    assert body["sync"]["stale"] is True and body["sync"]["text"] == "Last synced 40m ago"


def test_the_page_renders_the_sections_escaped_with_links_and_the_agent_list(
        client: FlaskClient, codex: Codex, as_user: Callable[..., dict[str, str]]) -> None:
    page = client.get("/helpdesk", headers={**as_user("billing"), **HTML})
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "Open Helpdesk Tickets" in html and "Needs Agent / Update Overdue" in html
    assert "<img src=x" not in html and "&lt;img src=x onerror=" in html
    assert "<script>window.__pwned" not in html
    assert "<b onmouseover" not in html
    assert 'href="https://acme-msp.freshservice.com/a/tickets/101"' in html
    # The filter offers the PSA's active agents, by name; the one who left is not offered.
    assert '<option value="7002">Riley Ng</option>' in html
    assert "Gone Agent" not in html
    # Billing users see the wall but cannot start a sync.
    assert "data-sync-start" not in html
    technician = client.get("/helpdesk", headers={**as_user("technician"), **HTML})
    assert "data-sync-start" in technician.get_data(as_text=True)
    assert client.get("/", headers=as_user("admin")).headers["Location"].endswith("/helpdesk")


def test_views_split_by_group_and_the_agent_filter_narrows(
        client: FlaskClient, codex: Codex, as_user: Callable[..., dict[str, str]]) -> None:
    staff = as_user("technician")
    pro = client.get("/api/tickets/professional-services", headers=staff).get_json()
    assert sections(pro) == {1: ["601"], 2: [], 3: [], 4: []}
    assert pro["sections"][0]["title"] == "Open Professional Services Tickets"
    helpdesk = client.get("/api/tickets/helpdesk", headers=staff).get_json()
    assert "601" not in str(sections(helpdesk))
    riley = client.get(f"/api/tickets/helpdesk?agent_id={RILEY}", headers=staff).get_json()
    assert sections(riley) == {1: ["103"], 2: ["201"], 3: [], 4: []}
    nobody = client.get("/api/tickets/helpdesk?agent_id=unassigned", headers=staff).get_json()
    assert sections(nobody) == {1: ["104"], 2: [], 3: [], 4: []}
    page = client.get(f"/helpdesk?agent_id={RILEY}", headers={**staff, **HTML})
    html = page.get_data(as_text=True)
    assert '<option value="7002" selected>Riley Ng</option>' in html
    assert f"/api/tickets/helpdesk?agent_id={RILEY}" in html  # the polling keeps the choice
    assert "INC-201" in html and "INC-102" not in html
    bad = client.get("/api/tickets/helpdesk?agent_id=%3Cx%3E", headers=staff)
    assert bad.status_code == 422 and "agent_id" in bad.get_json()["errors"]["query"]
    unknown = client.get("/api/tickets/nope", headers=staff)
    assert unknown.status_code == 404 and "helpdesk" in unknown.get_json()["detail"]
    assert client.get("/nope", headers={**staff, **HTML}).status_code == 404


@pytest.mark.parametrize("path", ["/", "/helpdesk", "/display", "/display/helpdesk",
                                  "/api/tickets/helpdesk", "/api/sync/jobs/x"])
def test_client_users_are_refused_everywhere(
        client: FlaskClient, codex: Codex, as_user: Callable[..., dict[str, str]],
        path: str) -> None:
    client_user = as_user("client", account_number="620547")
    assert client.get(path, headers=client_user).status_code == 403
    assert client.get(path).status_code == 401


def test_client_users_cannot_start_a_sync(
        client: FlaskClient, codex: Codex, as_user: Callable[..., dict[str, str]]) -> None:
    assert client.post("/api/sync", headers=as_user("client", account_number="620547"),
                       json={}).status_code == 403
    assert client.post("/api/sync", headers=as_user("billing"), json={}).status_code == 403
    assert client.post("/api/sync", json={}).status_code == 401


def test_a_display_link_sees_the_wall_without_descriptions(
        client: FlaskClient, codex: Codex,
        display_headers: Callable[..., dict[str, str]]) -> None:
    page = client.get("/display/helpdesk", headers={**display_headers(), **HTML})
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "INC-101" in html and "&lt;img src=x" in html
    assert "Still smoking" not in html and "dana@acme.example" not in html
    assert "data-sync-start" not in html and "data-agent-filter" not in html
    data = client.get("/api/tickets/helpdesk", headers=display_headers())
    assert data.status_code == 200
    rows = [row for section in data.get_json()["sections"] for row in section["rows"]]
    assert rows and all("description" not in row and "requester_email" not in row
                        for row in rows)
    assert "Still smoking" not in data.get_data(as_text=True)
    # The display opens the wall, nothing else.
    assert client.get("/helpdesk", headers=display_headers()).status_code == 403
    assert client.post("/api/sync", headers=display_headers(), json={}).status_code == 403
    assert client.get("/api/sync/jobs/x", headers=display_headers()).status_code == 403


def test_nexus_without_a_display_link_and_other_services_are_refused(
        client: FlaskClient, codex: Codex, tokens: Any,
        display_headers: Callable[..., dict[str, str]]) -> None:
    assert client.get("/display/helpdesk", headers=display_headers(None)).status_code == 403
    assert client.get("/api/tickets/helpdesk", headers=display_headers(None)).status_code == 403
    ledger = tokens.headers(tokens.service("ledger", "beacon"))
    assert client.get("/api/tickets/helpdesk", headers=ledger).status_code == 403


def test_the_refresh_button_syncs_as_the_signed_in_user(
        client: FlaskClient, codex: Codex, as_user: Callable[..., dict[str, str]]) -> None:
    tom = as_user("technician", preferred_username="tom")
    started = client.post("/api/sync", headers=tom, json={})
    assert started.status_code == 202, started.get_json()
    job_id = started.get_json()["job_id"]
    status_url = started.get_json()["status_url"]
    assert status_url == f"/api/sync/jobs/{job_id}"
    job = _wait_for_job(client, status_url, tom)
    assert job["status"] == "succeeded", job
    # Codex recorded the user, not Beacon: Beacon forwarded the user's own token.
    assert job["triggered_by"] == "tom"
    assert "log" not in job
    after = client.get("/api/tickets/helpdesk", headers=tom).get_json()
    assert after["sync"]["stale"] is False and after["sync"]["text"] == "Last synced Just now"
    unknown = client.get("/api/sync/jobs/00000000-0000-4000-8000-00000000ffff", headers=tom)
    assert unknown.status_code == 404
    assert client.get("/api/sync/jobs/..%2F..%2Fapi", headers=tom).status_code == 404


def _wait_for_job(client: FlaskClient, url: str, headers: dict[str, str]) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while True:
        answer = client.get(url, headers=headers)
        assert answer.status_code == 200, answer.get_json()
        job: dict[str, Any] = answer.get_json()
        if job["status"] != "running" or time.monotonic() > deadline:
            return job
        time.sleep(0.1)


def test_codex_down_leaves_the_page_up_and_the_api_says_so(
        client: FlaskClient, codex: Codex, as_user: Callable[..., dict[str, str]],
        hm_home: Any) -> None:
    (hm_home / "services.json").write_text('{"codex": {"url": "http://127.0.0.1:9", "port": 9}}')
    staff = as_user("admin")
    page = client.get("/helpdesk", headers={**staff, **HTML})
    assert page.status_code == 200
    assert "Codex is not reachable" in page.get_data(as_text=True)
    api = client.get("/api/tickets/helpdesk", headers=staff)
    assert api.status_code == 502 and "Codex" in api.get_json()["detail"]
    assert client.post("/api/sync", headers=staff, json={}).status_code == 502


def test_the_unconfigured_view_is_empty_but_shows_the_sync_time(
        beacon_settings: dict[str, Any], codex: Codex,
        as_user: Callable[..., dict[str, str]]) -> None:
    from hivematrix.beacon import create_app

    app = create_app({**beacon_settings, "BEACON_VIEWS": {
        "helpdesk": {"name": "Helpdesk", "others": True},
        "projects": {"name": "Projects", "group_ids": []}}})
    client = app.test_client()
    body = client.get("/api/tickets/projects", headers=as_user("admin")).get_json()
    assert body["total"] == 0 and body["sync"]["text"] == "Last synced 40m ago"
    page = client.get("/projects", headers={**as_user("admin"), **HTML}).get_data(as_text=True)
    assert "This view has no PSA groups yet" in page and "BEACON_VIEWS" in page
    # Without the professional-services queue, its ticket is the helpdesk's.
    helpdesk = client.get("/api/tickets/helpdesk", headers=as_user("admin")).get_json()
    assert "601" in sections(helpdesk)[1]
