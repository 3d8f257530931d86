"""Token exchange, validation and revocation against a contract fake of the identity provider."""

import base64
import hashlib
import hmac
import json
import time

import jwt
import pytest
from flask import Flask
from flask.testing import FlaskClient

from hivematrix.common.auth import JWKSCache, TokenVerifier
from hivematrix.common.keys import SigningKey
from hivematrix.common.testing import serve_wsgi
from tests.core.conftest import FakeIdentityProvider, exchange


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def claims_of(token: str) -> dict:
    return jwt.decode(token, options={"verify_signature": False})


@pytest.mark.parametrize(("groups", "level"), [
    (["admins"], "admin"), (["/admins"], "admin"), (["technicians"], "technician"),
    (["/billing"], "billing"), (["admins", "billing"], "admin"), (["staff"], "client"),
    ([], "client"),
])
def test_exchange_maps_groups_to_permission_level(core: FlaskClient, idp: FakeIdentityProvider,
                                                  groups: list[str], level: str) -> None:
    idp.add_user("at-1", sub="kim", groups=groups)
    assert claims_of(exchange(core, "at-1"))["permission_level"] == level


def test_exchanged_token_has_the_documented_claims(core: FlaskClient,
                                                   idp: FakeIdentityProvider) -> None:
    idp.add_user("at-1", sub="kim", groups=["/technicians"], name="Kim Tech")
    claims = claims_of(exchange(core, "at-1"))
    assert claims["iss"] == "hivematrix-core" and claims["aud"] == "hivematrix"
    assert claims["sub"] == "kim" and claims["name"] == "Kim Tech"
    assert claims["preferred_username"] == "kim" and claims["email"] == "kim@example.test"
    assert claims["groups"] == ["technicians"]
    assert claims["exp"] - claims["iat"] == 3600
    assert len(claims["jti"]) >= 32
    assert "account_number" not in claims


def test_client_users_carry_their_account_number(core: FlaskClient,
                                                 idp: FakeIdentityProvider) -> None:
    idp.add_user("at-c", sub="cara", groups=["client"], account_number="ACME-7")
    idp.add_user("at-t", sub="tom", groups=["technicians"], account_number="ACME-7")
    assert claims_of(exchange(core, "at-c"))["account_number"] == "ACME-7"
    assert "account_number" not in claims_of(exchange(core, "at-t"))


def test_exchanged_token_verifies_with_the_served_jwks(core_app: Flask,
                                                       idp: FakeIdentityProvider) -> None:
    idp.add_user("at-1", sub="kim", groups=["billing"])
    token = exchange(core_app.test_client(), "at-1")
    with serve_wsgi(core_app) as url:
        verifier = TokenVerifier(jwks=JWKSCache(f"{url}/.well-known/jwks.json"),
                                 service_name="ledger")
        principal = verifier.verify(token)
    assert principal.permission_level == "billing" and not principal.is_service


def test_exchange_accepts_a_bearer_header(core: FlaskClient, idp: FakeIdentityProvider) -> None:
    idp.add_user("at-1", sub="kim")
    response = core.post("/api/token/exchange", headers={"Authorization": "Bearer at-1"})
    assert response.status_code == 200 and response.json["token"]


def test_exchange_without_a_token_is_400_naming_the_field(core: FlaskClient) -> None:
    response = core.post("/api/token/exchange", json={})
    assert response.status_code == 400
    assert response.content_type == "application/problem+json"
    assert response.json["detail"].startswith("access_token")


def test_exchange_with_a_rejected_access_token_is_401(core: FlaskClient) -> None:
    response = core.post("/api/token/exchange", json={"access_token": "nobody"})
    assert response.status_code == 401
    assert response.content_type == "application/problem+json"


def test_exchange_when_the_provider_fails_is_502(core: FlaskClient,
                                                 idp: FakeIdentityProvider) -> None:
    idp.add_user("at-1", sub="kim")
    idp.userinfo_status = 500
    response = core.post("/api/token/exchange", json={"access_token": "at-1"})
    assert response.status_code == 502
    assert response.content_type == "application/problem+json"


def test_exchange_when_the_provider_is_down_is_502(core_settings: dict, hm_home) -> None:
    from hivematrix.common.testing import free_port
    from hivematrix.core import create_app

    settings = {**core_settings,
                "OIDC_ISSUER_URL": f"http://127.0.0.1:{free_port()}/realms/hivematrix"}
    client = create_app(settings).test_client()
    assert client.post("/api/token/exchange", json={"access_token": "x"}).status_code == 502


def test_exchange_is_rate_limited_per_client_ip(core: FlaskClient,
                                                idp: FakeIdentityProvider) -> None:
    idp.add_user("at-1", sub="kim")
    from_a = {"X-Forwarded-For": "203.0.113.5"}
    statuses = [core.post("/api/token/exchange", json={"access_token": "at-1"},
                          headers=from_a).status_code for _ in range(21)]
    assert statuses[:20] == [200] * 20 and statuses[20] == 429
    # Another user behind Nexus is not in the same bucket.
    other = core.post("/api/token/exchange", json={"access_token": "at-1"},
                      headers={"X-Forwarded-For": "198.51.100.9"})
    assert other.status_code == 200


