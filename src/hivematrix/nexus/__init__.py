"""Nexus, the gateway: the only public entry of the platform.

It signs browsers in (OIDC code flow with PKCE against the built-in identity service or
Keycloak), keeps their HiveMatrix JWT server-side, proxies ``/<service>/...`` to the services
with that JWT as a Bearer token, and dresses every HTML page in the shared navigation and
stylesheet.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

from apiflask import APIFlask

from hivematrix.common import create_service_app
from hivematrix.common.registry import ServiceSpec

SERVICE = ServiceSpec(
    name="nexus",
    factory="hivematrix.nexus:create_app",
    port=8000,
    title="Nexus",
    description="Gateway: sign-in, reverse proxy, page composition, design system",
    visible=False,
    migrations="hivematrix.nexus",
    depends_on=("identity", "core"),
)

DEFAULTS: dict[str, Any] = {
    #: Where ``hivematrix run nexus`` listens: 127.0.0.1 for the embedded default, 0.0.0.0 to
    #: face the network (the only service that may).
    "NEXUS_HOST": "127.0.0.1",
    #: Serve HTTPS with $HIVEMATRIX_HOME/nexus/tls/ (a self-signed pair is made if missing).
    "NEXUS_TLS": False,
    #: The name the self-signed certificate is for (default: this machine's FQDN).
    "NEXUS_HOSTNAME": None,
    #: With TLS: answer plain HTTP here with a redirect to HTTPS (e.g. 80; 0 for none).
    "NEXUS_HTTP_REDIRECT_PORT": 0,
    #: The public address (``https://hm.example.com``); unset: taken from each request.
    "NEXUS_PUBLIC_URL": None,
    #: Behind an operator's TLS terminator: trust one hop of X-Forwarded-* headers.
    "NEXUS_BEHIND_PROXY": False,
    #: Where ``/`` sends users when they may use it (else the first service they may use).
    "NEXUS_HOME_SERVICE": None,
    "NEXUS_SESSION_STORE": "sql",
    "NEXUS_SESSION_IDLE_SECONDS": 8 * 3600,
    #: How long Core's "still valid" answer is trusted. Without a revocation feed this bounds
    #: how late a revocation is noticed; with one (REVOCATION_REDIS_URL) it can be long.
    "NEXUS_SESSION_CHECK_SECONDS": 0.5,
    #: Renew the HiveMatrix JWT (with the IdP refresh token) when less than this is left.
    "NEXUS_RENEW_MARGIN_SECONDS": 300,
    #: Per client IP, for /login and /keycloak-callback each.
    "NEXUS_LOGIN_RATE_LIMIT": "10 per minute",
    "NEXUS_CONNECT_TIMEOUT": 5.0,
    "NEXUS_READ_TIMEOUT": 60.0,
    "NEXUS_COMPOSE_MAX_BYTES": 5 * 1024 * 1024,
    #: Serve signed-in GETs of service pages without Flask's request cycle (nexus/lane.py).
    "NEXUS_FAST_LANE": True,
    #: What display links may open (space-separated path prefixes): wall screens only.
    "NEXUS_DISPLAY_PATHS": "/beacon/display/ /beacon/api/tickets /beacon/static/",
    "REDIS_URL": "redis://127.0.0.1:6379/0",
    "REDIS_KEY_PREFIX": "hivematrix:",
    #: Core's Redis, where it announces revocations (``<prefix>revocations``).
    "REVOCATION_REDIS_URL": None,
    "KEYCLOAK_BACKEND_URL": "http://127.0.0.1:8080",
    "KEYCLOAK_REALM": "hivematrix",
    "KEYCLOAK_CLIENT_ID": "core-client",
    #: Unset: read from the ``keycloak`` section of master_config.json at each sign-in.
    "KEYCLOAK_CLIENT_SECRET": None,
    "KEYCLOAK_VERIFY_TLS": True,
}


def create_app(settings: Mapping[str, Any] | None = None) -> APIFlask:
    """Build the gateway app."""
    import urllib3

    from hivematrix.nexus import hooks, sessions, signin
    from hivematrix.nexus.core_client import CoreClient, RevocationListener, SessionChecker
    from hivematrix.nexus.directory import ServiceDirectory
    from hivematrix.nexus.gateway import gw
    from hivematrix.nexus.oidc import OidcClient, OidcSettings, secret_from_master_config
    from hivematrix.nexus.views import bp

    app = create_service_app(SERVICE.name, settings, title="HiveMatrix Nexus",
                             blueprints=[bp, hooks.static, gw], defaults=DEFAULTS,
                             trust_forwarded="NEXUS_BEHIND_PROXY")
    config = app.config
    home = Path(config["HIVEMATRIX_HOME"])

    store: sessions.BrowserSessionStore
    if config["NEXUS_SESSION_STORE"] == "redis":
        store = sessions.RedisBrowserSessions.from_url(config["REDIS_URL"],
                                                       config["REDIS_KEY_PREFIX"])
    elif config["NEXUS_SESSION_STORE"] == "sql":
        store = sessions.SqlBrowserSessions(app.extensions["hivematrix.db"])
    else:
        raise ValueError(f"setting NEXUS_SESSION_STORE: {config['NEXUS_SESSION_STORE']!r} "
                         "is not 'sql' or 'redis'")
    app.session_interface = sessions.ServerSessionInterface(
        store, timedelta(seconds=config["NEXUS_SESSION_IDLE_SECONDS"]))

    core = CoreClient(config["CORE_SERVICE_URL"], timeout=config["NEXUS_CONNECT_TIMEOUT"])
    checker = SessionChecker(core, ttl=config["NEXUS_SESSION_CHECK_SECONDS"])
    if config["REVOCATION_REDIS_URL"]:
        RevocationListener(checker, config["REVOCATION_REDIS_URL"],
                           f"{config['REDIS_KEY_PREFIX']}revocations").start()
    oidc = OidcClient(OidcSettings(
        backend_url=config["KEYCLOAK_BACKEND_URL"], realm=config["KEYCLOAK_REALM"],
        client_id=config["KEYCLOAK_CLIENT_ID"],
        client_secret=secret_from_master_config(home, config["KEYCLOAK_CLIENT_SECRET"]),
        verify_tls=config["KEYCLOAK_VERIFY_TLS"], timeout=config["NEXUS_CONNECT_TIMEOUT"]))
    app.extensions["nexus"] = signin.Services(app.extensions["hivematrix.auth"], checker, core,
                                              oidc)
    app.extensions["nexus.directory"] = ServiceDirectory(home / "services.json")
    # One connection pool for all proxied requests (urllib3: about half httpx's cost per
    # request). It keeps no cookies and follows no redirects: both are the browser's business.
    app.extensions["nexus.http"] = urllib3.PoolManager(num_pools=50, maxsize=50, block=False)
    hooks.init_app(app)
    if config["NEXUS_FAST_LANE"]:
        from hivematrix.nexus import lane

        lane.install(app)
    # The request log already has one line per request; httpx would add one per backend call.
    logging.getLogger("httpx").setLevel(logging.WARNING)

    def session_store_check() -> Any:
        from hivematrix.common.health import Check

        store.ping()
        return Check("healthy", {"type": config["NEXUS_SESSION_STORE"]})

    app.extensions["hivematrix.health"].add("session_store", session_store_check)
    return app
