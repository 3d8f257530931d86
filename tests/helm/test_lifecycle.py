"""Every installed service started, crashed, refused and stopped through the CLI, for real."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from hivematrix.common.registry import discover_services
from hivematrix.common.testing import FakeCore, free_port, process_group_gone
from hivematrix.helm import lifecycle

pytestmark = pytest.mark.processes


def cli(env: dict[str, str], *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "hivematrix.cli", *args], env=env,
                          capture_output=True, text=True, timeout=timeout, check=False)


def test_start_crash_refuse_and_stop_every_service(hm_home: Path, fake_core: FakeCore) -> None:
    names = list(discover_services())
    ports = {name: free_port() for name in names}
    (hm_home / "services.json").write_text(json.dumps(
        {name: {"url": f"http://127.0.0.1:{port}", "port": port} for name, port in ports.items()}))
    env = {**os.environ, "HIVEMATRIX_HOME": str(hm_home), "CORE_SERVICE_URL": fake_core.url,
           "COLUMNS": "200"}
    # Not FalkorDB's default port: another test may be running a whole platform meanwhile.
    graph_port = free_port()
    graph = cli(env, "config", "set", "databases.graph",
                json.dumps({"backend": "falkordb", "port": graph_port}))
    assert graph.returncode == 0, graph.stderr
    supervisors: dict[str, int] = {}
    services: dict[str, int] = {}
    try:
        started = cli(env, "start")
        assert started.returncode == 0, started.stderr
        healthy = [line.split(":")[0] for line in started.stderr.splitlines()
                   if ": healthy at" in line]
        # KnowledgeTree needs a graph, so Helm also runs the embedded FalkorDB, before it.
        assert sorted(healthy) == sorted([*names, "falkordb"])
        assert healthy.index("falkordb") < healthy.index("knowledgetree")
        assert f"falkordb: healthy at redis://127.0.0.1:{graph_port}" in started.stderr
        # Dependencies first: the identity provider, then Core, then the gateway.
        assert healthy.index("identity") < healthy.index("core") < healthy.index("nexus")
        assert healthy.index("core") < healthy.index("template")
        supervisors["falkordb"] = int((hm_home / "run" / "falkordb.pid").read_text())
        for name in names:
            supervisors[name] = int((hm_home / "run" / f"{name}.pid").read_text())
            services[name] = int((hm_home / "run" / f"{name}.child.pid").read_text())
            assert supervisors[name] != services[name]

        # A crash: the template's whole process group is killed; its supervisor starts it again.
        crashed = services["template"]
        os.killpg(crashed, signal.SIGKILL)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            now = lifecycle.service_pid(hm_home, "template")
            if (now not in (None, crashed)
                    and lifecycle.health(f"http://127.0.0.1:{ports['template']}") == "healthy"):
                break
            time.sleep(0.2)
        else:
            pytest.fail("the template was not started again after it was killed")
        services["template"] = now
        assert "exited with code" in (hm_home / "logs" / "template.log").read_text()

        status = cli(env, "status")
        assert status.returncode == 0, status.stderr
        rows = {}
        for line in status.stdout.splitlines():
            cells = [cell.strip() for cell in line.strip().strip("│┃").split("│")]
            if cells[0] in names:
                rows[cells[0]] = cells
        assert set(rows) == set(names), status.stdout
        for name, cells in rows.items():
            assert cells[1:5] == ["running", "healthy", str(services[name]), str(ports[name])]
            assert cells[6].endswith("MB") and cells[7] != "-"
        assert rows["template"][8] == "1", status.stdout  # restarts
        assert rows["core"][8] == "0"

        # A port taken by some other program: the start is refused, saying by whom.
        assert cli(env, "stop", "template").returncode == 0
        with socket.socket() as squatter:
            squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            squatter.bind(("127.0.0.1", ports["template"]))
            squatter.listen()
            refused = cli(env, "start", "template")
        assert refused.returncode == 1
        assert f"port {ports['template']} is already in use by python" in refused.stderr
        assert not (hm_home / "run" / "template.pid").exists()
        assert cli(env, "start", "template").returncode == 0
        services["template"] = int((hm_home / "run" / "template.child.pid").read_text())
        supervisors["template"] = int((hm_home / "run" / "template.pid").read_text())
    finally:
        stopped = cli(env, "stop")
    assert stopped.returncode == 0, stopped.stderr
    lines = [line.split(":")[0] for line in stopped.stderr.splitlines() if ": stopped" in line]
    assert lines.index("nexus") < lines.index("core") < lines.index("identity")
    assert lines.index("knowledgetree") < lines.index("falkordb")  # the graph stops last
    assert process_group_gone(supervisors["falkordb"])
    assert not list((hm_home / "run").glob("falkordb.*pid"))
    for name in names:
        assert process_group_gone(supervisors[name]), name
        assert process_group_gone(services[name]), name
        assert not list((hm_home / "run").glob(f"{name}.*pid"))
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"http://127.0.0.1:{ports[name]}/health")
