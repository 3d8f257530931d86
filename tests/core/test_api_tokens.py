"""Personal API tokens: made by a signed-in user, shown once, kept hashed, traded for JWTs."""

import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select, update

from hivematrix.common.testing import FakeIdentityProvider, TokenFactory
from hivematrix.core import tokens as core_tokens
from hivematrix.core.models import ApiToken
from tests.core.conftest import exchange


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def claims_of(token: str) -> dict[str, Any]:
    return jwt.decode(token, options={"verify_signature": False})


def sign_in(core: FlaskClient, idp: FakeIdentityProvider, sub: str,
            groups: list[str] | None = None, **claims: Any) -> str:
    """A Core user JWT for a new user of the fake identity provider."""
    idp.add_user(f"at-{sub}", sub=sub, groups=groups or [], **claims)
    return exchange(core, f"at-{sub}")


def create_key(core: FlaskClient, user_jwt: str, name: str = "backup script",
               **extra: Any) -> dict[str, Any]:
    response = core.post("/api/tokens", json={"name": name, **extra}, headers=bearer(user_jwt))
    assert response.status_code == 201, response.json
    return dict(response.json)


def redeem(core: FlaskClient, api_key: str, **headers: str) -> Any:
    return core.post("/api/token/from-api-key", json={"api_key": api_key}, headers=headers)


def listed(core: FlaskClient, user_jwt: str, query: str = "") -> list[dict[str, Any]]:
    response = core.get(f"/api/tokens{query}", headers=bearer(user_jwt))
    assert response.status_code == 200, response.json
    return list(response.json)


def assert_problem(response: Any, status: int) -> None:
    assert response.status_code == status, response.json
    assert response.content_type == "application/problem+json"
    assert response.json["status"] == status


@pytest.fixture
def kim(core: FlaskClient, idp: FakeIdentityProvider) -> str:
    return sign_in(core, idp, "kim", ["technicians"])


# --- creating and listing -------------------------------------------------------------------

def test_token_is_shown_once_and_only_its_hash_is_kept(core_app: Flask, core: FlaskClient,
                                                       kim: str) -> None:
    created = create_key(core, kim, "nightly export")
    token = created["token"]
    assert token.startswith("hmpat_") and len(token) >= 40
    assert created["name"] == "nightly export" and created["owner_sub"] == "kim"
    assert created["prefix"] == token[:12]
    assert created["revoked_at"] is None and created["last_used_at"] is None
    expires = datetime.fromisoformat(created["expires_at"])
    assert abs(expires - (datetime.now(UTC) + timedelta(days=90))) < timedelta(minutes=1)

    token_hash = hashlib.sha256(token.encode()).hexdigest()
    response = core.get("/api/tokens", headers=bearer(kim))
    assert response.status_code == 200
    assert [item["id"] for item in response.json] == [created["id"]]
    assert "token" not in response.json[0] and "token_hash" not in response.json[0]
    assert token not in response.text and token_hash not in response.text

    with core_app.extensions["hivematrix.db"].transaction() as session:
        row = session.get(ApiToken, created["id"])
        assert row is not None and row.token_hash == token_hash
        assert token not in repr([getattr(row, column.key) for column in ApiToken.__table__.c])


def test_expiry_is_chosen_in_days(core: FlaskClient, kim: str) -> None:
    created = create_key(core, kim, expires_in_days=7)
    expires = datetime.fromisoformat(created["expires_at"])
    assert abs(expires - (datetime.now(UTC) + timedelta(days=7))) < timedelta(minutes=1)


def test_names_are_trimmed_and_tokens_unique(core: FlaskClient, kim: str) -> None:
    first = create_key(core, kim, "  monitoring  ")
    second = create_key(core, kim, "monitoring")
    assert first["name"] == "monitoring"
    assert first["token"] != second["token"]
    assert {item["id"] for item in listed(core, kim)} == {first["id"], second["id"]}


