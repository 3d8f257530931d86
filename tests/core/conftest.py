"""Core under test: a real app with its own keys, a contract fake of an OIDC provider."""

__all__ = ["FakeIdentityProvider", "exchange"]

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from hivematrix.common.testing import FakeIdentityProvider, migrated_database, serve_wsgi
from hivematrix.core import SERVICE, create_app


@pytest.fixture
def idp() -> Iterator[FakeIdentityProvider]:
    provider = FakeIdentityProvider()
    with serve_wsgi(provider.wsgi()) as url:
        provider.url = url
        yield provider


@pytest.fixture(params=["sqlite", "postgresql"])
def core_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    url = (f"sqlite:///{tmp_path}/core.db" if request.param == "sqlite"
           else request.getfixturevalue("pg_url"))
    with migrated_database(SERVICE.migrations, url):
        yield url


@pytest.fixture
def core_settings(hm_home: Path, idp: FakeIdentityProvider,
                  core_database_url: str) -> dict[str, Any]:
    """Settings for Core: its home, database and the fake provider."""
    (hm_home / "services.json").write_text(json.dumps({
        "template": {"url": "http://127.0.0.1:9", "port": 9},
        "codex": {"url": "http://127.0.0.1:9", "port": 9},
    }))
    return {"HIVEMATRIX_HOME": str(hm_home), "DATABASE_URL": core_database_url,
            "OIDC_ISSUER_URL": idp.issuer, "SECRET_KEY": "test", "TESTING": True}


@pytest.fixture
def core_app(core_settings: dict[str, Any]) -> Iterator[Flask]:
    app = create_app(core_settings)
    yield app
    app.extensions["hivematrix.db"].dispose()


@pytest.fixture
def core(core_app: Flask) -> FlaskClient:
    return core_app.test_client()


def exchange(core: FlaskClient, access_token: str) -> str:
    """A HiveMatrix JWT for an access token the fake provider knows."""
    response = core.post("/api/token/exchange", json={"access_token": access_token})
    assert response.status_code == 200, response.json
    return str(response.json["token"])
