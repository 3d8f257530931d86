"""Token verification and the access decorators, against fake Core's real JWKS endpoint."""

import base64
import hashlib
import hmac
import json
import time
from typing import Any

import jwt
import pytest
from apiflask import APIBlueprint, APIFlask
from flask import g
from flask.testing import FlaskClient
from werkzeug.datastructures import WWWAuthenticate

from hivematrix.common.auth import (
    JWKSCache,
    admin_required,
    permission_required,
    service_allowed,
    token_required,
)
from hivematrix.common.keys import SigningKey
from hivematrix.common.testing import FakeCore, TokenFactory, free_port

bp = APIBlueprint("guarded", __name__)


def caller() -> dict[str, Any]:
    return {"user": g.user["sub"] if g.user else None, "service": g.service,
            "is_service_call": g.is_service_call}


@bp.get("/user")
@token_required
def any_user() -> dict[str, Any]:
    return caller()


@bp.get("/admin")
@admin_required
def admin_only() -> dict[str, Any]:
    return caller()


@bp.get("/billing")
@permission_required("billing", "admin")
def billing_or_admin() -> dict[str, Any]:
    return caller()


@bp.get("/from-helm")
@service_allowed("helm")
def helm_only() -> dict[str, Any]:
    return caller()


@bp.get("/users-and-helm")
@token_required
@service_allowed("helm")
def users_and_helm() -> dict[str, Any]:
    return caller()


@bp.get("/admins-and-helm")
@admin_required
@service_allowed("helm")
def admins_and_helm() -> dict[str, Any]:
    return caller()


@pytest.fixture
def app(build_app) -> APIFlask:
    return build_app(bp)


@pytest.fixture
def client(app: APIFlask) -> FlaskClient:
    return app.test_client()


def jwks_of(app: APIFlask) -> JWKSCache:
    cache: JWKSCache = app.extensions["hivematrix.auth"].jwks
    return cache


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def unsigned_token(header: dict[str, Any], claims: dict[str, Any], signature: bytes = b"") -> str:
    segments = [b64url(json.dumps(header).encode()), b64url(json.dumps(claims).encode())]
    return ".".join([*segments, b64url(signature)])


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def assert_problem(response, status: int) -> None:
    assert response.status_code == status
    assert response.content_type == "application/problem+json"
    assert response.json["status"] == status


# --- every way a token can be bad is a 401 problem -----------------------------------------

def no_token(tokens: TokenFactory, key: SigningKey) -> dict[str, str]:
    return {}


def basic_scheme(tokens: TokenFactory, key: SigningKey) -> dict[str, str]:
    return {"Authorization": "Basic YWRtaW46YWRtaW4="}


def valid_token_with_other_scheme(tokens: TokenFactory, key: SigningKey) -> dict[str, str]:
    return {"Authorization": f"Token {tokens.user('admin')}"}


def empty_bearer(tokens: TokenFactory, key: SigningKey) -> dict[str, str]:
    return {"Authorization": "Bearer "}


def garbage(tokens: TokenFactory, key: SigningKey) -> dict[str, str]:
    return bearer("not-a-jwt")


def expired(tokens: TokenFactory, key: SigningKey) -> dict[str, str]:
    now = int(time.time())
    return bearer(tokens.user("admin", iat=now - 7200, exp=now - 3600))


def not_yet_valid(tokens: TokenFactory, key: SigningKey) -> dict[str, str]:
    return bearer(tokens.user("admin", nbf=int(time.time()) + 3600))


def issued_in_the_future(tokens: TokenFactory, key: SigningKey) -> dict[str, str]:
    now = int(time.time())
    return bearer(tokens.user("admin", iat=now + 3600, exp=now + 7200))


def wrong_issuer(tokens: TokenFactory, key: SigningKey) -> dict[str, str]:
    return bearer(tokens.user("admin", iss="evil-core"))


def wrong_audience(tokens: TokenFactory, key: SigningKey) -> dict[str, str]:
    return bearer(tokens.user("admin", aud="ledger"))


