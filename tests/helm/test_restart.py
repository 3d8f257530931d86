"""Restarting a supervised service from Helm's dashboard."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from flask.testing import FlaskClient

pytestmark = pytest.mark.processes

STAND_IN = "import os, time; print('up', os.getpid(), flush=True); time.sleep(600)"


@pytest.fixture
def supervised(hm_home: Path) -> Iterator[Path]:
    """A real supervisor running a stand-in under the name "template", as `start` would."""
    (hm_home / "services.json").write_text(json.dumps({
        "template": {"url": "http://127.0.0.1:1", "port": 1},
        "helm": {"url": "http://127.0.0.1:2", "port": 2}}))
    code = ("import sys; from pathlib import Path; from hivematrix.helm.supervisor import "
            "Supervisor; sys.exit(Supervisor(Path(sys.argv[1]), 'template', stop_timeout=2, "
            f"command=[sys.executable, '-c', {STAND_IN!r}]).run())")
    process = subprocess.Popen([sys.executable, "-c", code, str(hm_home)],
                               start_new_session=True)
    (hm_home / "run").mkdir(exist_ok=True)
    (hm_home / "run" / "template.pid").write_text(f"{process.pid}\n")
    yield hm_home
    os.killpg(process.pid, signal.SIGTERM)
    process.wait(10)


def starts(home: Path) -> list[str]:
    log = home / "logs" / "template.log"
    return [line for line in log.read_text().splitlines() if line.startswith("up ")] \
        if log.exists() else []


def wait_for(check: Callable[[], object], timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_an_admin_restarts_a_service_from_the_dashboard(
        supervised: Path, helm_client: FlaskClient, as_user: Callable[..., dict[str, str]]) -> None:
    wait_for(lambda: len(starts(supervised)) == 1)
    admin = as_user("admin")
    page = helm_client.get("/", headers={**admin, "Accept": "text/html"})
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert 'action="/services/template/restart"' in html and 'name="csrf_token"' in html
    assert 'action="/services/helm/restart"' not in html  # Helm does not restart itself

    answer = helm_client.post("/services/template/restart", headers=admin)
    assert answer.status_code == 303
    assert answer.headers["Location"].endswith("/?restarted=template")
    wait_for(lambda: len(starts(supervised)) == 2)
    first, second = starts(supervised)
    assert first != second  # a new process
    assert "template is restarting" in helm_client.get(
        "/?restarted=template", headers={**admin, "Accept": "text/html"}).get_data(as_text=True)


def test_restart_refusals(supervised: Path, helm_client: FlaskClient,
                          as_user: Callable[..., dict[str, str]]) -> None:
    admin = as_user("admin")
    assert helm_client.post("/services/nowhere/restart", headers=admin).status_code == 404
    refused = helm_client.post("/services/helm/restart", headers=admin)
    assert refused.status_code == 409 and "cannot restart itself" in refused.get_json()["detail"]
    (supervised / "run" / "template.pid").unlink()
    stopped = helm_client.post("/services/template/restart", headers=admin)
    assert stopped.status_code == 409 and "hivematrix start template" in \
        stopped.get_json()["detail"]
    assert helm_client.post("/services/template/restart",
                            headers=as_user("technician")).status_code == 403
