"""Per-request glue: refuse work without a session store, find the user, compose HTML pages."""

from __future__ import annotations

from flask import Blueprint, Flask, current_app, g, request, session
from werkzeug.wrappers import Response

from hivematrix.common.auth import Principal
from hivematrix.common.errors import problem
from hivematrix.common.security import CONTENT_SECURITY_POLICY
from hivematrix.nexus import signin
from hivematrix.nexus.chrome import new_nonce, policy_with_nonce, render_chrome
from hivematrix.nexus.compose import compose, is_composable
from hivematrix.nexus.core_client import CoreUnavailable
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
    if request.endpoint in NOT_COMPOSED or response.direct_passthrough or response.is_streamed:
        return response
    if not is_composable(response.headers.get("Content-Type")):
        return response
    user = g.get("nexus_user")
    nonce = new_nonce()
    prefs = preferences_for(str(user.claims["sub"])) if user else DEFAULT_PREFS
    directory = current_app.extensions["nexus.directory"]
    services = directory.navigation(user.claims.get("permission_level")) if user else []
    chrome = render_chrome(nonce=nonce, user=user.claims if user else None, services=services,
                           active=g.get("nexus_service"), theme=prefs["theme"],
                           color_theme=prefs["color_theme"])
    response.set_data(compose(response.get_data(), chrome,
                              response.mimetype_params.get("charset", "utf-8")))
    response.headers["Content-Security-Policy"] = policy_with_nonce(
        response.headers.get("Content-Security-Policy"), nonce, CONTENT_SECURITY_POLICY)
    # The page now depends on who is signed in and their theme.
    response.headers["Cache-Control"] = "private, no-cache"
    return response


def init_app(app: Flask) -> None:
    app.before_request(_before_request)
    app.after_request(_compose)
    app.config["SEND_FILE_MAX_AGE_DEFAULT"] = 365 * 24 * 3600