def user_token_addressed_to_this_service(tokens: TokenFactory, key: SigningKey) -> dict[str, str]:
    # Passes PyJWT's audience check (svc is accepted for service tokens) but is no user token.
    return bearer(tokens.user("admin", aud="svc"))


def missing_subject(tokens: TokenFactory, key: SigningKey) -> dict[str, str]:
    claims = tokens.user_claims("admin")
    del claims["sub"]
    return bearer(key.sign(claims))


def alg_none(tokens: TokenFactory, key: SigningKey) -> dict[str, str]:
    header = {"alg": "none", "typ": "JWT", "kid": key.kid}
    return bearer(unsigned_token(header, tokens.user_claims("admin")))


def hs256_with_public_key_as_secret(tokens: TokenFactory, key: SigningKey) -> dict[str, str]:
    header = {"alg": "HS256", "typ": "JWT", "kid": key.kid}
    body = unsigned_token(header, tokens.user_claims("admin")).rsplit(".", 1)[0]
    signature = hmac.new(key.public_pem(), body.encode("ascii"), hashlib.sha256).digest()
    return bearer(f"{body}.{b64url(signature)}")


def tampered_payload(tokens: TokenFactory, key: SigningKey) -> dict[str, str]:
    header, _, signature = tokens.user("client").split(".")
    promoted = b64url(json.dumps(tokens.user_claims("admin")).encode())
    return bearer(f"{header}.{promoted}.{signature}")


def unknown_kid(tokens: TokenFactory, key: SigningKey) -> dict[str, str]:
    return bearer(key.sign(tokens.user_claims("admin"), headers={"kid": "no-such-key"}))


def missing_kid(tokens: TokenFactory, key: SigningKey) -> dict[str, str]:
    return bearer(jwt.encode(tokens.user_claims("admin"), key.private_key, algorithm="RS256"))


def other_key_same_kid(tokens: TokenFactory, key: SigningKey) -> dict[str, str]:
    impostor = SigningKey(SigningKey.generate().private_key, key.kid)
    return bearer(impostor.sign(tokens.user_claims("admin")))


def service_token_for_another_service(tokens: TokenFactory, key: SigningKey) -> dict[str, str]:
    return bearer(tokens.service("helm", "ledger"))


def service_token_for_us_and_users(tokens: TokenFactory, key: SigningKey) -> dict[str, str]:
    return bearer(tokens.service("helm", "svc", aud=["svc", "hivematrix"]))


def service_token_naming_another_target(tokens: TokenFactory,
                                        key: SigningKey) -> dict[str, str]:
    return bearer(tokens.service("helm", "svc", target_service="ledger"))


def service_token_without_caller(tokens: TokenFactory, key: SigningKey) -> dict[str, str]:
    return bearer(tokens.service("helm", "svc", calling_service=""))


BAD_CREDENTIALS = [
    no_token, basic_scheme, valid_token_with_other_scheme, empty_bearer, garbage, expired,
    not_yet_valid, issued_in_the_future, wrong_issuer, wrong_audience,
    user_token_addressed_to_this_service, missing_subject,
    alg_none, hs256_with_public_key_as_secret, tampered_payload, unknown_kid, missing_kid,
    other_key_same_kid, service_token_for_another_service, service_token_for_us_and_users,
    service_token_naming_another_target, service_token_without_caller,
]


@pytest.mark.parametrize("credentials", BAD_CREDENTIALS, ids=lambda f: f.__name__)
@pytest.mark.parametrize("path", ["/user", "/admin", "/from-helm", "/users-and-helm"])
def test_bad_credentials_are_401_problems(client: FlaskClient, tokens: TokenFactory,
                                          signing_key: SigningKey, credentials, path: str) -> None:
    response = client.get(path, headers=credentials(tokens, signing_key))
    assert_problem(response, 401)
    assert response.json["type"] == "about:blank#unauthorized"
    assert response.headers["WWW-Authenticate"].lower().startswith("bearer")


def test_the_unforged_token_of_the_attack_fixtures_is_accepted(client: FlaskClient,
                                                               tokens: TokenFactory) -> None:
    """The forgeries above start from claims that do pass when properly signed."""
    assert client.get("/user", headers=bearer(tokens.user("admin"))).status_code == 200


