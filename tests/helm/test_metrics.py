"""Helm's resource charts: the sample history's bound, the SVG chart module, and the metrics
and service detail pages."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select

from hivematrix.common.db import Database
from hivematrix.helm import jobs
from hivematrix.helm.models import ServiceSample


def add_samples(database: Database, service: str, times: list[datetime],
                cpu: float | None = 1.0, memory: float | None = 50.0,
                state: str = "running") -> None:
    with database.sessionmaker() as session:
        session.add_all(ServiceSample(service=service, timestamp=when, cpu_percent=cpu,
                                      memory_mb=memory, uptime_seconds=10.0, state=state)
                        for when in times)
        session.commit()


def test_old_samples_are_pruned_in_batches(helm_db: Database) -> None:
    now = datetime(2026, 6, 1, 12, tzinfo=UTC)
    add_samples(helm_db, "core", [now - timedelta(hours=hours) for hours in range(1, 11)])
    with helm_db.sessionmaker() as session:
        assert jobs.prune_samples(session, 0, now=now) == 0  # 0 keeps them
        assert jobs.prune_samples(session, 4.5, now=now, batch_size=2) == 6
    with helm_db.sessionmaker() as session:
        left = sorted(session.scalars(select(ServiceSample.timestamp)))
    assert left == [now - timedelta(hours=hours) for hours in (4, 3, 2, 1)]


# --- the metrics page and the service detail page ------------------------------------------

HTML = {"Accept": "text/html"}
INGEST = "/api/logs/ingest"


def register(home: Path, *names: str) -> None:
    (home / "services.json").write_text(json.dumps({
        name: {"url": "http://127.0.0.1:9", "port": 9} for name in names}))


def card(page: str, service: str) -> str:
    return page.split(f'<div class="card" data-service="{service}">')[1].split(
        '<div class="card" data-service=')[0]


def test_metrics_page_charts_each_service_over_the_chosen_range(
        helm_client: FlaskClient, as_user, helm_db: Database, hm_home: Path) -> None:
    register(hm_home, "core", "codex")
    now = datetime.now(UTC)
    add_samples(helm_db, "core", [now - timedelta(minutes=minutes) for minutes in range(50)],
                cpu=2.5, memory=80.0)
    add_samples(helm_db, "core", [now - timedelta(hours=3)], cpu=90.0, memory=900.0)
    add_samples(helm_db, "codex", [now - timedelta(minutes=5)], cpu=None, memory=None,
                state="stopped")
    admin = {**as_user("admin"), **HTML}

    page = helm_client.get("/resources", headers=admin)
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    core = card(text, "core")
    assert core.count("<svg") == 2 and "<polyline" in core
    assert 'aria-label="CPU % of core: latest 2.5 %, peak 2.5 %"' in core
    assert 'aria-label="Memory of core: latest 80.0 MB, peak 80.0 MB"' in core
    assert "50 samples" in core
    codex = card(text, "codex")
    assert "<svg" not in codex and codex.count('data-testid="chart-empty"') == 2
    assert 'href="/services/core?range=1h"' in core
    assert '<a class="tabs__tab tabs__tab--active" href="/resources?range=1h"' in text

    wider = helm_client.get("/resources?range=6h", headers=admin).get_data(as_text=True)
    assert "peak 90.0 %" in card(wider, "core") and "51 samples" in card(wider, "core")

    bad = helm_client.get("/resources?range=2d", headers=as_user("admin"))
    assert bad.status_code == 400
    assert bad.get_json()["errors"] == {"query": {"range": ["must be one of 1h, 6h, 24h"]}}


def test_metrics_page_without_anything_says_so(helm_client: FlaskClient, as_user) -> None:
    text = helm_client.get("/resources", headers={**as_user("admin"), **HTML}).get_data(
        as_text=True)
    assert 'data-testid="metrics-empty"' in text and "<svg" not in text


def test_metrics_page_escapes_service_names(helm_client: FlaskClient, as_user,
                                            helm_db: Database) -> None:
    add_samples(helm_db, "<b>x</b>", [datetime.now(UTC) - timedelta(minutes=1)])
    text = helm_client.get("/resources", headers={**as_user("admin"), **HTML}).get_data(
        as_text=True)
    assert "<b>x</b>" not in text and "&lt;b&gt;x&lt;/b&gt;" in text


def test_service_detail_shows_status_supervisor_record_problems_and_charts(
        helm_client: FlaskClient, as_user, as_service, helm_db: Database, hm_home: Path) -> None:
    register(hm_home, "codex")
    # What a supervisor leaves while it waits to start a service that crashed.
    (hm_home / "run").mkdir()
    (hm_home / "run" / "codex.state.json").write_text(json.dumps({
        "status": "waiting", "restarts": 4, "started_at": "2026-06-01T10:00:00+00:00",
        "last_exit": 3, "next_start_in": 8.0}))
    helm_client.post(INGEST, headers=as_service("codex"), json={"logs": [
        {"level": "INFO", "message": "routine"},
        {"level": "WARNING", "message": "slow <b>answer</b>"},
        {"level": "ERROR", "message": "<script>window.__pwned=1</script>"}]})
    add_samples(helm_db, "codex", [datetime.now(UTC) - timedelta(minutes=n) for n in range(9)])
    admin = {**as_user("admin"), **HTML}

    response = helm_client.get("/services/codex", headers=admin)
    assert response.status_code == 200
    text = response.get_data(as_text=True)
    status = text.split('data-testid="service-status"')[1].split("</dl>")[0]
    assert 'data-field="state">stopped<' in status and 'data-field="restarts">4<' in status
    assert 'data-field="last_exit">code 3<' in status and "2026-06-01T10:00:00+00:00" in status
    assert "hivematrix start codex" in text
    assert 'action="/services/codex/restart"' not in text  # nothing to restart while stopped
    problems = re.findall(r'data-testid="problem-message">([^<]*)<', text)
    assert problems == ["&lt;script&gt;window.__pwned=1&lt;/script&gt;",
                        "slow &lt;b&gt;answer&lt;/b&gt;"]
    assert 'href="/logs?service=codex&amp;level=WARNING"' in text
    assert 'href="/logs?service=codex"' in text
    assert text.count("<svg") == 2 and 'data-points="9"' in text

    assert helm_client.get("/services/nowhere", headers=admin).status_code == 404
    bad = helm_client.get("/services/codex?range=week", headers=as_user("admin"))
    assert bad.status_code == 400 and bad.get_json()["errors"]["query"] == {
        "range": ["must be one of 1h, 6h, 24h"]}


def test_service_detail_of_helm_points_to_the_cli(helm_client: FlaskClient, as_user,
                                                  hm_home: Path) -> None:
    register(hm_home, "helm")
    text = helm_client.get("/services/helm", headers={**as_user("admin"), **HTML}).get_data(
        as_text=True)
    assert "hivematrix restart helm" in text and "/services/helm/restart" not in text
    assert text.count('data-testid="chart-empty"') == 2


@pytest.mark.parametrize("level", ["technician", "client"])
def test_metrics_and_detail_are_for_admins(helm_client: FlaskClient, as_user, hm_home: Path,
                                           level: str) -> None:
    register(hm_home, "core")
    for url in ("/resources", "/resources?range=6h", "/services/core", "/api/services"):
        assert helm_client.get(url, headers={**as_user(level), **HTML}).status_code == 403, url
