"""The authorization code flow with PKCE, end to end through the Flask app, and its failures."""

from __future__ import annotations

import time

import jwt
import pytest
from flask.testing import FlaskClient

from .conftest import CALLBACK, OIDC, REALM, AuthRequest, RelyingParty, query_of


def verify_id_token(client: FlaskClient, id_token: str, nonce: str | None) -> dict:
    discovery = client.get(f"{REALM}/.well-known/openid-configuration").json
    jwks = client.get(f"{OIDC}/certs").json
    header = jwt.get_unverified_header(id_token)
    key = jwt.PyJWKSet.from_dict(jwks)[header["kid"]]
    claims = jwt.decode(id_token, key.key, algorithms=["RS256"], audience="core-client",
                        issuer=discovery["issuer"])
    assert claims.get("nonce") == nonce
    return claims


def test_discovery_uses_keycloak_layout(client: FlaskClient) -> None:
    document = client.get(f"{REALM}/.well-known/openid-configuration").json
    issuer = "http://localhost/realms/hivematrix"
    assert document["issuer"] == issuer
    for name, path in [("authorization_endpoint", "auth"), ("token_endpoint", "token"),
                       ("userinfo_endpoint", "userinfo"), ("jwks_uri", "certs"),
                       ("end_session_endpoint", "logout")]:
        assert document[name] == f"{issuer}/protocol/openid-connect/{path}"
    assert document["code_challenge_methods_supported"] == ["S256"]
    assert document["id_token_signing_alg_values_supported"] == ["RS256"]


def test_issuer_follows_forwarded_host_or_setting(client: FlaskClient, settings, hm_home) -> None:
    forwarded = {"X-Forwarded-Host": "hm.example.test", "X-Forwarded-Proto": "https",
                 "X-Forwarded-Prefix": "/keycloak"}
    document = client.get(f"{REALM}/.well-known/openid-configuration", headers=forwarded).json
    assert document["issuer"] == "https://hm.example.test/keycloak/realms/hivematrix"
    from hivematrix.identity import create_app

    fixed = create_app({**settings, "IDENTITY_ISSUER": "https://id.example.test/realms/hivematrix"})
    document = fixed.test_client().get(f"{REALM}/.well-known/openid-configuration").json
    assert document["token_endpoint"] == (
        "https://id.example.test/realms/hivematrix/protocol/openid-connect/token")
    fixed.extensions["hivematrix.db"].dispose()


def test_unknown_realm_is_404(client: FlaskClient) -> None:
    response = client.get("/realms/other/.well-known/openid-configuration")
    assert response.status_code == 404
    assert response.content_type == "application/problem+json"


def test_full_code_flow_with_pkce(client: FlaskClient, rp: RelyingParty, make_user) -> None:
    make_user("dana", name="Dana Client", email="dana@example.test", groups=["client"],
              account_number="ACME-001")
    request = AuthRequest()
    page = rp.open_login(request)
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert 'class="form"' in html and 'name="csrf_token"' in html and 'name="password"' in html

    response = rp.submit(request, {"step": "sign_in", "username": "dana",
                                   "password": "correct horse battery"}, html)
    assert response.status_code == 302
    location = response.headers["Location"]
    assert location.startswith(CALLBACK + "?")
    params = query_of(location)
    assert params["state"] == request.state and params["code"]

    tokens = rp.exchange(request, params["code"])
    assert tokens.status_code == 200, tokens.json
    body = tokens.json
    assert body["token_type"] == "Bearer" and body["expires_in"] == 300
    assert body["refresh_token"] and body["access_token"]
    assert tokens.headers["Cache-Control"] == "no-store"

    claims = verify_id_token(client, body["id_token"], request.nonce)
    assert claims["preferred_username"] == "dana"
    assert claims["groups"] == ["client"]
    assert claims["account_number"] == "ACME-001"
    assert claims["azp"] == "core-client" and claims["sid"] and claims["at_hash"]
    assert claims["exp"] - claims["iat"] == 300

    info = rp.userinfo(body["access_token"])
    assert info.status_code == 200
    assert info.json == {"sub": claims["sub"], "name": "Dana Client", "email": "dana@example.test",
                         "preferred_username": "dana", "groups": ["client"],
                         "account_number": "ACME-001"}

    refreshed = rp.refresh(body["refresh_token"])
    assert refreshed.status_code == 200, refreshed.json
    new = refreshed.json
    assert new["refresh_token"] != body["refresh_token"]
    assert rp.userinfo(new["access_token"]).json["sub"] == claims["sub"]
    again = verify_id_token(client, new["id_token"], None)
    assert again["sid"] == claims["sid"] and again["auth_time"] == claims["auth_time"]

    logout = client.get(f"{OIDC}/logout", query_string={
        "id_token_hint": body["id_token"], "post_logout_redirect_uri": "http://127.0.0.1:8000/",
        "state": "bye"})
    assert logout.status_code == 302
    assert logout.headers["Location"] == "http://127.0.0.1:8000/?state=bye"
    # Logging out ends the session's tokens.
    assert rp.userinfo(new["access_token"]).status_code == 401
    assert rp.refresh(new["refresh_token"]).json["error"] == "invalid_grant"