@pytest.mark.parametrize(("credentials", "detail"), [
    (garbage, "malformed token"),
    (expired, "token has expired"),
    (wrong_issuer, "token has the wrong issuer"),
    (wrong_audience, "token is not meant for this service"),
    (alg_none, "token algorithm not accepted"),
    (hs256_with_public_key_as_secret, "token algorithm not accepted"),
    (unknown_kid, "token signed with an unknown key"),
    (missing_kid, "token has no key id"),
], ids=lambda value: getattr(value, "__name__", value))
def test_401_detail_says_what_is_wrong(client: FlaskClient, tokens: TokenFactory,
                                       signing_key: SigningKey, credentials, detail: str) -> None:
    response = client.get("/user", headers=credentials(tokens, signing_key))
    assert response.json["detail"] == detail


def test_invalid_token_challenge_names_the_error(client: FlaskClient) -> None:
    response = client.get("/user", headers=bearer("not-a-jwt"))
    challenge = WWWAuthenticate.from_header(response.headers["WWW-Authenticate"])
    assert challenge.type == "bearer"
    assert challenge.parameters == {"realm": "hivematrix", "error": "invalid_token"}


def test_missing_token_challenge_has_no_error_code(client: FlaskClient) -> None:
    challenge = WWWAuthenticate.from_header(client.get("/user").headers["WWW-Authenticate"])
    assert challenge.parameters == {"realm": "hivematrix"}


def test_token_expired_within_leeway_is_accepted(client: FlaskClient, tokens: TokenFactory) -> None:
    now = int(time.time())
    token = tokens.user("admin", iat=now - 600, exp=now - 5)
    assert client.get("/user", headers=bearer(token)).status_code == 200


def test_token_expired_beyond_leeway_is_rejected(client: FlaskClient, tokens: TokenFactory) -> None:
    now = int(time.time())
    token = tokens.user("admin", iat=now - 600, exp=now - 60)
    assert client.get("/user", headers=bearer(token)).status_code == 401


def test_bearer_scheme_is_case_insensitive(client: FlaskClient, tokens: TokenFactory) -> None:
    headers = {"Authorization": f"bearer {tokens.user('client')}"}
    assert client.get("/user", headers=headers).status_code == 200


def test_token_in_a_cookie_is_ignored(client: FlaskClient, tokens: TokenFactory) -> None:
    client.set_cookie("token", tokens.user("admin"))
    client.set_cookie("access_token", tokens.user("admin"))
    assert client.get("/user").status_code == 401


# --- users ---------------------------------------------------------------------------------

def test_valid_user_token_sets_g_user(client: FlaskClient, tokens: TokenFactory) -> None:
    response = client.get("/user", headers=bearer(tokens.user("client")))
    assert response.status_code == 200
    assert response.json == {"user": "user-client-user", "service": None,
                             "is_service_call": False}


@pytest.mark.parametrize(("level", "status"), [("admin", 200), ("technician", 403),
                                               ("billing", 403), ("client", 403)])
def test_admin_required_admits_only_admins(client: FlaskClient, tokens: TokenFactory,
                                           level: str, status: int) -> None:
    assert client.get("/admin", headers=bearer(tokens.user(level))).status_code == status


@pytest.mark.parametrize(("level", "status"), [("admin", 200), ("technician", 403),
                                               ("billing", 200), ("client", 403)])
def test_permission_required_admits_listed_levels(client: FlaskClient, tokens: TokenFactory,
                                                  level: str, status: int) -> None:
    assert client.get("/billing", headers=bearer(tokens.user(level))).status_code == status


def test_user_below_required_level_gets_403_problem(client: FlaskClient,
                                                   tokens: TokenFactory) -> None:
    response = client.get("/billing", headers=bearer(tokens.user("technician")))
    assert_problem(response, 403)
    assert response.json["detail"] == "This requires permission level: admin, billing."


def test_user_without_permission_level_claim_is_forbidden(client: FlaskClient,
                                                          tokens: TokenFactory) -> None:
    claims = tokens.user_claims("admin")
    del claims["permission_level"]
    token = tokens.key.sign(claims)
    assert client.get("/user", headers=bearer(token)).status_code == 200
    assert client.get("/admin", headers=bearer(token)).status_code == 403


