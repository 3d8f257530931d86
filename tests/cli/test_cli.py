"""The `hivematrix` command: init, db upgrade, run (real gunicorn), start and stop."""

import json
import os
import stat
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from dotenv import dotenv_values

from hivematrix.cli import main
from hivematrix.common import db
from hivematrix.common.registry import discover_services
from hivematrix.common.testing import (
    FakeCore,
    ServiceProcess,
    TokenFactory,
    free_port,
    process_group_gone,
)
from hivematrix.helm import lifecycle


def run_cli(*args: str) -> str:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def test_help_lists_commands() -> None:
    output = run_cli("--help")
    for command in ("init", "run", "db", "start", "stop"):
        assert command in output


def test_template_registers_through_entry_point() -> None:
    spec = discover_services()["template"]
    assert (spec.port, spec.factory) == (5040, "hivematrix.template:create_app")


def test_init_creates_home_with_private_secrets(hm_home: Path) -> None:
    run_cli("init")
    services = json.loads((hm_home / "services.json").read_text())
    assert services["template"]["url"] == "http://127.0.0.1:5040"
    master = json.loads((hm_home / "master_services.json").read_text())
    assert master["template"] == {"url": "http://127.0.0.1:5040", "port": 5040}
    flaskenv = hm_home / "template" / ".flaskenv"
    values = dotenv_values(flaskenv)
    assert len(values["SECRET_KEY"]) >= 32 and len(values["SERVICE_SECRET"]) >= 32
    assert stat.S_IMODE(flaskenv.stat().st_mode) == 0o600
    conf = (hm_home / "template" / "instance" / "template.conf").read_text()
    assert "connection_string = sqlite:///" in conf
    assert (hm_home / "configs" / "master_config.json").exists()


def test_init_again_keeps_secrets_and_operator_ports(hm_home: Path) -> None:
    run_cli("init")
    before = dotenv_values(hm_home / "template" / ".flaskenv")
    services = json.loads((hm_home / "services.json").read_text())
    services["template"].update(port=6040, url="http://127.0.0.1:6040")
    (hm_home / "services.json").write_text(json.dumps(services))
    run_cli("init")
    assert dotenv_values(hm_home / "template" / ".flaskenv") == before
    assert json.loads((hm_home / "services.json").read_text())["template"]["port"] == 6040


def test_db_upgrade_creates_schema(hm_home: Path) -> None:
    run_cli("init")
    run_cli("db", "upgrade", "template")
    url = f"sqlite:///{hm_home / 'template' / 'template.db'}"
    assert db.current_revision("hivematrix.template", url) == "0001"


def test_unknown_service_is_a_clear_error(hm_home: Path) -> None:
    result = CliRunner().invoke(main, ["db", "upgrade", "nosuch"])
    assert result.exit_code != 0
    assert "unknown service 'nosuch'" in result.output


@pytest.mark.processes
def test_run_serves_template_under_gunicorn(hm_home: Path, fake_core: FakeCore,
                                            tokens: TokenFactory) -> None:
    run_cli("init")
    with ServiceProcess("template", hm_home, env={"CORE_SERVICE_URL": fake_core.url}) as service:
        health = httpx.get(f"{service.url}/health").json()
        assert health["status"] == "healthy"
        assert health["checks"]["database"]["status"] == "healthy"
        headers = tokens.headers(tokens.user("billing"))
        response = httpx.get(f"{service.url}/api/data", headers=headers)
        assert response.json()["permission_level"] == "billing"
        # Migrations ran before gunicorn started.
        assert db.current_revision("hivematrix.template",
                                   f"sqlite:///{hm_home / 'template' / 'template.db'}") == "0001"
    log_lines = [json.loads(line) for line in service.log().splitlines() if line.startswith("{")]
    assert any(line.get("path") == "/api/data" and line.get("status") == 200 for line in log_lines)


@pytest.mark.processes
def test_start_is_idempotent_and_stop_leaves_nothing(hm_home: Path, fake_core: FakeCore) -> None:
    port = free_port()
    run_cli("init")
    # apps_registry.json is where an operator chooses ports; start writes services.json from it.
    registry = json.loads((hm_home / "apps_registry.json").read_text())
    registry["services"]["template"]["port"] = port
    (hm_home / "apps_registry.json").write_text(json.dumps(registry))
    os.environ["CORE_SERVICE_URL"] = fake_core.url
    try:
        run_cli("start", "template")
        assert json.loads((hm_home / "services.json").read_text())["template"]["port"] == port
        supervisor = lifecycle.supervisor_pid(hm_home, "template")
        service = lifecycle.service_pid(hm_home, "template")
        assert supervisor is not None and service is not None
        assert lifecycle.health(f"http://127.0.0.1:{port}") == "healthy"
        assert "already running" in run_cli("start", "template")
        assert lifecycle.supervisor_pid(hm_home, "template") == supervisor
        assert lifecycle.service_pid(hm_home, "template") == service
        run_cli("stop")
    finally:
        del os.environ["CORE_SERVICE_URL"]
        lifecycle.stop(hm_home, "template")
    assert lifecycle.supervisor_pid(hm_home, "template") is None
    for pid in (supervisor, service):
        assert process_group_gone(pid)
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/health")
