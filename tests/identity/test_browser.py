"""The identity service under gunicorn: the real sign-in page in Chromium, and parallel workers
starting together on a fresh home."""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import jwt
import pytest
from click.testing import CliRunner
from flask import Flask, request

from hivematrix.cli import main
from hivematrix.common.testing import FakeCore, ServiceProcess, serve_wsgi

from .conftest import OIDC, REALM, s256

NEW_PASSWORD = "a password of my own choosing"


@pytest.fixture
def callback() -> Iterator[tuple[str, list[dict[str, str]]]]:
    """Core's callback URL, standing in: records what the provider sends back."""
    seen: list[dict[str, str]] = []
    app = Flask("callback")

    @app.get("/keycloak-callback")
    def receive() -> str:
        seen.append(dict(request.args))
        return "<!DOCTYPE html><title>Core</title><p>Signed in</p>"

    with serve_wsgi(app) as url:
        yield f"{url}/keycloak-callback", seen


def start_identity(hm_home: Path, fake_core: FakeCore, redirect_uri: str,
                   *args: str) -> ServiceProcess:
    assert CliRunner().invoke(main, ["init"]).exit_code == 0
    env = {"CORE_SERVICE_URL": fake_core.url, "IDENTITY_REDIRECT_URIS": redirect_uri}
    return ServiceProcess("identity", hm_home, env=env, args=args).start()


@pytest.mark.browser
@pytest.mark.processes
def test_first_admin_signs_in_through_the_real_page(browser: Any, hm_home: Path,
                                                     fake_core: FakeCore, callback) -> None:
    redirect_uri, seen = callback
    service = start_identity(hm_home, fake_core, redirect_uri)
    try:
        password = (hm_home / "initial-admin-password").read_text().strip()
        verifier, state, nonce = (secrets.token_urlsafe(48), secrets.token_urlsafe(8),
                                  secrets.token_urlsafe(8))
        query = urlencode({"response_type": "code", "client_id": "core-client",
                           "redirect_uri": redirect_uri, "scope": "openid profile email",
                           "state": state, "nonce": nonce, "code_challenge": s256(verifier),
                           "code_challenge_method": "S256"})
        context = browser.new_context()
        page = context.new_page()
        problems: list[str] = []


        def on_console(message: Any) -> None:
            # Expected: no favicon here (Nexus serves it) and the 400 of the wrong password.
            expected = (message.location.get("url", "").endswith("/favicon.ico")
                        or "status of 400" in message.text)
            if message.type == "error" and not expected:
                problems.append(message.text)

        page.on("console", on_console)
        page.on("pageerror", lambda error: problems.append(str(error)))

        page.goto(f"{service.url}{OIDC}/auth?{query}")
        page.fill("#username", "admin")
        page.fill("#password", "wrong password")
        page.get_by_role("button", name="Sign in").click()
        assert page.get_by_test_id("login-error").inner_text() == "Invalid username or password."

        page.fill("#password", password)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_selector("#new-password")
        page.fill("#new-password", NEW_PASSWORD)
        page.fill("#confirm-password", NEW_PASSWORD)
        page.get_by_role("button", name="Change password and continue").click()
        page.wait_for_url(re.compile(re.escape(redirect_uri) + r"\?"))
        assert problems == []
        context.close()

        assert len(seen) == 1 and seen[0]["state"] == state
        master = json.loads((hm_home / "configs" / "master_config.json").read_text())
        secret = master["keycloak"]["client_secret"]
        tokens = httpx.post(f"{service.url}{OIDC}/token", auth=("core-client", secret), data={
            "grant_type": "authorization_code", "code": seen[0]["code"],
            "redirect_uri": redirect_uri, "code_verifier": verifier})
        assert tokens.status_code == 200, tokens.text
        issuer = httpx.get(f"{service.url}{REALM}/.well-known/openid-configuration").json()[
            "issuer"]
        keys = jwt.PyJWKSet.from_dict(httpx.get(f"{service.url}{OIDC}/certs").json())
        id_token = tokens.json()["id_token"]
        claims = jwt.decode(id_token, keys[jwt.get_unverified_header(id_token)["kid"]].key,
                            algorithms=["RS256"], audience="core-client", issuer=issuer)
        assert claims["nonce"] == nonce and claims["groups"] == ["admins"]
        assert not (hm_home / "initial-admin-password").exists()
    finally:
        service.stop()


@pytest.mark.processes
def test_parallel_workers_bootstrap_exactly_once(hm_home: Path, fake_core: FakeCore) -> None:
    service = start_identity(hm_home, fake_core, "http://127.0.0.1:8000/keycloak-callback",
                             "--workers", "3")
    try:
        assert httpx.get(f"{service.url}/health").json()["status"] == "healthy"
        jwks = [httpx.get(f"{service.url}{OIDC}/certs").json() for _ in range(6)]
        assert all(keys == jwks[0] for keys in jwks)
        assert service.log().count("First start: created user 'admin'") == 1
        password = (hm_home / "initial-admin-password").read_text().strip()
        assert password in service.log()
        discovery = httpx.get(f"{service.url}{REALM}/.well-known/openid-configuration").json()
        assert discovery["issuer"] == f"{service.url}{REALM}"
    finally:
        service.stop()
