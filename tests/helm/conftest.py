"""Fixtures for the Helm service: its app on SQLite and PostgreSQL, tokens, log records."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from dotenv import dotenv_values
from flask import Flask
from flask.testing import FlaskClient

from hivematrix.cli import main
from hivematrix.common.db import Database
from hivematrix.common.logging import KitJsonFormatter, RequestContextFilter
from hivematrix.common.testing import ServiceProcess, TokenFactory, database_url_fixture, free_port
from hivematrix.helm import SERVICE, create_app
from tests.nexus.conftest import Platform, create_users

helm_db_url = database_url_fixture("helm_db_url", SERVICE.migrations, "helm")


@pytest.fixture
def helm_db(helm_db_url: str) -> Iterator[Database]:
    database = Database(helm_db_url)
    yield database
    database.dispose()


@pytest.fixture
def helm_app(service_settings: dict[str, Any], helm_db_url: str) -> Iterator[Flask]:
    """Helm without its background jobs (tests call the steps themselves)."""
    app = create_app({**service_settings, "DATABASE_URL": helm_db_url,
                      "HELM_BACKGROUND_JOBS": False})
    yield app
    app.extensions["hivematrix.db"].dispose()


@pytest.fixture
def helm_client(helm_app: Flask) -> FlaskClient:
    return helm_app.test_client()



@pytest.fixture
def as_service(tokens: TokenFactory) -> Callable[[str], dict[str, str]]:
    """Headers of a service calling Helm."""

    def headers(caller: str) -> dict[str, str]:
        return tokens.headers(tokens.service(caller, "helm"))

    return headers


class RecordMaker:
    """Log records as a service's kit logging writes them: the dict and its JSON line."""

    def __init__(self, service: str) -> None:
        self.service = service
        self.formatter = KitJsonFormatter()
        self.filter = RequestContextFilter(service)

    def record(self, message: str, level: int = logging.INFO, **extra: Any) -> dict[str, Any]:
        record = logging.LogRecord("hivematrix.tests", level, __file__, 1, message, None, None)
        self.filter.filter(record)
        for key, value in extra.items():
            setattr(record, key, value)
        return self.formatter.payload(record)

    def line(self, payload: dict[str, Any]) -> str:
        return self.formatter.serialize(payload) + "\n"


@pytest.fixture
def records() -> Callable[[str], RecordMaker]:
    return RecordMaker


def write_lines(path: Path, *lines: str, mode: str = "a") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, mode, encoding="utf-8") as out:
        for line in lines:
            out.write(line if line.endswith("\n") else line + "\n")


# --- a real platform: identity, Core, Nexus and Helm as processes --------------------------

def start_helm_platform(home: Path) -> Platform:
    """The four services under gunicorn, each logging to ``logs/<name>.log`` as the
    supervisor would, so Helm both receives their pushes and reads their files."""
    names = ("identity", "core", "helm", "nexus")
    ports = {name: free_port() for name in names}
    services = {name: {"url": f"http://127.0.0.1:{port}", "port": port, "title": name.title(),
                       "visible": name == "helm", "admin_only": name == "helm",
                       "billing_or_admin_only": False}
                for name, port in ports.items()}
    (home / "services.json").write_text(json.dumps(services))
    result = CliRunner().invoke(main, ["init"], env={"HIVEMATRIX_HOME": str(home)})
    assert result.exit_code == 0, result.output
    identity_url = services["identity"]["url"]
    envs = {
        "identity": {"IDENTITY_REDIRECT_URIS": f"{services['nexus']['url']}/keycloak-callback"},
        "core": {"OIDC_ISSUER_URL": f"{identity_url}/realms/hivematrix"},
        "helm": {"HELM_TAIL_INTERVAL_SECONDS": "0.2"},
        "nexus": {"KEYCLOAK_BACKEND_URL": identity_url, "NEXUS_LOGIN_RATE_LIMIT": "600/minute"},
    }
    processes: dict[str, ServiceProcess] = {}
    try:
        for name in names:
            process = ServiceProcess(name, home, port=ports[name], env=envs[name])
            process.log_path = home / "logs" / f"{name}.log"
            processes[name] = process.start()
    except BaseException:
        for process in processes.values():
            process.stop()
        raise
    create_users(home)
    return Platform(home, processes, echo_url="")


def service_token(platform: Platform, caller: str, target: str = "helm") -> str:
    """A real service token from Core, as ``caller`` would obtain it with its secret."""
    secret = dotenv_values(platform.home / caller / ".flaskenv")["SERVICE_SECRET"]
    assert secret
    response = httpx.post(f"{platform.processes['core'].url}/service-token",
                          json={"calling_service": caller, "target_service": target},
                          auth=(caller, secret), timeout=10)
    assert response.status_code == 200, response.text
    return str(response.json()["token"])


@pytest.fixture(scope="module")
def helm_platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    found = start_helm_platform(tmp_path_factory.mktemp("helm-platform"))
    yield found
    for process in found.processes.values():
        process.stop()
