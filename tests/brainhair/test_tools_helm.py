"""Helm tools against a real Helm app over HTTP: service status and recent errors, for
admins only (Helm refuses anyone else's token too)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from hivematrix.brainhair.tools import helm
from hivematrix.brainhair.tools.base import BearerServices, Tool, ToolContext, ToolError
from hivematrix.common.db import Database
from hivematrix.common.keys import SigningKey
from hivematrix.common.service_client import ServiceClient
from hivematrix.common.testing import FakeCore, TokenFactory, migrated_database, serve_wsgi
from hivematrix.helm import SERVICE, create_app, logstore
from tests.brainhair.services import LEAKY, run

TOOLS = {tool.name: tool for tool in helm.TOOLS}


@dataclass
class HelmSite:
    tokens: TokenFactory
    client: ServiceClient

    def context(self, level: str) -> ToolContext:
        user = self.tokens.user_claims(level)
        return ToolContext(user=user, services=BearerServices(
            self.client, self.tokens.key.sign(user)), session_id="s")


def seed_logs(url: str) -> None:
    now = datetime.now(UTC)
    records = [
        {"level": "ERROR", "message": "Codex could not reach Datto", "service": "codex",
         "minutes": 30},
        {"level": "CRITICAL", "message": "Ledger database is gone", "service": "ledger",
         "minutes": 10},
        {"level": "WARNING", "message": "slow answer", "service": "codex", "minutes": 5},
        {"level": "ERROR", "message": "an old failure", "service": "codex",
         "minutes": 60 * 24 * 3},
    ]
    rows = [logstore.row_from_record(
        {"timestamp": (now - timedelta(minutes=item["minutes"])).isoformat(),
         "level": item["level"], "message": item["message"]},
        service=str(item["service"]), source="push") for item in records]
    database = Database(url)
    try:
        with database.transaction() as session:
            logstore.store(session, rows)
    finally:
        database.dispose()


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HelmSite]:
    home = tmp_path_factory.mktemp("helm-tools-home")
    key = SigningKey.generate()
    tokens = TokenFactory(key)
    core = FakeCore(keys=[key], tokens=tokens)
    assert SERVICE.migrations
    with pytest.MonkeyPatch.context() as patch, serve_wsgi(core.wsgi()) as core_url, \
            migrated_database(SERVICE.migrations, f"sqlite:///{home}/helm.db") as url:
        for name in LEAKY:
            patch.delenv(name, raising=False)
        core.url = core_url
        seed_logs(url)
        app = create_app({"HIVEMATRIX_HOME": str(home), "CORE_SERVICE_URL": core_url,
                          "SECRET_KEY": "test", "TESTING": True, "DATABASE_URL": url,
                          "HELM_BACKGROUND_JOBS": False})
        try:
            with serve_wsgi(app) as helm_url:
                (home / "services.json").write_text(json.dumps({
                    "helm": {"url": helm_url, "port": int(helm_url.rsplit(":", 1)[1])}}))
                client = ServiceClient(service_name="brainhair", secret=None, core_url=core_url,
                                       services_file=str(home / "services.json"))
                yield HelmSite(tokens, client)
                client.http.close()
        finally:
            app.extensions["hivematrix.db"].dispose()


def tool(name: str) -> Tool:
    return TOOLS[name]


def test_service_status_lists_every_registered_service(site: HelmSite) -> None:
    status = run(tool("helm_service_status"), site.context("admin"), {})
    assert [service["name"] for service in status["services"]] == ["helm"]
    helm_row: dict[str, Any] = status["services"][0]
    assert {"state", "health", "log_counts"} <= set(helm_row)
    assert status["checked_at"]


def test_recent_errors_are_newest_first_and_within_the_window(site: HelmSite) -> None:
    found = run(tool("helm_recent_errors"), site.context("admin"), {})
    assert [entry["message"] for entry in found["entries"]] == [
        "Ledger database is gone", "Codex could not reach Datto"]
    codex = run(tool("helm_recent_errors"), site.context("admin"),
                {"service": "codex", "level": "WARNING", "hours": 100})
    assert [entry["message"] for entry in codex["entries"]] == [
        "slow answer", "Codex could not reach Datto", "an old failure"]
    one = run(tool("helm_recent_errors"), site.context("admin"), {"limit": 1})
    assert len(one["entries"]) == 1 and one["truncated"] is True


def test_helm_refuses_anyone_but_an_admin(site: HelmSite) -> None:
    with pytest.raises(ToolError, match=r"Helm refused \(403\)"):
        run(tool("helm_recent_errors"), site.context("technician"), {})