def test_validate_then_revoke_then_validate_fails(core: FlaskClient,
                                                  idp: FakeIdentityProvider) -> None:
    idp.add_user("at-1", sub="kim", groups=["admins"])
    token = exchange(core, "at-1")
    valid = core.post("/api/token/validate", json={"token": token})
    assert valid.status_code == 200
    assert valid.json["valid"] is True and valid.json["user"]["permission_level"] == "admin"
    revoked = core.post("/api/token/revoke", json={"token": token})
    assert revoked.status_code == 200
    again = core.post("/api/token/validate", json={"token": token})
    assert again.status_code == 401
    assert again.json == {"valid": False, "error": "session revoked"}


def test_validate_accepts_a_bearer_header(core: FlaskClient, idp: FakeIdentityProvider) -> None:
    idp.add_user("at-1", sub="kim")
    token = exchange(core, "at-1")
    response = core.post("/api/token/validate", headers={"Authorization": f"Bearer {token}"})
    assert response.json["valid"] is True


def test_expired_but_genuine_token_can_be_revoked(core: FlaskClient, core_app: Flask) -> None:
    ring = core_app.extensions["core.keys"]
    store = core_app.extensions["core.sessions"]
    from datetime import timedelta

    session = store.create({"sub": "kim", "permission_level": "client"}, timedelta(hours=1))
    now = int(time.time())
    token = ring.current.sign({"iss": "hivematrix-core", "aud": "hivematrix", "sub": "kim",
                               "jti": session.jti, "iat": now - 7200, "exp": now - 3600})
    assert core.post("/api/token/validate", json={"token": token}).json["error"] == \
        "token has expired"
    assert core.post("/api/token/revoke", json={"token": token}).status_code == 200
    assert store.get(session.jti).revoked


def test_revoking_an_unknown_session_is_404(core: FlaskClient, core_app: Flask) -> None:
    now = int(time.time())
    token = core_app.extensions["core.keys"].current.sign(
        {"iss": "hivematrix-core", "aud": "hivematrix", "sub": "kim", "jti": "nope",
         "iat": now, "exp": now + 60})
    response = core.post("/api/token/revoke", json={"token": token})
    assert response.status_code == 404
    assert response.content_type == "application/problem+json"


def forged_tokens(ring, genuine: str) -> dict[str, str]:
    header, payload, signature = genuine.split(".")
    claims = claims_of(genuine)
    promoted = b64(json.dumps({**claims, "permission_level": "admin"}).encode())
    none_header = b64(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    hs_header = b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": ring.current.kid}).encode())
    hs_body = f"{hs_header}.{payload}"
    hs_signature = hmac.new(ring.current.public_pem(), hs_body.encode(), hashlib.sha256).digest()
    stranger = SigningKey.generate()
    return {
        "tampered": f"{header}.{promoted}.{signature}",
        "alg-none": f"{none_header}.{payload}.",
        "hs256-with-public-key": f"{hs_body}.{b64(hs_signature)}",
        "wrong-kid": stranger.sign(claims),
        "same-kid-other-key": stranger.sign(claims, headers={"kid": ring.current.kid}),
        "wrong-issuer": ring.current.sign({**claims, "iss": "someone-else"}),
        "wrong-audience": ring.current.sign({**claims, "aud": "codex"}),
        "service-token": ring.current.sign({**claims, "type": "service", "aud": "hivematrix"}),
        "garbage": "not.a.token",
    }


@pytest.mark.parametrize("kind", ["tampered", "alg-none", "hs256-with-public-key", "wrong-kid",
                                  "same-kid-other-key", "wrong-issuer", "wrong-audience",
                                  "service-token", "garbage"])
def test_forged_tokens_are_invalid(core: FlaskClient, core_app: Flask,
                                   idp: FakeIdentityProvider, kind: str) -> None:
    idp.add_user("at-1", sub="kim", groups=["client"])
    genuine = exchange(core, "at-1")
    token = forged_tokens(core_app.extensions["core.keys"], genuine)[kind]
    response = core.post("/api/token/validate", json={"token": token})
    assert response.status_code == 401 and response.json["valid"] is False
    assert core.post("/api/token/revoke", json={"token": token}).status_code == 401
    assert core.post("/api/token/validate", json={"token": genuine}).json["valid"] is True


def test_malformed_request_bodies_are_problems(core: FlaskClient) -> None:
    response = core.post("/api/token/validate", json={"token": 42})
    assert response.status_code == 422
    assert "json.token" in response.json["detail"]
    missing = core.post("/api/token/revoke", json={})
    assert missing.status_code == 400 and missing.json["detail"].startswith("token")
