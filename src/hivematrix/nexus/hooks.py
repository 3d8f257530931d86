"""Per-request glue: refuse work without a session store, find the user, compose HTML pages."""

from __future__ import annotations

import base64
import os
import threading
from functools import lru_cache
from typing import Any

from flask import Blueprint, Flask, current_app, g, request, session
from werkzeug.http import parse_options_header
from werkzeug.wrappers import Response

from hivematrix.common.auth import Principal
from hivematrix.common.errors import problem
from hivematrix.common.security import CONTENT_SECURITY_POLICY
from hivematrix.nexus import signin
from hivematrix.nexus.chrome import policy_with_nonce, render_chrome
from hivematrix.nexus.compose import compose, is_composable
from hivematrix.nexus.core_client import CoreUnavailable
from hivematrix.nexus.directory import ServiceEntry
from hivematrix.nexus.gateway import needs_user
from hivematrix.nexus.sessions import ServerSession
from hivematrix.nexus.views import DEFAULT_PREFS, preferences_for

#: The design system's files, cached for a year: their URLs carry the version.
static = Blueprint("nexus_static", __name__, static_folder="static",
                   static_url_path="/nexus/static")
#: Endpoints that work without a session store (probes, assets, API docs).
STORELESS = {"hivematrix.health", "hivematrix.metrics_view", "nexus_static.static",
             "docs_assets.docs_asset", "openapi.spec", "openapi.docs"}
#: Pages left as they are (Swagger UI brings its own look).
NOT_COMPOSED = {"openapi.docs", "openapi.swagger_ui_oauth_redirect"}


def _before_request() -> Response | None:
    if request.endpoint in STORELESS:
        return None
    if isinstance(session, ServerSession) and session.unavailable:
        return problem(503, "Sessions are unavailable right now; try again shortly.",
                       title="Service unavailable", headers={"Retry-After": "5"})
    if needs_user(request.endpoint):
        try:
            g.nexus_user = user = signin.current_user()
        except CoreUnavailable:
            return problem(503, "Sign-in cannot be checked right now (Core is not answering); "
                                "try again shortly.", title="Service unavailable",
                           headers={"Retry-After": "5"})
        if user is not None:
            # The kit's request log and rate limits then name the user, as in every service.
            g.principal, g.user = Principal(user.claims), user.claims
    return None


def _compose(response: Response) -> Response:
    if request.endpoint in NOT_COMPOSED:
        return response
    user = g.get("nexus_user")
    if user is None:
        return dress(response, None, DEFAULT_PREFS, [], None)
    if not composable(response):  # before the preferences, which may cost a query
        return response
    directory = current_app.extensions["nexus.directory"]
    return dress(response, user.claims, preferences_for(str(user.claims["sub"])),
                 directory.navigation(user.claims.get("permission_level")),
                 g.get("nexus_service"))


def composable(response: Response) -> bool:
    return (not response.direct_passthrough and not response.is_streamed
            and is_composable(response.headers.get("Content-Type")))


def dress(response: Response, user: dict[str, Any] | None, prefs: dict[str, str],
          services: list[ServiceEntry], active: str | None, app: Flask | None = None) -> Response:
    """An HTML page with Nexus's stylesheet, navigation and footer; other answers unchanged.

    Needs no request context: outside one (the fast lane) pass the ``app``.
    """
    if not composable(response):
        return response
    page, policy = dressed(response.get_data(), response.headers.get("Content-Type", ""),
                           response.headers.get("Content-Security-Policy"), user, prefs,
                           services, active, app)
    response.set_data(page)
    response.headers["Content-Security-Policy"] = policy
    # The page now depends on who is signed in and their theme.
    response.headers["Cache-Control"] = dressed_cache_control(response.headers.get("Cache-Control"))
    return response


#: A composed page depends on who is signed in and their theme.
DRESSED_CACHE_CONTROL = "private, no-cache"


def dressed_cache_control(backend: str | None) -> str:
    """A composed page's Cache-Control: never shared; and never stored when the backend said
    so (a page showing a one-time password, say)."""
    if backend and "no-store" in backend.lower():
        return "private, no-store"
    return DRESSED_CACHE_CONTROL


def dressed(page: bytes, content_type: str, policy: str | None, user: dict[str, Any] | None,
            prefs: dict[str, str], services: list[ServiceEntry], active: str | None,
            app: Flask | None = None) -> tuple[bytes, str]:
    """A page with the chrome put in, and its Content-Security-Policy letting the chrome's
    scripts run: :func:`dress` on plain values, for the fast lane's answers without a
    response object. The page's headers then need :func:`dressed_cache_control` too."""
    nonce = base64.urlsafe_b64encode(RANDOM.take(NONCE_BYTES)).rstrip(b"=").decode("ascii")
    chrome = render_chrome(nonce=nonce, user=user, services=services, active=active,
                           theme=prefs["theme"], color_theme=prefs["color_theme"], app=app)
    charset = _charset(content_type) if ";" in content_type else "utf-8"
    return compose(page, chrome, charset), _policy(policy, nonce)


#: Stands in for the nonce in remembered policies (never valid base64url, so never real).
_NONCE_MARK = "@nonce@"


def _policy(policy: str | None, nonce: str) -> str:
    """``policy_with_nonce`` of the page's policy, the work done once per distinct policy."""
    if policy is not None and _NONCE_MARK in policy:
        return policy_with_nonce(policy, nonce, CONTENT_SECURITY_POLICY)
    return _policy_template(policy).replace(_NONCE_MARK, nonce)


@lru_cache(maxsize=256)
def _policy_template(policy: str | None) -> str:
    return policy_with_nonce(policy, _NONCE_MARK, CONTENT_SECURITY_POLICY)


class RandomPool:
    """Bytes from ``os.urandom``, fetched a few KiB at a time and handed out in pieces.

    Each ``os.urandom`` call lets go of the GIL, and under load another thread then takes it:
    a thread switch or two, which cost more than the rest of making a nonce. Fetching ahead
    makes that one call per few hundred requests. (A forked child starts a fresh pool, so no
    two processes hand out the same bytes.)
    """

    def __init__(self, size: int = 4096) -> None:
        self.size = size
        self._lock = threading.Lock()
        self._pool, self._at = b"", 0
        os.register_at_fork(after_in_child=self._forget)

    def take(self, count: int) -> bytes:
        with self._lock:
            at = self._at
            if at + count > len(self._pool):
                self._pool, at = os.urandom(max(self.size, count)), 0
            self._at = at + count
            return self._pool[at:at + count]

    def _forget(self) -> None:
        self._lock = threading.Lock()
        self._pool, self._at = b"", 0


#: For the injected scripts' nonces and the fast lane's correlation ids.
RANDOM = RandomPool()
#: As ``chrome.new_nonce``: 18 random bytes, 24 characters of base64url.
NONCE_BYTES = 18


@lru_cache(maxsize=256)
def _charset(content_type: str) -> str:
    """The ``charset`` parameter, read as Werkzeug reads a response's (a handful of distinct
    values, so remembered)."""
    return parse_options_header(content_type)[1].get("charset", "utf-8")


def init_app(app: Flask) -> None:
    app.before_request(_before_request)
    app.after_request(_compose)
    app.config["SEND_FILE_MAX_AGE_DEFAULT"] = 365 * 24 * 3600
