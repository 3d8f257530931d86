"""./start.sh and ./stop.sh, run as an operator would (in a throwaway HIVEMATRIX_HOME)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from hivematrix.common.registry import discover_services
from hivematrix.common.testing import FakeCore, free_port, process_group_gone

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.processes


def script(name: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(ROOT / name)], env=env, capture_output=True, text=True,
                          timeout=180, check=False)


def test_start_stop_cycle(hm_home: Path, fake_core: FakeCore) -> None:
    # An operator's port choices in services.json are honoured by init and start; tests never
    # take the default ports.
    ports = {name: free_port() for name in discover_services()}
    (hm_home / "services.json").write_text(json.dumps(
        {name: {"url": f"http://127.0.0.1:{port}", "port": port} for name, port in ports.items()}))
    base = f"http://127.0.0.1:{ports['template']}"
    env = {**os.environ, "HIVEMATRIX_HOME": str(hm_home), "CORE_SERVICE_URL": fake_core.url}
    # Not FalkorDB's default port: another test may be running a whole platform meanwhile.
    graph = subprocess.run([sys.executable, "-m", "hivematrix.cli", "config", "set",
                            "databases.graph",
                            json.dumps({"backend": "falkordb", "port": free_port()})],
                           env=env, capture_output=True, text=True, timeout=60, check=False)
    assert graph.returncode == 0, graph.stderr

    started = script("start.sh", env)
    try:
        assert started.returncode == 0, started.stderr
        for port in ports.values():
            assert f"healthy at http://127.0.0.1:{port}" in started.stderr
        assert httpx.get(f"{base}/health").json()["status"] == "healthy"
        assert httpx.get(f"{base}/apispec.json").json()["openapi"].startswith("3.")
        docs = httpx.get(f"{base}/docs")
        assert docs.status_code == 200 and "swagger-ui" in docs.text
        assert httpx.get(f"{base}/docs/assets/swagger-ui-bundle.js").status_code == 200
        unauthenticated = httpx.get(f"{base}/api/data")
        assert unauthenticated.status_code == 401
        assert unauthenticated.headers["content-type"] == "application/problem+json"

        # Each service's supervisor, and the service it runs in a process group of its own.
        pids = {name: int((hm_home / "run" / f"{name}.pid").read_text()) for name in ports}
        served = [int((hm_home / "run" / f"{name}.child.pid").read_text()) for name in ports]
        again = script("start.sh", env)
        assert again.returncode == 0 and "already running" in again.stderr
        assert {name: int((hm_home / "run" / f"{name}.pid").read_text())
                for name in ports} == pids
    finally:
        stopped = script("stop.sh", env)
    assert stopped.returncode == 0, stopped.stderr
    for pid in served:
        assert process_group_gone(pid)
    for name, pid in pids.items():
        assert process_group_gone(pid)
        assert not (hm_home / "run" / f"{name}.pid").exists()
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"http://127.0.0.1:{ports[name]}/health")
