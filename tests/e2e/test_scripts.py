"""./start.sh and ./stop.sh, run as an operator would (in a throwaway HIVEMATRIX_HOME)."""

import json
import os
import subprocess
from pathlib import Path

import httpx
import pytest

from hivematrix.common.testing import FakeCore, free_port

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.processes


def script(name: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(ROOT / name)], env=env, capture_output=True, text=True,
                          timeout=180, check=False)


def test_start_stop_cycle(hm_home: Path, fake_core: FakeCore) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    # An operator's port choice in services.json is honoured by init and start.
    (hm_home / "services.json").write_text(json.dumps({"template": {"url": base, "port": port}}))
    env = {**os.environ, "HIVEMATRIX_HOME": str(hm_home), "CORE_SERVICE_URL": fake_core.url}

    started = script("start.sh", env)
    try:
        assert started.returncode == 0, started.stderr
        assert f"healthy at {base}" in started.stderr
        assert httpx.get(f"{base}/health").json()["status"] == "healthy"
        assert httpx.get(f"{base}/apispec.json").json()["openapi"].startswith("3.")
        docs = httpx.get(f"{base}/docs")
        assert docs.status_code == 200 and "swagger-ui" in docs.text
        assert httpx.get(f"{base}/docs/assets/swagger-ui-bundle.js").status_code == 200
        unauthenticated = httpx.get(f"{base}/api/data")
        assert unauthenticated.status_code == 401
        assert unauthenticated.headers["content-type"] == "application/problem+json"

        pid = int((hm_home / "run" / "template.pid").read_text())
        again = script("start.sh", env)
        assert again.returncode == 0 and "already running" in again.stderr
        assert int((hm_home / "run" / "template.pid").read_text()) == pid
    finally:
        stopped = script("stop.sh", env)
    assert stopped.returncode == 0, stopped.stderr
    with pytest.raises(ProcessLookupError):
        os.killpg(pid, 0)
    assert not (hm_home / "run" / "template.pid").exists()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{base}/health")