def test_unknown_permission_level_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="superuser"):
        permission_required("superuser")
    with pytest.raises(ValueError):
        permission_required()


def test_service_allowed_needs_a_caller() -> None:
    with pytest.raises(ValueError):
        service_allowed()


# --- services ------------------------------------------------------------------------------

def test_allowed_service_passes_and_is_marked_as_service_call(client: FlaskClient,
                                                              tokens: TokenFactory) -> None:
    response = client.get("/from-helm", headers=bearer(tokens.service("helm", "svc")))
    assert response.status_code == 200
    assert response.json == {"user": None, "service": "helm", "is_service_call": True}


def test_service_not_listed_is_forbidden(client: FlaskClient, tokens: TokenFactory) -> None:
    response = client.get("/from-helm", headers=bearer(tokens.service("codex", "svc")))
    assert_problem(response, 403)
    assert "codex" in response.json["detail"]


def test_service_token_addressed_to_another_service_is_401(client: FlaskClient,
                                                          tokens: TokenFactory) -> None:
    response = client.get("/from-helm", headers=bearer(tokens.service("helm", "ledger")))
    assert_problem(response, 401)


def test_service_token_on_user_only_route_is_403(client: FlaskClient,
                                                 tokens: TokenFactory) -> None:
    response = client.get("/user", headers=bearer(tokens.service("helm", "svc")))
    assert_problem(response, 403)


@pytest.mark.parametrize("caller_name", ["helm", "core", "nexus", "admin"])
def test_admin_required_rejects_service_tokens(client: FlaskClient, tokens: TokenFactory,
                                               caller_name: str) -> None:
    token = tokens.service(caller_name, "svc", permission_level="admin")
    assert_problem(client.get("/admin", headers=bearer(token)), 403)


@pytest.mark.parametrize("level", ["admin", "client"])
def test_user_token_on_service_only_route_is_403(client: FlaskClient, tokens: TokenFactory,
                                                 level: str) -> None:
    response = client.get("/from-helm", headers=bearer(tokens.user(level)))
    assert_problem(response, 403)
    assert response.json["detail"] == "This endpoint is for services only."


def test_user_token_claiming_a_calling_service_is_still_a_user(client: FlaskClient,
                                                               tokens: TokenFactory) -> None:
    token = tokens.user("admin", calling_service="helm")
    assert client.get("/from-helm", headers=bearer(token)).status_code == 403


@pytest.mark.parametrize(("who", "status"), [("user", 200), ("helm", 200), ("codex", 403)])
def test_stacked_decorators_admit_users_and_the_named_service(
        client: FlaskClient, tokens: TokenFactory, who: str, status: int) -> None:
    token = tokens.user("client") if who == "user" else tokens.service(who, "svc")
    assert client.get("/users-and-helm", headers=bearer(token)).status_code == status


@pytest.mark.parametrize(("who", "status"), [("admin", 200), ("technician", 403),
                                             ("helm", 200), ("codex", 403)])
def test_admin_stacked_with_service_keeps_both_rules(
        client: FlaskClient, tokens: TokenFactory, who: str, status: int) -> None:
    token = tokens.service(who, "svc") if who in ("helm", "codex") else tokens.user(who)
    assert client.get("/admins-and-helm", headers=bearer(token)).status_code == status


def test_guarded_routes_are_documented_as_bearer_protected(client: FlaskClient) -> None:
    paths = client.get("/apispec.json").json["paths"]
    assert paths["/user"]["get"]["security"] == [{"BearerAuth": []}]
    assert paths["/from-helm"]["get"]["security"] == [{"BearerAuth": []}]
    assert "security" not in paths["/health"]["get"]


# --- Core's JWKS ---------------------------------------------------------------------------

JWKS = "/.well-known/jwks.json"


def test_keys_are_cached_between_requests(client: FlaskClient, tokens: TokenFactory,
                                          fake_core: FakeCore) -> None:
    for level in ("admin", "client", "billing"):
        assert client.get("/user", headers=bearer(tokens.user(level))).status_code == 200
    assert fake_core.count(JWKS) == 1


