"""Core under test: a real app with its own keys, a contract fake of an OIDC provider."""

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from flask import Flask, jsonify, request
from flask.testing import FlaskClient

from hivematrix.common.testing import migrated_database, serve_wsgi
from hivematrix.core import SERVICE, create_app


@dataclass
class FakeIdentityProvider:
    """An OpenID Connect provider's discovery and userinfo endpoints, over real HTTP.

    ``users`` maps an access token to the claims userinfo releases for it.
    """

    users: dict[str, dict[str, Any]] = field(default_factory=dict)
    url: str = ""
    userinfo_status: int | None = None  # force an answer, e.g. 500

    @property
    def issuer(self) -> str:
        return f"{self.url}/realms/hivematrix"

    def wsgi(self) -> Flask:
        app = Flask("fake_idp")

        @app.get("/realms/hivematrix/.well-known/openid-configuration")
        def discovery() -> Any:
            base = f"{self.issuer}/protocol/openid-connect"
            return jsonify({"issuer": self.issuer, "userinfo_endpoint": f"{base}/userinfo",
                            "authorization_endpoint": f"{base}/auth",
                            "token_endpoint": f"{base}/token"})

        @app.get("/realms/hivematrix/protocol/openid-connect/userinfo")
        def userinfo() -> Any:
            if self.userinfo_status:
                return {"error": "server_error"}, self.userinfo_status
            scheme, _, token = request.headers.get("Authorization", "").partition(" ")
            claims = self.users.get(token) if scheme == "Bearer" else None
            if claims is None:
                return {"error": "invalid_token"}, 401
            return jsonify(claims)

        return app

    def add_user(self, token: str, *, sub: str, groups: list[str] | None = None,
                 **claims: Any) -> str:
        self.users[token] = {"sub": sub, "preferred_username": sub, "name": sub.title(),
                             "email": f"{sub}@example.test", "groups": groups or [], **claims}
        return token


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
