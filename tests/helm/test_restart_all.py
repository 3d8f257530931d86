""""Restart all" on Helm's settings page, with a real supervisor."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from .test_restart import starts, supervised, wait_for

pytestmark = pytest.mark.processes
HTML = {"Accept": "text/html"}
__all__ = ["supervised"]  # the fixture: a supervisor running a stand-in called "template"


def csrf(page: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert found, page
    return found.group(1)


def test_restart_all_restarts_the_supervised_services_but_helm(
        supervised: Path, helm_client: FlaskClient,
        as_user: Callable[..., dict[str, str]]) -> None:
    services = json.loads((supervised / "services.json").read_text())
    services["codex"] = {"url": "http://127.0.0.1:3", "port": 3}
    (supervised / "services.json").write_text(json.dumps(services))
    wait_for(lambda: len(starts(supervised)) == 1)
    admin = {**as_user("admin"), **HTML}
    page = helm_client.get("/settings", headers=admin).get_data(as_text=True)
    assert 'action="/settings/restart-all"' in page and "hivematrix restart helm" in page
    assert 'data-testid="restart-report"' not in page

    refused = helm_client.post("/settings/restart-all", headers=admin, data={"x": "1"})
    assert refused.status_code == 400  # no CSRF token
    answer = helm_client.post("/settings/restart-all", headers=admin,
                              data={"csrf_token": csrf(page)})
    assert answer.status_code == 303
    assert answer.headers["Location"].endswith(
        "/settings?restarted=template&not_running=codex#restart-all")
    wait_for(lambda: len(starts(supervised)) == 2)
    first, second = starts(supervised)
    assert first != second

    report = helm_client.get("/settings?restarted=template&not_running=codex"
                             "&restarted=%3Cscript%3E", headers=admin).get_data(as_text=True)
    shown = report.split('data-testid="restart-report"')[1].split("</div>")[0]
    assert "Restarting: template." in shown
    assert "(left alone): codex." in shown
    assert "script" not in shown  # names not in services.json are not echoed


def test_restart_all_is_for_admins(supervised: Path, helm_client: FlaskClient,
                                   as_user: Callable[..., dict[str, str]]) -> None:
    wait_for(lambda: len(starts(supervised)) == 1)
    for level in ("technician", "client"):
        answer = helm_client.post("/settings/restart-all", headers=as_user(level), json={})
        assert answer.status_code == 403
    assert len(starts(supervised)) == 1


def test_the_detail_page_restarts_and_comes_back(
        supervised: Path, helm_client: FlaskClient,
        as_user: Callable[..., dict[str, str]]) -> None:
    wait_for(lambda: len(starts(supervised)) == 1)
    admin = {**as_user("admin"), **HTML}
    page = helm_client.get("/services/template", headers=admin).get_data(as_text=True)
    assert 'action="/services/template/restart"' in page
    answer = helm_client.post("/services/template/restart", headers=admin,
                              data={"csrf_token": csrf(page), "return_to": "service"})
    assert answer.status_code == 303
    assert answer.headers["Location"].endswith("/services/template?restarted=1")
    wait_for(lambda: len(starts(supervised)) == 2)
    assert "template is restarting" in helm_client.get(
        "/services/template?restarted=1", headers=admin).get_data(as_text=True)
