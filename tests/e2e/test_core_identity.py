"""Core with the built-in identity provider, both as real gunicorn processes over HTTP.

A scripted, browser-less client signs in as the first administrator with the password printed
at identity's first start, is made to change it, completes the authorization-code flow with
PKCE, exchanges the access token at Core, validates the JWT, revokes it and sees validation
fail. Nothing is faked: Core discovers identity's userinfo endpoint itself.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import jwt
import pytest
from click.testing import CliRunner

from hivematrix.cli import main
from hivematrix.common.testing import ServiceProcess

pytestmark = pytest.mark.processes
REDIRECT_URI = "http://127.0.0.1:8000/keycloak-callback"
REALM = "/realms/hivematrix"
NEW_PASSWORD = "a much better admin passphrase"


@dataclass
class Platform:
    identity: ServiceProcess
    core: ServiceProcess
    home: Path

    @property
    def issuer(self) -> str:
        return f"{self.identity.url}{REALM}"

    def client_secret(self) -> str:
        config = json.loads((self.home / "configs" / "master_config.json").read_text())
        return str(config["keycloak"]["client_secret"])


@pytest.fixture
def platform(hm_home: Path) -> Iterator[Platform]:
    assert CliRunner().invoke(main, ["init"]).exit_code == 0
    with ServiceProcess("identity", hm_home) as identity:
        issuer = f"{identity.url}{REALM}"
        with ServiceProcess("core", hm_home, env={"OIDC_ISSUER_URL": issuer}) as core:
            yield Platform(identity, core, hm_home)


def csrf_token(page: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert match, page
    return match.group(1)


def code_flow(platform: Platform, username: str, password: str,
              new_password: str | None = None) -> dict:
    """The tokens a client obtains; ``new_password`` answers a forced password change."""
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(
        hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    state, nonce = secrets.token_urlsafe(16), secrets.token_urlsafe(16)
    params = {"response_type": "code", "client_id": "core-client", "redirect_uri": REDIRECT_URI,
              "scope": "openid profile email", "state": state, "nonce": nonce,
              "code_challenge": challenge, "code_challenge_method": "S256"}
    auth = f"{REALM}/protocol/openid-connect/auth"
    with httpx.Client(base_url=platform.identity.url, follow_redirects=False,
                      headers={"Accept": "text/html"}) as browser:
        page = browser.get(auth, params=params)
        assert page.status_code == 200, page.text
        answer = browser.post(auth, params=params, data={
            "csrf_token": csrf_token(page.text), "step": "sign_in",
            "username": username, "password": password})
        if new_password is not None:
            assert answer.status_code == 200 and 'name="new_password"' in answer.text
            answer = browser.post(auth, params=params, data={
                "csrf_token": csrf_token(answer.text), "step": "change_password",
                "new_password": new_password, "confirm_password": new_password})
        assert answer.status_code == 302, answer.text
        location = answer.headers["Location"]
        assert location.startswith(REDIRECT_URI + "?")
        callback = {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}
        assert callback["state"] == state

    tokens = httpx.post(f"{platform.issuer}/protocol/openid-connect/token",
                        auth=("core-client", platform.client_secret()),
                        data={"grant_type": "authorization_code", "code": callback["code"],
                              "redirect_uri": REDIRECT_URI, "code_verifier": verifier})
    assert tokens.status_code == 200, tokens.text
    body = tokens.json()
    jwks = httpx.get(f"{platform.issuer}/protocol/openid-connect/certs").json()
    key = jwt.PyJWKSet.from_dict(jwks)[jwt.get_unverified_header(body["id_token"])["kid"]]
    id_claims = jwt.decode(body["id_token"], key.key, algorithms=["RS256"],
                           audience="core-client", issuer=platform.issuer)
    assert id_claims["nonce"] == nonce
    return dict(body)


def test_full_flow_with_the_built_in_provider(platform: Platform) -> None:
    password_file = platform.home / "initial-admin-password"
    initial = password_file.read_text().strip()
    assert (password_file.stat().st_mode & 0o777) == 0o600

    tokens = code_flow(platform, "admin", initial, new_password=NEW_PASSWORD)
    assert not password_file.exists(), "the printed password is gone once it is changed"

    core = platform.core.url
    exchanged = httpx.post(f"{core}/api/token/exchange",
                           json={"access_token": tokens["access_token"]})
    assert exchanged.status_code == 200, exchanged.text
    token = exchanged.json()["token"]
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["iss"] == "hivematrix-core" and claims["aud"] == "hivematrix"
    assert claims["permission_level"] == "admin" and claims["preferred_username"] == "admin"

    valid = httpx.post(f"{core}/api/token/validate", json={"token": token})
    assert valid.status_code == 200 and valid.json()["valid"] is True
    assert valid.json()["user"]["groups"] == ["admins"]

    assert httpx.post(f"{core}/api/token/revoke", json={"token": token}).status_code == 200
    after = httpx.post(f"{core}/api/token/validate", json={"token": token})
    assert after.status_code == 401 and after.json()["valid"] is False


def test_the_initial_password_stops_working_once_changed(platform: Platform) -> None:
    initial = (platform.home / "initial-admin-password").read_text().strip()
    code_flow(platform, "admin", initial, new_password=NEW_PASSWORD)
    with pytest.raises(AssertionError):
        code_flow(platform, "admin", initial)
    assert code_flow(platform, "admin", NEW_PASSWORD)["access_token"]


def test_a_revoked_provider_token_is_refused_by_core(platform: Platform) -> None:
    """Core asks the provider every time: a token the provider revoked cannot be exchanged."""
    initial = (platform.home / "initial-admin-password").read_text().strip()
    tokens = code_flow(platform, "admin", initial, new_password=NEW_PASSWORD)
    revoked = httpx.post(f"{platform.issuer}/protocol/openid-connect/revoke",
                         auth=("core-client", platform.client_secret()),
                         data={"token": tokens["access_token"],
                               "token_type_hint": "access_token"})
    assert revoked.status_code == 200
    refused = httpx.post(f"{platform.core.url}/api/token/exchange",
                         json={"access_token": tokens["access_token"]})
    assert refused.status_code == 401
    assert refused.headers["Content-Type"] == "application/problem+json"
