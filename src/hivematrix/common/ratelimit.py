"""Rate limits with Flask-Limiter: per signed-in subject, else per client IP.

Storage is in-process memory (embedded default) or Redis (``RATELIMIT_STORAGE_URI=redis://...``)
so that several workers and instances share one budget. Views ask for a tighter limit with
:func:`limit` and opt out with :func:`exempt`; both only mark the function, and
:func:`init_app` applies the marks to the app's views, so view modules stay free of app state.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from flask import Flask, request
from flask_limiter import Limiter
from werkzeug.exceptions import HTTPException

from hivematrix.common.auth import current_principal

F = TypeVar("F", bound=Callable[..., Any])


def rate_limit_key() -> str:
    """``user:<sub>`` or ``service:<name>`` for a valid token, else ``ip:<client address>``.

    The token is verified (not merely decoded), so a forged ``sub`` cannot buy a fresh budget.
    The client address is the one ProxyFix took from Nexus's ``X-Forwarded-For``.
    """
    try:
        principal = current_principal()
    except HTTPException:
        principal = None
    if principal is not None:
        if principal.is_service:
            return f"service:{principal.service}"
        return f"user:{principal.subject}"
    return f"ip:{request.remote_addr}"


def limit(spec: str | Callable[[], str]) -> Callable[[F], F]:
    """Mark a view with its own limit, e.g. ``@limit("10 per minute")`` (or a callable
    returning one, read per request)."""

    def mark(view: F) -> F:
        view.__rate_limit__ = spec  # type: ignore[attr-defined]
        return view

    return mark


def exempt(view: F) -> F:
    """Mark a view as free of rate limits (health probes, metrics scrapes)."""
    view.__rate_limit_exempt__ = True  # type: ignore[attr-defined]
    return view


def init_app(app: Flask) -> Limiter:
    """Create the app's limiter and apply the marks of every registered view.

    Call after all blueprints are registered.
    """
    # Flask-Limiter's headers would put Retry-After on every response; the 429 problem
    # handler sets it where it belongs.
    app.config.setdefault("RATELIMIT_HEADERS_ENABLED", False)
    app.config.setdefault("RATELIMIT_KEY_PREFIX", f"hivematrix:{app.config['SERVICE_NAME']}")
    limiter = Limiter(
        key_func=rate_limit_key,
        default_limits=[app.config["RATELIMIT_DEFAULT"]],
        storage_uri=app.config["RATELIMIT_STORAGE_URI"],
    )
    limiter.init_app(app)

    @limiter.request_filter
    def unlimited() -> bool:
        # Assets come by the dozen with every page; they are no one's budget. Exempt views
        # are skipped here too, before Flask-Limiter resolves any limits (it costs).
        endpoint = request.endpoint or ""
        if endpoint == "static" or endpoint.endswith(".static"):
            return True
        return bool(getattr(app.view_functions.get(endpoint), "__rate_limit_exempt__", False))

    views: dict[str, Any] = app.view_functions
    for endpoint, view in list(views.items()):
        if getattr(view, "__rate_limit_exempt__", False):
            views[endpoint] = limiter.exempt(view)
        elif spec := getattr(view, "__rate_limit__", None):
            views[endpoint] = limiter.limit(spec)(view)
    return limiter
