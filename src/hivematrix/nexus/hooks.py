"""Per-request glue: refuse work without a session store, find the user, compose HTML pages."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Flask, current_app, g, request, session
from werkzeug.wrappers import Response

from hivematrix.common.auth import Principal
from hivematrix.common.errors import problem
from hivematrix.common.security import CONTENT_SECURITY_POLICY
from hivematrix.nexus import signin
from hivematrix.nexus.chrome import new_nonce, policy_with_nonce, render_chrome
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
    nonce = new_nonce()
    chrome = render_chrome(nonce=nonce, user=user, services=services, active=active,
                           theme=prefs["theme"], color_theme=prefs["color_theme"], app=app)
    content_type = response.headers.get("Content-Type", "")
    charset = response.mimetype_params.get("charset", "utf-8") if ";" in content_type \
        else "utf-8"
    response.set_data(compose(response.get_data(), chrome, charset))
    response.headers["Content-Security-Policy"] = policy_with_nonce(
        response.headers.get("Content-Security-Policy"), nonce, CONTENT_SECURITY_POLICY)
    # The page now depends on who is signed in and their theme.
    response.headers["Cache-Control"] = "private, no-cache"
    return response


def init_app(app: Flask) -> None:
    app.before_request(_before_request)
    app.after_request(_compose)
    app.config["SEND_FILE_MAX_AGE_DEFAULT"] = 365 * 24 * 3600
