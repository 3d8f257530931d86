"""Beacon against a real Codex: Codex's app, migrated and seeded with the wall's tickets,
served over HTTP in this process; Beacon's app calls it with service tokens from the fake
Core, exactly as it would in production."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from hivematrix.beacon import create_app
from hivematrix.codex import SERVICE as CODEX
from hivematrix.codex import create_app as create_codex
from hivematrix.common.db import get_session
from hivematrix.common.testing import FakeCore, TokenFactory, migrated_database, serve_wsgi
from tests.beacon.wall_data import TICKET_URL, VIEWS, WallSeed, seed_wall
from tests.codex.fakes.freshservice import API_KEY, FreshserviceFake

BEACON_SECRET = "beacon-test-secret"


@dataclass
class Codex:
    app: Flask
    url: str
    seed: WallSeed


@pytest.fixture
def vendor() -> Iterator[str]:
    """Codex's PSA: the Freshservice contract fake (used when a test starts a sync)."""
    with serve_wsgi(FreshserviceFake().seed().wsgi()) as url:
        yield url


@pytest.fixture
def codex(service_settings: dict[str, Any], tmp_path: Path, vendor: str,
          hm_home: Path) -> Iterator[Codex]:
    url = f"sqlite:///{tmp_path}/codex.db"
    assert CODEX.migrations
    with migrated_database(CODEX.migrations, url):
        app = create_codex({**service_settings, "DATABASE_URL": url,
                            "CODEX_PSA_PROVIDER": "freshservice", "FRESHSERVICE_URL": vendor,
                            "FRESHSERVICE_API_KEY": API_KEY, "FRESHSERVICE_TICKET_URL": TICKET_URL,
                            "CODEX_OUTBOUND_ALLOWLIST": "127.0.0.1", "CODEX_HTTP_RETRIES": 1})
        with app.app_context():
            seed = seed_wall(get_session())
            get_session().commit()
        with serve_wsgi(app) as codex_url:
            port = int(codex_url.rsplit(":", 1)[1])
            (hm_home / "services.json").write_text(json.dumps(
                {"codex": {"url": codex_url, "port": port}}))
            yield Codex(app, codex_url, seed)
        app.extensions["hivematrix.db"].dispose()


@pytest.fixture
def beacon_settings(service_settings: dict[str, Any], fake_core: FakeCore) -> dict[str, Any]:
    fake_core.secrets["beacon"] = BEACON_SECRET
    return {**service_settings, "SERVICE_SECRET": BEACON_SECRET, "BEACON_VIEWS": VIEWS}


@pytest.fixture
def beacon(beacon_settings: dict[str, Any], codex: Codex) -> Flask:
    return create_app(beacon_settings)


@pytest.fixture
def client(beacon: Flask) -> FlaskClient:
    return beacon.test_client()


@pytest.fixture
def display_headers(tokens: TokenFactory) -> Callable[..., dict[str, str]]:
    """What Nexus sends for a display link: its own service token and the link's name."""

    def headers(link: str | None = "Lobby TV") -> dict[str, str]:
        found = tokens.headers(tokens.service("nexus", "beacon"))
        if link is not None:
            found["X-HiveMatrix-Display"] = link
        return found

    return headers