@pytest.mark.parametrize(("body", "field"), [
    ({"name": "   "}, "name"),
    ({"name": ""}, "name"),
    ({}, "name"),
    ({"name": "x" * 101}, "name"),
    ({"name": "ok", "expires_in_days": 0}, "expires_in_days"),
    ({"name": "ok", "expires_in_days": 1000}, "expires_in_days"),
    ({"name": "ok", "expires_in_days": "soon"}, "expires_in_days"),
], ids=["blank", "empty", "missing", "too-long", "zero-days", "1000-days", "not-a-number"])
def test_bad_input_is_422_naming_the_field(core: FlaskClient, kim: str, body: dict[str, Any],
                                           field: str) -> None:
    response = core.post("/api/tokens", json=body, headers=bearer(kim))
    assert_problem(response, 422)
    assert field in response.json["errors"]["json"]
    assert f"json.{field}" in response.json["detail"]
    assert listed(core, kim) == []


def test_creating_needs_a_core_user_token(core_app: Flask, core: FlaskClient,
                                          idp: FakeIdentityProvider,
                                          tokens: TokenFactory) -> None:
    idp.add_user("at-kim", sub="kim")
    assert_problem(core.post("/api/tokens", json={"name": "x"}), 401)
    # An identity-provider access token is not a Core JWT.
    assert_problem(core.post("/api/tokens", json={"name": "x"}, headers=bearer("at-kim")), 401)
    # Nor is a well-formed token signed by somebody else's key.
    assert_problem(core.post("/api/tokens", json={"name": "x"},
                             headers=bearer(tokens.user("admin"))), 401)
    # A service token is genuine but is not a user.
    service = core_tokens.mint_service_token(core_app.extensions["core.keys"], "helm", "core")
    assert_problem(core.post("/api/tokens", json={"name": "x"}, headers=bearer(service)), 403)
    assert_problem(core.get("/api/tokens"), 401)
    # Without any credentials, the CSRF guard may refuse a DELETE before authentication does.
    assert core.delete("/api/tokens/1").status_code in (400, 401)


def test_a_revoked_session_cannot_create_api_tokens(core: FlaskClient, kim: str) -> None:
    assert core.post("/api/token/revoke", json={"token": kim}).status_code == 200
    response = core.post("/api/tokens", json={"name": "after logout"}, headers=bearer(kim))
    assert response.status_code == 401


# --- exchanging for a JWT -------------------------------------------------------------------

def test_api_key_gives_a_jwt_with_the_owners_claims(core: FlaskClient,
                                                    idp: FakeIdentityProvider) -> None:
    owner_jwt = sign_in(core, idp, "cara", ["client"], account_number="ACME-7")
    token = create_key(core, owner_jwt)["token"]
    response = redeem(core, token)
    assert response.status_code == 200
    issued = response.json["token"]
    claims, owner = claims_of(issued), claims_of(owner_jwt)
    for claim in ("sub", "name", "email", "preferred_username", "permission_level", "groups",
                  "account_number"):
        assert claims[claim] == owner[claim], claim
    assert claims["permission_level"] == "client" and claims["account_number"] == "ACME-7"
    assert claims["iss"] == "hivematrix-core" and claims["aud"] == "hivematrix"
    assert claims["jti"] != owner["jti"]  # a session of its own
    assert claims["exp"] - claims["iat"] == 3600

    validated = core.post("/api/token/validate", json={"token": issued})
    assert validated.status_code == 200 and validated.json["valid"] is True
    assert validated.json["user"]["sub"] == "cara"
    assert validated.json["user"]["account_number"] == "ACME-7"
    assert listed(core, owner_jwt)[0]["last_used_at"] is not None


def test_api_key_jwt_can_be_revoked_like_any_session(core: FlaskClient, kim: str) -> None:
    issued = redeem(core, create_key(core, kim)["token"]).json["token"]
    assert core.post("/api/token/revoke", json={"token": issued}).status_code == 200
    assert core.post("/api/token/validate", json={"token": issued}).json["valid"] is False


def test_revoked_key_is_refused(core: FlaskClient, kim: str) -> None:
    created = create_key(core, kim)
    assert redeem(core, created["token"]).status_code == 200
    assert core.delete(f"/api/tokens/{created['id']}", headers=bearer(kim)).status_code == 204
    assert_problem(redeem(core, created["token"]), 401)
    assert listed(core, kim)[0]["revoked_at"] is not None
    # Revoking again changes nothing.
    assert core.delete(f"/api/tokens/{created['id']}", headers=bearer(kim)).status_code == 204
    assert_problem(redeem(core, created["token"]), 401)


