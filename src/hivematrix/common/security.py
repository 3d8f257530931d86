"""CSRF protection for browser-submitted requests and security headers on every response."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any, TypeVar

from flask import Flask, Response, request
from flask_wtf.csrf import CSRFProtect
from werkzeug.datastructures import Headers

F = TypeVar("F", bound=Callable[..., Any])

_SAFE_METHODS = {"GET", "HEAD", "OPTIONS", "TRACE"}

#: The pages are composed by Nexus and styled by its global stylesheet; nothing inline.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
)
#: The OpenAPI explorer at /docs boots Swagger UI with an inline script.
DOCS_CONTENT_SECURITY_POLICY = CONTENT_SECURITY_POLICY.replace(
    "script-src 'self'", "script-src 'self' 'unsafe-inline'").replace(
    "style-src 'self'", "style-src 'self' 'unsafe-inline'")


def needs_csrf_check() -> bool:
    """A state-changing request that a foreign page could have made.

    A cross-site page can submit forms (urlencoded, multipart, text/plain) without asking, but
    cannot send ``application/json`` without a CORS preflight, which no HiveMatrix service
    grants. So JSON API calls are exempt, and so are bodyless calls that carry their own
    ``Authorization`` (scripts, other services: a browser only adds that header through Nexus,
    whose SameSite session cookie is not sent on cross-site POSTs). Everything else that changes
    state needs a token (form field ``csrf_token`` or header ``X-CSRFToken``).
    """
    if request.method in _SAFE_METHODS or request.is_json:
        return False
    if request.method != "POST":
        # PUT, PATCH and DELETE cannot come from a form or a no-CORS fetch: a browser sends
        # them cross-site only after a preflight that no HiveMatrix service grants.
        return False
    bodyless = not request.content_type and not request.content_length
    return not (bodyless and "Authorization" in request.headers)


def csrf_exempt(view: F) -> F:
    """Mark a view that checks its callers another way (client credentials, a proxy whose
    backend checks its own forms)."""
    view.__csrf_exempt__ = True  # type: ignore[attr-defined]
    return view


def _is_exempt(app: Flask) -> bool:
    view = app.view_functions.get(request.endpoint or "")
    return bool(getattr(view, "__csrf_exempt__", False))


def init_app(app: Flask) -> CSRFProtect:
    """Enable CSRF checks (see :func:`needs_csrf_check`) and the security headers."""
    if not app.config.get("SECRET_KEY"):
        # Sessions and CSRF tokens then last only as long as this process; `hivematrix init`
        # writes a persistent SECRET_KEY into each service's .flaskenv.
        app.logger.warning("SECRET_KEY is not set; using a random key for this process")
        app.config["SECRET_KEY"] = secrets.token_urlsafe(32)
    app.config.setdefault("WTF_CSRF_CHECK_DEFAULT", False)
    app.config.setdefault("WTF_CSRF_TIME_LIMIT", None)  # valid for the browser session
    app.config["SESSION_COOKIE_NAME"] = f"hm_{app.config['SERVICE_NAME']}_session"
    app.config["SESSION_COOKIE_HTTPONLY"] = True
    # Flask's own default is None (no attribute), so a setdefault would never apply.
    if not app.config.get("SESSION_COOKIE_SAMESITE"):
        app.config["SESSION_COOKIE_SAMESITE"] = "Lax"
    csrf = CSRFProtect(app)

    @app.before_request
    def check_csrf() -> None:
        # Unrouted requests fall through to their 404/405 instead of a CSRF complaint.
        routed = request.routing_exception is None
        if (routed and app.config.get("WTF_CSRF_ENABLED", True) and needs_csrf_check()
                and not _is_exempt(app)):
            csrf.protect()

    @app.after_request
    def add_security_headers(response: Response) -> Response:
        docs = request.endpoint in ("openapi.docs", "openapi.swagger_ui_oauth_redirect")
        apply_security_headers(response.headers, secure=request.is_secure,
                               authorized="Authorization" in request.headers, docs=docs)
        return response

    return csrf


def apply_security_headers(headers: Headers, *, secure: bool, authorized: bool,
                           docs: bool = False) -> None:
    """The headers every answer carries, unless the view set its own."""
    wanted = [
        ("X-Content-Type-Options", "nosniff"),
        ("X-Frame-Options", "DENY"),
        ("Referrer-Policy", "same-origin"),
        ("Permissions-Policy", "camera=(), microphone=(), geolocation=()"),
        ("Content-Security-Policy",
         DOCS_CONTENT_SECURITY_POLICY if docs else CONTENT_SECURITY_POLICY),
    ]
    if secure:
        wanted.append(("Strict-Transport-Security", "max-age=31536000"))
    if authorized:
        # Responses to authenticated calls carry someone's data: never cache them.
        wanted.append(("Cache-Control", "no-store"))
    # One look at the names present, not one scan of all headers per default (every answer
    # of every service passes here).
    present = {name.lower() for name in headers.keys()}  # noqa: SIM118 - Headers, not a dict
    for name, value in wanted:
        if name.lower() not in present:
            headers.add(name, value)