def test_client_secret_post_works_too(rp: RelyingParty, make_user) -> None:
    make_user("erin", groups=["technicians"])
    request, code = rp.code_for("erin")
    response = rp.exchange(request, code, method="post")
    assert response.status_code == 200, response.json
    assert rp.userinfo(response.json["access_token"]).json["groups"] == ["technicians"]


def test_browser_session_is_reused_until_prompt_login(client: FlaskClient, rp: RelyingParty,
                                                      make_user) -> None:
    make_user("finn")
    rp.code_for("finn")
    request = AuthRequest()
    again = rp.open_login(request)
    assert again.status_code == 302 and query_of(again.headers["Location"])["code"]
    forced = rp.open_login(AuthRequest(), prompt="login")
    assert forced.status_code == 200 and 'name="password"' in forced.get_data(as_text=True)


def test_prompt_none_without_session_redirects_login_required(rp: RelyingParty) -> None:
    response = rp.open_login(AuthRequest(), prompt="none")
    assert response.status_code == 302
    assert query_of(response.headers["Location"])["error"] == "login_required"


@pytest.mark.parametrize("overrides", [{"code_challenge": None, "code_challenge_method": None},
                                       {"code_challenge_method": "plain"},
                                       {"code_challenge_method": None}])
def test_missing_or_weak_pkce_is_refused(rp: RelyingParty, overrides) -> None:
    request = AuthRequest()
    response = rp.open_login(request, **overrides)
    assert response.status_code == 302
    params = query_of(response.headers["Location"])
    assert params["error"] == "invalid_request" and params["state"] == request.state


def test_wrong_code_verifier_is_invalid_grant(rp: RelyingParty, make_user) -> None:
    make_user("gail")
    request, code = rp.code_for("gail")
    response = rp.exchange(request, code, verifier="x" * 64)
    assert response.status_code == 400
    assert response.json["error"] == "invalid_grant"
    # The code is burnt: even the right verifier no longer works.
    assert rp.exchange(request, code).json["error"] == "invalid_grant"


def test_missing_code_verifier_is_refused(rp: RelyingParty, make_user) -> None:
    make_user("gus")
    request, code = rp.code_for("gus")
    response = rp.token({"grant_type": "authorization_code", "code": code,
                         "redirect_uri": request.redirect_uri})
    assert response.status_code == 400 and response.json["error"] == "invalid_request"


def test_code_reuse_is_invalid_grant_and_revokes_its_tokens(rp: RelyingParty, make_user) -> None:
    make_user("hana")
    request, code = rp.code_for("hana")
    first = rp.exchange(request, code)
    assert first.status_code == 200
    second = rp.exchange(request, code)
    assert second.status_code == 400 and second.json["error"] == "invalid_grant"
    assert rp.userinfo(first.json["access_token"]).status_code == 401
    assert rp.refresh(first.json["refresh_token"]).json["error"] == "invalid_grant"


def test_expired_code_is_invalid_grant(rp: RelyingParty, make_user, app) -> None:
    from sqlalchemy import update

    from hivematrix.identity.models import AuthorizationCode

    make_user("ivan")
    request, code = rp.code_for("ivan")
    with app.extensions["hivematrix.db"].transaction() as session:
        from datetime import UTC, datetime, timedelta

        session.execute(update(AuthorizationCode).values(
            created_at=datetime.now(UTC) - timedelta(minutes=10)))
    assert rp.exchange(request, code).json["error"] == "invalid_grant"


def test_wrong_client_secret_is_401(rp: RelyingParty, make_user) -> None:
    make_user("jade")
    request, code = rp.code_for("jade")
    response = rp.exchange(request, code, secret="not-the-secret")
    assert response.status_code == 401
    assert response.json["error"] == "invalid_client"
    assert response.headers["WWW-Authenticate"].startswith("Basic")
    # The code survives a client that could not even authenticate.
    assert rp.exchange(request, code).status_code == 200


def test_redirect_uri_must_match_at_token_endpoint(rp: RelyingParty, make_user) -> None:
    make_user("kai")
    request, code = rp.code_for("kai")
    request.redirect_uri = "https://localhost/keycloak-callback"
    assert rp.exchange(request, code).json["error"] == "invalid_grant"


@pytest.mark.parametrize("redirect_uri", ["https://evil.example.test/cb",
                                          CALLBACK + "/../steal", 'http://x/"\\', None])