def test_expired_key_is_refused(core_app: Flask, core: FlaskClient, kim: str) -> None:
    created = create_key(core, kim)
    with core_app.extensions["hivematrix.db"].transaction() as session:
        session.execute(update(ApiToken).where(ApiToken.id == created["id"])
                        .values(expires_at=datetime.now(UTC) - timedelta(seconds=5)))
    response = redeem(core, created["token"])
    assert_problem(response, 401)
    assert "expired" in response.json["detail"]


@pytest.mark.parametrize("api_key", ["hmpat_no-such-token", "x"])
def test_unknown_key_is_refused(core: FlaskClient, kim: str, api_key: str) -> None:
    assert_problem(redeem(core, api_key), 401)


def test_a_user_jwt_is_not_an_api_key(core: FlaskClient, kim: str) -> None:
    response = core.post("/api/token/from-api-key", json={"api_key": kim[:200]})
    assert_problem(response, 401)


def test_from_api_key_needs_the_key(core: FlaskClient) -> None:
    response = core.post("/api/token/from-api-key", json={})
    assert_problem(response, 422)
    assert "api_key" in response.json["errors"]["json"]


# --- ownership -------------------------------------------------------------------------------

def test_users_see_and_revoke_only_their_own(core: FlaskClient, idp: FakeIdentityProvider,
                                             kim: str) -> None:
    bob = sign_in(core, idp, "bob", ["billing"])
    kims = create_key(core, kim, "kim's")
    bobs = create_key(core, bob, "bob's")
    assert [item["id"] for item in listed(core, bob)] == [bobs["id"]]
    assert [item["id"] for item in listed(core, bob, "?all=1")] == [bobs["id"]]
    response = core.delete(f"/api/tokens/{kims['id']}", headers=bearer(bob))
    assert_problem(response, 404)
    assert redeem(core, kims["token"]).status_code == 200
    assert listed(core, kim)[0]["revoked_at"] is None


def test_admins_list_everybodys_and_revoke_any(core_app: Flask, core: FlaskClient,
                                               idp: FakeIdentityProvider, kim: str) -> None:
    admin = sign_in(core, idp, "ada", ["/admins"])
    bob = sign_in(core, idp, "bob", ["billing"])
    kims, bobs = create_key(core, kim), create_key(core, bob)
    own = create_key(core, admin, "admin's own")
    assert [item["id"] for item in listed(core, admin)] == [own["id"]]
    everybody = listed(core, admin, "?all=1")
    assert {item["id"] for item in everybody} == {kims["id"], bobs["id"], own["id"]}
    assert {item["owner_sub"] for item in everybody} == {"kim", "bob", "ada"}
    assert all("token" not in item and "token_hash" not in item for item in everybody)

    assert core.delete(f"/api/tokens/{kims['id']}", headers=bearer(admin)).status_code == 204
    assert_problem(redeem(core, kims["token"]), 401)
    assert redeem(core, bobs["token"]).status_code == 200
    with core_app.extensions["hivematrix.db"].transaction() as session:
        revoked = session.scalars(select(ApiToken.owner_sub)
                                  .where(ApiToken.revoked_at.is_not(None))).all()
    assert revoked == ["kim"]


def test_revoking_an_unknown_token_is_404(core: FlaskClient, idp: FakeIdentityProvider,
                                          kim: str) -> None:
    admin = sign_in(core, idp, "ada", ["admins"])
    assert_problem(core.delete("/api/tokens/999999", headers=bearer(kim)), 404)
    assert_problem(core.delete("/api/tokens/999999", headers=bearer(admin)), 404)


# --- rate limit ------------------------------------------------------------------------------

def test_from_api_key_is_limited_to_20_a_minute_per_client(core: FlaskClient, kim: str) -> None:
    token = create_key(core, kim)["token"]
    client_a = {"X-Forwarded-For": "203.0.113.10"}
    for _ in range(19):
        assert redeem(core, "hmpat_guess", **client_a).status_code == 401
    assert redeem(core, token, **client_a).status_code == 200  # the 20th
    refused = redeem(core, token, **client_a)
    assert_problem(refused, 429)
    assert 0 < int(refused.headers["Retry-After"]) <= 60
    assert refused.json["retry_after"] == int(refused.headers["Retry-After"])
    # Another client behind Nexus has a budget of its own.
    assert redeem(core, token, **{"X-Forwarded-For": "203.0.113.11"}).status_code == 200