def test_keys_are_refetched_after_the_cache_lifetime(build_app, tokens: TokenFactory,
                                                     fake_core: FakeCore) -> None:
    client = build_app(bp, JWKS_CACHE_SECONDS=0).test_client()
    client.get("/user", headers=bearer(tokens.user("admin")))
    time.sleep(0.01)
    client.get("/user", headers=bearer(tokens.user("admin")))
    assert fake_core.count(JWKS) == 2


def test_rotated_key_is_accepted_once_core_publishes_it(app: APIFlask, client: FlaskClient,
                                                        tokens: TokenFactory,
                                                        fake_core: FakeCore) -> None:
    jwks_of(app).min_refresh_interval = 0.2
    assert client.get("/user", headers=bearer(tokens.user("admin"))).status_code == 200
    new_key = SigningKey.generate()
    fake_core.keys.append(new_key)
    time.sleep(0.25)
    rotated = TokenFactory(new_key).user("admin")
    assert client.get("/user", headers=bearer(rotated)).status_code == 200
    assert fake_core.count(JWKS) == 2
    # The old key is still published, so tokens signed before the rotation keep working.
    assert client.get("/user", headers=bearer(tokens.user("client"))).status_code == 200


def test_unknown_kids_refetch_at_most_once_per_interval(app: APIFlask, client: FlaskClient,
                                                       tokens: TokenFactory,
                                                       signing_key: SigningKey,
                                                       fake_core: FakeCore) -> None:
    jwks_of(app).min_refresh_interval = 0.2
    client.get("/user", headers=bearer(tokens.user("admin")))
    time.sleep(0.25)
    for number in range(10):
        token = signing_key.sign(tokens.user_claims("admin"), headers={"kid": f"random-{number}"})
        assert client.get("/user", headers=bearer(token)).status_code == 401
    assert fake_core.count(JWKS) == 2


def test_unknown_kids_right_after_a_fetch_cause_no_refetch(client: FlaskClient,
                                                           tokens: TokenFactory,
                                                           signing_key: SigningKey,
                                                           fake_core: FakeCore) -> None:
    client.get("/user", headers=bearer(tokens.user("admin")))
    for number in range(5):
        token = signing_key.sign(tokens.user_claims("admin"), headers={"kid": f"random-{number}"})
        assert client.get("/user", headers=bearer(token)).status_code == 401
    assert fake_core.count(JWKS) == 1


def test_core_unreachable_without_cached_keys_is_503(build_app, tokens: TokenFactory) -> None:
    client = build_app(bp, CORE_SERVICE_URL=f"http://127.0.0.1:{free_port()}").test_client()
    response = client.get("/user", headers=bearer(tokens.user("admin")))
    assert_problem(response, 503)
    assert "127.0.0.1" not in response.get_data(as_text=True)


def test_core_unreachable_stays_503_on_the_next_request(build_app, tokens: TokenFactory) -> None:
    """A client must not be told its token is bad just because the retry is throttled."""
    client = build_app(bp, CORE_SERVICE_URL=f"http://127.0.0.1:{free_port()}").test_client()
    client.get("/user", headers=bearer(tokens.user("admin")))
    assert_problem(client.get("/user", headers=bearer(tokens.user("admin"))), 503)


def test_core_unreachable_does_not_matter_without_a_token(build_app) -> None:
    client = build_app(bp, CORE_SERVICE_URL=f"http://127.0.0.1:{free_port()}").test_client()
    assert_problem(client.get("/user"), 401)


def test_failed_refresh_keeps_the_last_good_keys(app: APIFlask, client: FlaskClient,
                                                 tokens: TokenFactory,
                                                 fake_core: FakeCore) -> None:
    assert client.get("/user", headers=bearer(tokens.user("admin"))).status_code == 200
    jwks_of(app).max_age = 0
    published = list(fake_core.keys)
    fake_core.keys.clear()  # Core now serves an empty, unusable key set
    try:
        assert client.get("/user", headers=bearer(tokens.user("admin"))).status_code == 200
    finally:
        fake_core.keys.extend(published)
    assert fake_core.count(JWKS) == 2
