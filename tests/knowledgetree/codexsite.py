"""A real Codex app served over HTTP (in a thread, on its own SQLite database) and named in
``services.json``, for the pages that keep the grid/list choice in Codex's settings."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from hivematrix.codex import SERVICE, create_app
from hivematrix.codex.models import Agent
from hivematrix.common import db
from hivematrix.common.testing import serve_wsgi


@dataclass
class CodexSite:
    url: str
    app: Flask

    def view_of(self, subject: str) -> str | None:
        """The agent's stored ``knowledge_tree_view`` (None: Codex has no row for them)."""
        with self.app.extensions["hivematrix.db"].transaction() as session:
            agent = session.query(Agent).filter_by(subject=subject).one_or_none()
            return None if agent is None else str(agent.knowledge_tree_view)

    def set_view(self, subject: str, value: str) -> None:
        with self.app.extensions["hivematrix.db"].transaction() as session:
            session.query(Agent).filter_by(subject=subject).one().knowledge_tree_view = value


def name_codex(home: Path, url: str) -> None:
    path = home / "services.json"
    services: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
    services["codex"] = {"url": url, "port": int(url.rsplit(":", 1)[1]), "title": "Codex",
                         "visible": True, "admin_only": False, "billing_or_admin_only": False}
    path.write_text(json.dumps(services))


@pytest.fixture(name="codex_site")
def codex_site_fixture(service_settings: dict[str, Any], hm_home: Path,
                       tmp_path: Path) -> Iterator[CodexSite]:
    assert SERVICE.migrations
    url = f"sqlite:///{tmp_path}/codex.db"
    db.upgrade(SERVICE.migrations, url)
    app = create_app({**service_settings, "DATABASE_URL": url})
    with serve_wsgi(app.wsgi_app) as base:
        name_codex(hm_home, base)
        yield CodexSite(base, app)
    app.extensions["hivematrix.db"].dispose()
