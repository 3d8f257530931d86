"""With Codex installed, a sign-in creates the user's agent and applies its home page and theme;
the theme toggle is passed on to Codex; Codex being down never blocks a sign-in."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select

from hivematrix.codex import SERVICE as CODEX
from hivematrix.codex import create_app as create_codex
from hivematrix.codex.models import Agent
from hivematrix.common.db import Database
from hivematrix.common.testing import free_port, migrated_database, serve_wsgi
from tests.nexus.conftest import Platform, start_platform

pytestmark = pytest.mark.processes
HTML = {"Accept": "text/html"}


@pytest.fixture(scope="module")
def with_codex(tmp_path_factory: pytest.TempPathFactory,
               echo: str) -> Iterator[tuple[Platform, Database]]:
    platform = start_platform(tmp_path_factory.mktemp("platform"), echo)
    url = f"sqlite:///{tmp_path_factory.mktemp('codex')}/codex.db"
    assert CODEX.migrations
    try:
        with migrated_database(CODEX.migrations, url):
            app = create_codex({"HIVEMATRIX_HOME": str(platform.home), "DATABASE_URL": url,
                                "CORE_SERVICE_URL": platform.processes["core"].url,
                                "CODEX_SCHEDULER": False, "LOG_SHIPPING": False})
            with serve_wsgi(app) as codex_url:
                services_file = platform.home / "services.json"
                services = json.loads(services_file.read_text())
                services["codex"] = {"url": codex_url, "port": int(codex_url.rsplit(":", 1)[1]),
                                     "title": "Codex", "visible": True, "admin_only": False,
                                     "billing_or_admin_only": False}
                services_file.write_text(json.dumps(services))
                database = Database(url)
                yield platform, database
                database.dispose()
    finally:
        for process in platform.processes.values():
            process.stop()


def agent(database: Database, username: str) -> Any:
    with database.transaction() as session:
        return session.scalar(select(Agent).where(Agent.username == username))


def test_sign_in_creates_the_agent_and_applies_its_settings(
        with_codex: tuple[Platform, Database]) -> None:
    platform, database = with_codex
    assert agent(database, "tom") is None
    platform.login("tom")
    created = agent(database, "tom")
    assert created is not None and created.theme == "system"
    for home_page in ("beacon", "template"):  # whatever the default, each choice is followed
        with database.transaction() as session:
            row = session.scalar(select(Agent).where(Agent.username == "tom"))
            row.home_page, row.theme = home_page, "dark"
        client = platform.login("tom")
        home = client.get("/", headers=HTML)
        assert home.status_code == 302 and home.headers["Location"] == f"/{home_page}/"
    assert 'data-theme="dark"' in client.get("/template/", headers=HTML).text


def test_the_theme_toggle_reaches_codex(with_codex: tuple[Platform, Database]) -> None:
    platform, database = with_codex
    client = platform.login("bill")
    assert client.put("/nexus/api/preferences", json={"theme": "dark"}).status_code == 200
    assert agent(database, "bill").theme == "dark"
    client.put("/nexus/api/preferences", json={"color_theme": "green"})
    assert agent(database, "bill").theme == "dark"  # only the theme is Codex's to keep


def test_codex_down_does_not_block_a_sign_in(with_codex: tuple[Platform, Database]) -> None:
    platform, _ = with_codex
    services_file = platform.home / "services.json"
    saved = services_file.read_text()
    services = json.loads(saved)
    services["codex"]["url"] = f"http://127.0.0.1:{free_port()}"
    services_file.write_text(json.dumps(services))
    try:
        client = platform.login("alice")
        assert client.get("/template/", headers=HTML).status_code == 200
    finally:
        services_file.write_text(saved)

