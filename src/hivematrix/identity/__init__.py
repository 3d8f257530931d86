"""The built-in OpenID Connect provider, used when no Keycloak is configured.

It answers on Keycloak's URL layout (``/realms/<realm>/protocol/openid-connect/...``) so Core
and Nexus treat it exactly like Keycloak. Users and groups live in its own database; its
ID-token key lives in ``$HIVEMATRIX_HOME/identity/keys/signing.pem``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from apiflask import APIFlask
from flask import Flask

from hivematrix.common import create_service_app
from hivematrix.common.registry import ServiceSpec

SERVICE = ServiceSpec(
    name="identity",
    factory="hivematrix.identity:create_app",
    port=8080,
    title="Identity",
    description="Built-in OpenID Connect provider (Keycloak-compatible URLs)",
    visible=False,
    migrations="hivematrix.identity",
)

DEFAULTS: dict[str, Any] = {
    "IDENTITY_REALM": "hivematrix",
    #: Fixed issuer URL (e.g. the public address through Nexus); unset: from each request.
    "IDENTITY_ISSUER": None,
    #: Space-separated callback URLs of ``core-client``; applied at every start.
    "IDENTITY_REDIRECT_URIS": "http://127.0.0.1:8000/keycloak-callback "
                              "https://localhost/keycloak-callback",
    #: Space-separated; unset: the redirect URIs and the roots of their sites.
    "IDENTITY_POST_LOGOUT_REDIRECT_URIS": None,
    "IDENTITY_ACCESS_TOKEN_SECONDS": 300,
    #: A sign-in lasts this long at most (browser session and refresh tokens).
    "IDENTITY_SESSION_MAX_SECONDS": 36000,
    "IDENTITY_LOCKOUT_THRESHOLD": 5,
    "IDENTITY_LOCKOUT_SECONDS": 30,
    "IDENTITY_LOCKOUT_MAX_SECONDS": 900,
    "IDENTITY_PASSWORD_MIN_LENGTH": 12,
    #: When set, the first administrator is created at ``/setup?token=...`` instead of
    #: automatically with a generated password.
    "HIVEMATRIX_SETUP_TOKEN": None,
}

log = logging.getLogger("hivematrix.identity")


def create_app(settings: Mapping[str, Any] | None = None) -> APIFlask:
    """Build the identity provider app.

    :raises hivematrix.identity.bootstrap.StartupError: the signing key is corrupt or a
        setting is unusable.
    """
    from hivematrix.identity import bootstrap
    from hivematrix.identity.api import api
    from hivematrix.identity.provider import IdentityProvider, ProviderSettings
    from hivematrix.identity.views import bp

    app = create_service_app(SERVICE.name, settings, title="HiveMatrix Identity",
                             blueprints=[bp, api], defaults=DEFAULTS)
    config = app.config
    _check_settings(config)

    home = Path(config["HIVEMATRIX_HOME"])
    key = bootstrap.load_or_create_signing_key(bootstrap.signing_key_path(home))
    app.extensions["hivematrix.identity"] = IdentityProvider(key, ProviderSettings(
        realm=config["IDENTITY_REALM"], issuer=config["IDENTITY_ISSUER"],
        access_token_seconds=config["IDENTITY_ACCESS_TOKEN_SECONDS"],
        session_max_seconds=config["IDENTITY_SESSION_MAX_SECONDS"]))

    redirect_uris = bootstrap.parse_uris("IDENTITY_REDIRECT_URIS",
                                         config["IDENTITY_REDIRECT_URIS"])
    logout_uris = (bootstrap.parse_uris("IDENTITY_POST_LOGOUT_REDIRECT_URIS",
                                        config["IDENTITY_POST_LOGOUT_REDIRECT_URIS"])
                   if config["IDENTITY_POST_LOGOUT_REDIRECT_URIS"] is not None
                   else bootstrap.default_post_logout_uris(redirect_uris))
    first_start = FirstStart(app, bootstrap.BootstrapSettings(
        home=home, realm=config["IDENTITY_REALM"],
        public_url=bootstrap.public_base_url(home, config["IDENTITY_ISSUER"],
                                             config["IDENTITY_REALM"], SERVICE.port),
        client=bootstrap.ClientSettings(bootstrap.CLIENT_ID, redirect_uris, logout_uris),
        setup_token=bool(config["HIVEMATRIX_SETUP_TOKEN"])))
    first_start.ensure()
    return app


def _check_settings(config: Mapping[str, Any]) -> None:
    from hivematrix.identity.bootstrap import StartupError
    from hivematrix.identity.passwords import MIN_LENGTH

    if config["IDENTITY_PASSWORD_MIN_LENGTH"] < MIN_LENGTH:
        raise StartupError(f"setting IDENTITY_PASSWORD_MIN_LENGTH must be at least {MIN_LENGTH}")
    for name in ("IDENTITY_ACCESS_TOKEN_SECONDS", "IDENTITY_SESSION_MAX_SECONDS",
                 "IDENTITY_LOCKOUT_THRESHOLD", "IDENTITY_LOCKOUT_SECONDS",
                 "IDENTITY_LOCKOUT_MAX_SECONDS"):
        if config[name] < 1:
            raise StartupError(f"setting {name} must be a positive number")


class FirstStart:
    """Runs :func:`bootstrap.run` once the database is reachable and migrated.

    Normally that is at ``create_app`` (``hivematrix run`` migrates first); otherwise the first
    request after ``hivematrix db upgrade identity`` (or after the database comes back) does
    it, and until then ``/health`` says why the service is degraded.
    """

    def __init__(self, app: Flask, settings: Any) -> None:
        from hivematrix.common.health import Check

        self.database = app.extensions["hivematrix.db"]
        self.settings = settings
        self.done = False
        self.problem: str | None = None
        self._lock = threading.Lock()
        app.before_request(self._before_request)

        def health() -> Check:
            if self.ensure():
                return Check("healthy")
            return Check("degraded", {"error": self.problem})

        app.extensions["hivematrix.health"].add("setup", health, critical=False)

    def _schema_ready(self) -> bool:
        from alembic.script import ScriptDirectory

        from hivematrix.common import db

        url = self.database.url
        head = ScriptDirectory.from_config(
            db.alembic_config(SERVICE.migrations or "", url)).get_current_head()
        return db.current_revision(SERVICE.migrations or "", url) == head

    def _before_request(self) -> None:
        self.ensure()

    def _not_yet(self, problem: str) -> bool:
        if problem != self.problem:  # log each new reason once, not on every request
            log.warning(f"first-start setup postponed: {problem}")
            self.problem = problem
        return False

    def ensure(self) -> bool:
        """Bootstrap if not done yet and possible; True once done."""
        if self.done:
            return True
        from sqlalchemy.exc import OperationalError

        from hivematrix.identity import bootstrap

        with self._lock:
            if self.done:
                return True
            try:
                if not self._schema_ready():
                    return self._not_yet("database not migrated: run "
                                         "`hivematrix db upgrade identity`")
                bootstrap.run(self.database, self.settings)
            except OperationalError as exc:
                return self._not_yet(f"database unavailable ({type(exc.orig).__name__})")
            self.done, self.problem = True, None
        return True