def test_unregistered_redirect_uri_shows_error_page_without_redirect(
        rp: RelyingParty, redirect_uri) -> None:
    request = AuthRequest()
    response = rp.open_login(request, redirect_uri=redirect_uri)
    assert response.status_code == 400
    assert "Location" not in response.headers
    page = response.get_data(as_text=True)
    assert "invalid_request" in page and "card" in page
    if redirect_uri:
        assert "evil.example.test" not in page


def test_unknown_client_shows_error_page(rp: RelyingParty) -> None:
    response = rp.open_login(AuthRequest(), client_id="nobody")
    assert response.status_code == 400 and "Location" not in response.headers


def test_unsupported_response_type_is_reported_to_the_client(rp: RelyingParty) -> None:
    response = rp.open_login(AuthRequest(), response_type="token")
    assert response.status_code == 302
    assert query_of(response.headers["Location"])["error"] == "unsupported_response_type"


@pytest.mark.parametrize("response_type", ['to"ken', "code\\", "codé"])
def test_odd_characters_in_response_type_are_a_400_not_a_crash(rp: RelyingParty,
                                                               response_type: str) -> None:
    response = rp.open_login(AuthRequest(), response_type=response_type)
    assert response.status_code == 400 and "Location" not in response.headers


def test_userinfo_needs_a_valid_bearer_token(rp: RelyingParty, client: FlaskClient) -> None:
    assert client.get(f"{OIDC}/userinfo").status_code == 401
    response = rp.userinfo("not-a-token")
    assert response.status_code == 401
    assert "invalid_token" in response.headers["WWW-Authenticate"]


def test_userinfo_by_post_and_expired_access_token(rp: RelyingParty, make_user, app,
                                                   client: FlaskClient) -> None:
    from sqlalchemy import update

    from hivematrix.identity.models import Token

    make_user("lena")
    tokens = rp.tokens_for("lena")
    posted = client.post(f"{OIDC}/userinfo",
                         headers={"Authorization": f"Bearer {tokens['access_token']}"})
    assert posted.status_code == 200 and posted.json["preferred_username"] == "lena"
    with app.extensions["hivematrix.db"].transaction() as session:
        session.execute(update(Token).values(issued_at=int(time.time()) - 3600))
    assert rp.userinfo(tokens["access_token"]).status_code == 401


def test_refresh_token_rotates_and_replay_revokes_the_family(rp: RelyingParty,
                                                             make_user) -> None:
    make_user("milo")
    first = rp.tokens_for("milo")
    second = rp.refresh(first["refresh_token"]).json
    assert second["refresh_token"]
    replay = rp.refresh(first["refresh_token"])
    assert replay.status_code == 400 and replay.json["error"] == "invalid_grant"
    # The stolen-and-replayed chain is dead for everyone.
    assert rp.refresh(second["refresh_token"]).json["error"] == "invalid_grant"
    assert rp.userinfo(second["access_token"]).status_code == 401


def test_refresh_stops_after_the_session_maximum(rp: RelyingParty, make_user, app) -> None:
    from sqlalchemy import update

    from hivematrix.identity.models import Token

    make_user("nora")
    tokens = rp.tokens_for("nora")
    with app.extensions["hivematrix.db"].transaction() as session:
        session.execute(update(Token).values(auth_time=int(time.time()) - 36001))
    assert rp.refresh(tokens["refresh_token"]).json["error"] == "invalid_grant"


def test_refresh_token_of_another_client_secret_is_refused(rp: RelyingParty,
                                                           make_user) -> None:
    make_user("olga")
    tokens = rp.tokens_for("olga")
    assert rp.refresh(tokens["refresh_token"], secret="wrong").status_code == 401


def test_revocation_endpoint(rp: RelyingParty, make_user, client: FlaskClient) -> None:
    from hivematrix.common.testing import basic_auth

    make_user("pia")
    tokens = rp.tokens_for("pia")
    response = client.post(f"{OIDC}/revoke", data={"token": tokens["refresh_token"]},
                           headers=basic_auth("core-client", rp.secret))
    assert response.status_code == 200
    assert rp.refresh(tokens["refresh_token"]).json["error"] == "invalid_grant"
    assert rp.userinfo(tokens["access_token"]).status_code == 401
    unauthenticated = client.post(f"{OIDC}/revoke", data={"token": tokens["access_token"]})
    assert unauthenticated.status_code in (400, 401)


def test_nonce_replay_is_refused(rp: RelyingParty, make_user) -> None:
    make_user("quinn")
    request, _code = rp.code_for("quinn")
    replay = rp.open_login(AuthRequest(nonce=request.nonce))
    assert replay.status_code == 302
    assert query_of(replay.headers["Location"])["error"] == "invalid_request"
