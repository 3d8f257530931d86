"""Core with a third-party OpenID provider (oidc-provider-mock), all over real HTTP.

A scripted client runs the authorization-code flow with PKCE against the provider, exchanges
the access token at a Core process, validates the JWT, revokes it and sees validation fail.
"""

import base64
import hashlib
import secrets
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import httpx
import pytest
from click.testing import CliRunner
from oidc_provider_mock import User, run_server_in_thread

from hivematrix.cli import main
from hivematrix.common.testing import ServiceProcess

pytestmark = pytest.mark.processes
REDIRECT_URI = "http://127.0.0.1:8000/keycloak-callback"


@pytest.fixture
def provider() -> Iterator[str]:
    alice = User(sub="alice", claims={"email": "alice@example.test", "name": "Alice Admin",
                                      "preferred_username": "alice", "groups": ["/admins"]})
    with run_server_in_thread(user_claims=[alice]) as server:
        yield f"http://localhost:{server.server_port}"


@pytest.fixture
def core(hm_home: Path, provider: str) -> Iterator[ServiceProcess]:
    assert CliRunner().invoke(main, ["init"]).exit_code == 0
    with ServiceProcess("core", hm_home, env={"OIDC_ISSUER_URL": provider}) as process:
        yield process


def authorization_code_flow(provider: str, subject: str) -> str:
    """The access token a browser-less client obtains with PKCE (S256)."""
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(
        hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    state = secrets.token_urlsafe(16)
    params = {"response_type": "code", "client_id": "nexus", "redirect_uri": REDIRECT_URI,
              "scope": "openid profile email", "state": state, "nonce": secrets.token_hex(8),
              "code_challenge": challenge, "code_challenge_method": "S256"}
    with httpx.Client(base_url=provider, follow_redirects=False) as client:
        form = client.get("/oauth2/authorize", params=params)
        assert form.status_code == 200
        approved = client.post("/oauth2/authorize", params=params, data={"sub": subject})
        assert approved.status_code == 302
        callback = parse_qs(urlparse(approved.headers["Location"]).query)
        assert callback["state"] == [state]
        token = client.post("/oauth2/token", auth=("nexus", "secret"), data={
            "grant_type": "authorization_code", "code": callback["code"][0],
            "redirect_uri": REDIRECT_URI, "code_verifier": verifier})
        assert token.status_code == 200, token.text
        return str(token.json()["access_token"])


def test_full_flow_with_a_third_party_provider(provider: str, core: ServiceProcess) -> None:
    access_token = authorization_code_flow(provider, "alice")
    exchanged = httpx.post(f"{core.url}/api/token/exchange", json={"access_token": access_token})
    assert exchanged.status_code == 200, exchanged.text
    token = exchanged.json()["token"]

    valid = httpx.post(f"{core.url}/api/token/validate", json={"token": token}).json()
    assert valid["valid"] is True
    assert valid["user"]["permission_level"] == "admin"  # "/admins" from the provider
    assert valid["user"]["preferred_username"] == "alice"

    assert httpx.post(f"{core.url}/api/token/revoke", json={"token": token}).status_code == 200
    after = httpx.post(f"{core.url}/api/token/validate", json={"token": token})
    assert after.status_code == 401 and after.json()["valid"] is False


def test_forged_access_token_is_refused(provider: str, core: ServiceProcess) -> None:
    response = httpx.post(f"{core.url}/api/token/exchange", json={"access_token": "forged"})
    assert response.status_code == 401
