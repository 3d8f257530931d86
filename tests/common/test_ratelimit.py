"""Rate limits per verified subject, else per client IP; in memory and in real Redis."""

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from apiflask import APIBlueprint, APIFlask
from flask.testing import FlaskClient

from hivematrix.common.auth import token_required
from hivematrix.common.keys import SigningKey
from hivematrix.common.ratelimit import exempt, limit
from hivematrix.common.testing import TokenFactory

bp = APIBlueprint("limited", __name__)


@bp.get("/ping")
def ping() -> dict[str, str]:
    return {"pong": "yes"}


@bp.get("/me")
@token_required
def me() -> dict[str, str]:
    return {"me": "yes"}


@bp.get("/strict")
@limit("1 per minute")
def strict() -> dict[str, str]:
    return {"strict": "yes"}


@bp.get("/free")
@exempt
def free() -> dict[str, str]:
    return {"free": "yes"}


@pytest.fixture(params=["memory", "redis"])
def storage(request: pytest.FixtureRequest) -> Iterator[dict[str, Any]]:
    """Limiter settings for one storage; Redis keys get a prefix unique to the test."""
    if request.param == "memory":
        yield {"RATELIMIT_STORAGE_URI": "memory://"}
        return
    url = request.getfixturevalue("redis_url")
    prefix = f"hm-test-{uuid.uuid4().hex}"
    yield {"RATELIMIT_STORAGE_URI": url, "RATELIMIT_KEY_PREFIX": prefix}
    connection = redis.Redis.from_url(url)
    for key in connection.scan_iter(f"*{prefix}*"):
        connection.delete(key)


@pytest.fixture
def app(build_app, storage: dict[str, Any]) -> APIFlask:
    return build_app(bp, RATELIMIT_DEFAULT="2 per minute", **storage)


@pytest.fixture
def client(app: APIFlask) -> FlaskClient:
    return app.test_client()


def statuses(client: FlaskClient, path: str, times: int, **headers: str) -> list[int]:
    return [client.get(path, headers=headers).status_code for _ in range(times)]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def from_ip(address: str) -> dict[str, str]:
    return {"X-Forwarded-For": address}


def test_default_limit_applies(client: FlaskClient) -> None:
    assert statuses(client, "/ping", 3) == [200, 200, 429]


def test_429_says_when_to_retry(client: FlaskClient) -> None:
    statuses(client, "/ping", 2)
    response = client.get("/ping")
    assert response.status_code == 429
    assert response.content_type == "application/problem+json"
    retry_after = int(response.headers["Retry-After"])
    assert 1 <= retry_after <= 60
    assert response.json["retry_after"] == retry_after


def test_each_user_has_an_own_budget(client: FlaskClient, tokens: TokenFactory) -> None:
    alice = bearer(tokens.user("admin", preferred_username="alice"))
    bob = bearer(tokens.user("admin", preferred_username="bob"))
    assert statuses(client, "/me", 3, **alice) == [200, 200, 429]
    assert statuses(client, "/me", 2, **bob) == [200, 200]


def test_new_token_for_the_same_user_shares_the_budget(client: FlaskClient,
                                                       tokens: TokenFactory) -> None:
    assert statuses(client, "/me", 2, **bearer(tokens.user("admin"))) == [200, 200]
    assert client.get("/me", headers=bearer(tokens.user("admin"))).status_code == 429


def test_user_budget_does_not_depend_on_the_ip(client: FlaskClient,
                                               tokens: TokenFactory) -> None:
    headers = bearer(tokens.user("admin"))
    assert client.get("/me", headers={**headers, **from_ip("10.0.0.1")}).status_code == 200
    assert client.get("/me", headers={**headers, **from_ip("10.0.0.2")}).status_code == 200
    assert client.get("/me", headers={**headers, **from_ip("10.0.0.3")}).status_code == 429


def test_anonymous_clients_are_limited_per_forwarded_ip(client: FlaskClient) -> None:
    assert statuses(client, "/ping", 3, **from_ip("10.0.0.1")) == [200, 200, 429]
    assert statuses(client, "/ping", 2, **from_ip("10.0.0.2")) == [200, 200]


def test_only_the_nearest_forwarded_hop_counts(client: FlaskClient) -> None:
    # Nexus appends the real client; whatever the client wrote before it is not trusted.
    assert statuses(client, "/ping", 2, **from_ip("1.1.1.1, 10.0.0.1")) == [200, 200]
    assert client.get("/ping", headers=from_ip("2.2.2.2, 10.0.0.1")).status_code == 429


