"""Fixtures for the identity provider: databases, apps, users and a scripted OIDC client."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import text
from werkzeug.test import TestResponse

from hivematrix.common import db
from hivematrix.common.testing import basic_auth, migrated_database
from hivematrix.identity import SERVICE, accounts, create_app

REALM = "/realms/hivematrix"
OIDC = f"{REALM}/protocol/openid-connect"
CALLBACK = "http://127.0.0.1:8000/keycloak-callback"
PASSWORD = "correct horse battery"


def drop_version_table(url: str) -> None:
    """Leave the shared test database as we found it (other services compare its tables)."""
    engine = db.make_engine(url)
    with engine.begin() as connection:
        connection.execute(text(f"DROP TABLE IF EXISTS {db.version_table(SERVICE.migrations)}"))
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Every identity test that touches the database runs on SQLite and real PostgreSQL."""
    url = (f"sqlite:///{tmp_path}/identity.db" if request.param == "sqlite"
           else request.getfixturevalue("pg_url"))
    with migrated_database(SERVICE.migrations, url):
        yield url
    drop_version_table(url)


@pytest.fixture
def database(database_url: str) -> Iterator[db.Database]:
    database = db.Database(database_url)
    yield database
    database.dispose()


@pytest.fixture
def settings(service_settings: dict[str, Any], database_url: str) -> dict[str, Any]:
    return {**service_settings, "DATABASE_URL": database_url}


@pytest.fixture
def app(settings: dict[str, Any]) -> Iterator[Flask]:
    app = create_app(settings)
    yield app
    app.extensions["hivematrix.db"].dispose()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def client_secret(app: Flask, hm_home: Path) -> str:
    config = json.loads((hm_home / "configs" / "master_config.json").read_text())
    return str(config["keycloak"]["client_secret"])


@pytest.fixture
def make_user(app: Flask):
    """``make_user("kim", groups=[...], ...)``: a user who can sign in with :data:`PASSWORD`."""

    def make(username: str, *, password: str = PASSWORD, groups: list[str] | None = None,
             must_change_password: bool = False, **fields: Any) -> str:
        with app.extensions["hivematrix.db"].transaction() as session:
            accounts.create_user(session, accounts.NewUser(
                username=username, password=password, groups=groups or [],
                must_change_password=must_change_password, **fields))
        return username

    return make



def s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def csrf_from(page: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert match, "the form carries a CSRF token"
    return match.group(1)


def query_of(location: str) -> dict[str, str]:
    return {key: values[0] for key, values in parse_qs(urlsplit(location).query).items()}


@dataclass
class AuthRequest:
    """One authorization request of the relying party, with its PKCE secret."""

    state: str = field(default_factory=lambda: secrets.token_urlsafe(12))
    nonce: str = field(default_factory=lambda: secrets.token_urlsafe(12))
    verifier: str = field(default_factory=lambda: secrets.token_urlsafe(48))
    redirect_uri: str = CALLBACK
    scope: str = "openid profile email"

    def params(self, **overrides: Any) -> dict[str, str]:
        params = {"response_type": "code", "client_id": "core-client",
                  "redirect_uri": self.redirect_uri, "scope": self.scope, "state": self.state,
                  "nonce": self.nonce, "code_challenge": s256(self.verifier),
                  "code_challenge_method": "S256", **overrides}
        return {key: value for key, value in params.items() if value is not None}

    def url(self, **overrides: Any) -> str:
        return f"{OIDC}/auth?{urlencode(self.params(**overrides))}"


class RelyingParty:
    """Core's side of the flow plus the user's browser, scripted over the Flask test client."""

    def __init__(self, client: FlaskClient, secret: str) -> None:
        self.client = client
        self.secret = secret

    def open_login(self, request: AuthRequest, **overrides: Any) -> TestResponse:
        return self.client.get(request.url(**overrides), headers={"Accept": "text/html"})

    def submit(self, request: AuthRequest, form: dict[str, str], page: str,
               **overrides: Any) -> TestResponse:
        data = {"csrf_token": csrf_from(page), **form}
        return self.client.post(request.url(**overrides), data=data,
                                headers={"Accept": "text/html"})

    def sign_in(self, request: AuthRequest, username: str, password: str = PASSWORD,
                **overrides: Any) -> TestResponse:
        page = self.open_login(request, **overrides)
        assert page.status_code == 200, page.get_data(as_text=True)
        return self.submit(request, {"step": "sign_in", "username": username,
                                     "password": password}, page.get_data(as_text=True),
                           **overrides)

    def code_for(self, username: str, password: str = PASSWORD,
                 request: AuthRequest | None = None) -> tuple[AuthRequest, str]:
        request = request or AuthRequest()
        response = self.sign_in(request, username, password)
        assert response.status_code == 302, response.get_data(as_text=True)
        location = response.headers["Location"]
        assert location.startswith(request.redirect_uri + "?")
        params = query_of(location)
        assert params["state"] == request.state
        return request, params["code"]

    def token(self, form: dict[str, str], *, secret: str | None = None,
              method: str = "basic") -> TestResponse:
        secret = self.secret if secret is None else secret
        if method == "basic":
            return self.client.post(f"{OIDC}/token", data=form,
                                    headers=basic_auth("core-client", secret))
        return self.client.post(f"{OIDC}/token",
                                data={**form, "client_id": "core-client", "client_secret": secret})

    def exchange(self, request: AuthRequest, code: str, *, verifier: str | None = None,
                 **kwargs: Any) -> TestResponse:
        form = {"grant_type": "authorization_code", "code": code,
                "redirect_uri": request.redirect_uri,
                "code_verifier": request.verifier if verifier is None else verifier}
        return self.token({k: v for k, v in form.items() if v}, **kwargs)

    def tokens_for(self, username: str, password: str = PASSWORD) -> dict[str, Any]:
        request, code = self.code_for(username, password)
        response = self.exchange(request, code)
        assert response.status_code == 200, response.get_data(as_text=True)
        return dict(response.json or {})

    def userinfo(self, access_token: str) -> TestResponse:
        return self.client.get(f"{OIDC}/userinfo",
                               headers={"Authorization": f"Bearer {access_token}"})

    def refresh(self, refresh_token: str, **kwargs: Any) -> TestResponse:
        return self.token({"grant_type": "refresh_token", "refresh_token": refresh_token},
                          **kwargs)


@pytest.fixture
def rp(client: FlaskClient, client_secret: str) -> RelyingParty:
    return RelyingParty(client, client_secret)
