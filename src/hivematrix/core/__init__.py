"""Core: the JWT authority — signing keys, token exchange, sessions and service tokens."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

import jwt
from apiflask import APIFlask

from hivematrix.common import create_service_app
from hivematrix.common.health import Check
from hivematrix.common.registry import ServiceSpec

SERVICE = ServiceSpec(
    name="core",
    factory="hivematrix.core:create_app",
    port=5000,
    title="Core",
    description="JWT authority: token exchange, sessions, service tokens, JWKS",
    visible=False,
    migrations="hivematrix.core",
    depends_on=("identity",),  # the built-in provider, when it is the one in use
)

DEFAULTS: dict[str, Any] = {
    # Where the identity provider's realm lives (the built-in one, or Keycloak).
    "OIDC_ISSUER_URL": "http://127.0.0.1:8080/realms/hivematrix",
    "OIDC_VERIFY_TLS": True,
    "OIDC_TIMEOUT": 5.0,
    # "sql" (embedded default, Core's database) or "redis" (REDIS_URL; shared by instances).
    "SESSION_STORE": "sql",
    "REDIS_URL": "redis://127.0.0.1:6379/0",
    "REDIS_KEY_PREFIX": "hivematrix:",
}


class LocalKeys:
    """Lets Core's own views verify tokens with its key ring instead of fetching its JWKS."""

    def __init__(self, keys: Any) -> None:
        self.keys = keys

    def key(self, kid: str) -> jwt.PyJWK:
        from hivematrix.common.auth import InvalidToken

        found = self.keys.find(kid)
        if found is None:
            raise InvalidToken("token signed with an unknown key")
        return jwt.PyJWK(found.public_jwk())


def create_app(settings: Mapping[str, Any] | None = None) -> APIFlask:
    """Build the Core app.

    :raises hivematrix.core.keyring.KeyRingError: the signing keys are unusable.
    """
    from hivematrix.core import sessions, tokens
    from hivematrix.core.identity_provider import IdentityProvider
    from hivematrix.core.keyring import KeyRing
    from hivematrix.core.service_secrets import ServiceSecrets
    from hivematrix.core.views import bp

    app = create_service_app(SERVICE.name, settings, title="HiveMatrix Core", blueprints=[bp],
                             defaults=DEFAULTS)
    home = Path(app.config["HIVEMATRIX_HOME"])
    # Published until every token a retired key signed has expired (plus clock leeway).
    publish_for = tokens.USER_TOKEN_LIFETIME + timedelta(seconds=app.config["JWT_LEEWAY"])
    keys = KeyRing.open(home / "keys", publish_for=publish_for)
    app.extensions["core.keys"] = keys
    app.extensions["hivematrix.auth"].jwks = LocalKeys(keys)
    app.extensions["core.service_secrets"] = ServiceSecrets(home / "core" / "service-secrets.json")
    app.extensions["core.idp"] = IdentityProvider(
        app.config["OIDC_ISSUER_URL"], verify_tls=app.config["OIDC_VERIFY_TLS"],
        timeout=app.config["OIDC_TIMEOUT"])

    store: sessions.SessionStore
    if app.config["SESSION_STORE"] == "redis":
        store = sessions.RedisSessionStore.from_url(app.config["REDIS_URL"],
                                                    prefix=app.config["REDIS_KEY_PREFIX"])
    elif app.config["SESSION_STORE"] == "sql":
        store = sessions.SqlSessionStore(app.extensions["hivematrix.db"])
    else:
        raise ValueError(f"setting SESSION_STORE: {app.config['SESSION_STORE']!r} is not "
                         "'sql' or 'redis'")
    app.extensions["core.sessions"] = store

    def session_store_check() -> Check:
        store.ping()
        return Check("healthy", {"type": app.config["SESSION_STORE"]})

    app.extensions["hivematrix.health"].add("session_store", session_store_check)
    return app