def test_user_and_anonymous_budgets_are_separate(client: FlaskClient,
                                                 tokens: TokenFactory) -> None:
    assert statuses(client, "/ping", 3, **from_ip("10.0.0.1")) == [200, 200, 429]
    headers = {**bearer(tokens.user("client")), **from_ip("10.0.0.1")}
    assert client.get("/ping", headers=headers).status_code == 200


def test_forged_token_does_not_buy_a_fresh_budget(client: FlaskClient,
                                                  tokens: TokenFactory) -> None:
    assert statuses(client, "/ping", 3, **from_ip("10.0.0.1")) == [200, 200, 429]
    forger = TokenFactory(SigningKey(SigningKey.generate().private_key, tokens.key.kid))
    headers = {**bearer(forger.user("admin", preferred_username="fresh")), **from_ip("10.0.0.1")}
    assert client.get("/ping", headers=headers).status_code == 429


def test_services_are_limited_per_calling_service(client: FlaskClient,
                                                  tokens: TokenFactory) -> None:
    helm = bearer(tokens.service("helm", "svc"))
    codex = bearer(tokens.service("codex", "svc"))
    assert statuses(client, "/ping", 3, **helm) == [200, 200, 429]
    assert statuses(client, "/ping", 2, **codex) == [200, 200]


@pytest.mark.parametrize("path", ["/health", "/metrics", "/free"])
def test_exempt_endpoints_are_never_limited(client: FlaskClient, path: str) -> None:
    assert statuses(client, path, 5) == [200] * 5


def test_exempt_endpoints_do_not_use_up_the_budget(client: FlaskClient) -> None:
    statuses(client, "/health", 3)
    assert statuses(client, "/ping", 2) == [200, 200]


def test_view_limit_replaces_the_default(client: FlaskClient) -> None:
    assert statuses(client, "/strict", 2) == [200, 429]


def test_limits_are_per_endpoint(client: FlaskClient) -> None:
    assert statuses(client, "/strict", 2) == [200, 429]
    assert client.get("/ping").status_code == 200


def test_responses_below_the_limit_carry_no_rate_limit_headers(client: FlaskClient) -> None:
    headers = client.get("/ping").headers
    assert "Retry-After" not in headers
    assert not any(name.lower().startswith("x-ratelimit") for name, _ in headers)


# --- Redis only ----------------------------------------------------------------------------

@pytest.fixture
def redis_storage(redis_url: str) -> Iterator[dict[str, Any]]:
    prefix = f"hm-test-{uuid.uuid4().hex}"
    yield {"RATELIMIT_STORAGE_URI": redis_url, "RATELIMIT_KEY_PREFIX": prefix,
           "RATELIMIT_DEFAULT": "2 per minute"}
    connection = redis.Redis.from_url(redis_url)
    for key in connection.scan_iter(f"*{prefix}*"):
        connection.delete(key)


def test_redis_storage_keeps_counters_in_redis(build_app, redis_storage: dict[str, Any],
                                               tokens: TokenFactory) -> None:
    client = build_app(bp, **redis_storage).test_client()
    client.get("/me", headers=bearer(tokens.user("admin")))
    connection = redis.Redis.from_url(redis_storage["RATELIMIT_STORAGE_URI"])
    pattern = f"*{redis_storage['RATELIMIT_KEY_PREFIX']}*"
    keys = [key.decode() for key in connection.scan_iter(pattern)]
    assert any("user:user-admin-user" in key for key in keys), keys


def test_workers_sharing_redis_share_one_budget(build_app,
                                                redis_storage: dict[str, Any]) -> None:
    first = build_app(bp, **redis_storage).test_client()
    second = build_app(bp, **redis_storage).test_client()
    assert statuses(first, "/ping", 2) == [200, 200]
    assert second.get("/ping").status_code == 429


def test_workers_with_memory_storage_count_separately(build_app) -> None:
    first = build_app(bp, RATELIMIT_DEFAULT="2 per minute").test_client()
    second = build_app(bp, RATELIMIT_DEFAULT="2 per minute").test_client()
    assert statuses(first, "/ping", 2) == [200, 200]
    assert second.get("/ping").status_code == 200
