"""RFC 7807 problem responses for every HTTP error, with an escaped HTML page for browsers."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from functools import wraps
from typing import Any, ParamSpec, TypeVar

from apiflask import APIFlask, HTTPError
from flask import Response, current_app, g, json, render_template, request
from werkzeug.exceptions import HTTPException
from werkzeug.http import HTTP_STATUS_CODES

PROBLEM_JSON = "application/problem+json"
#: The only detail a 5xx answer gives.
SERVER_ERROR_DETAIL = "The server could not complete the request."

#: The problem document in OpenAPI form, so /docs describes the errors actually returned.
PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["type", "title", "status"],
    "properties": {
        "type": {"type": "string", "example": "about:blank#not-found"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
        "correlation_id": {"type": "string"},
        "errors": {"type": "object", "description": "Invalid fields by location"},
        "retry_after": {"type": "integer", "description": "Seconds, on 429"},
    },
}


def problem_slug(status: int) -> str:
    """``404`` -> ``not-found``: the fragment used in a problem's ``type``."""
    phrase = HTTP_STATUS_CODES.get(status, "error")
    return phrase.lower().replace(" ", "-").replace("'", "")


def wants_html() -> bool:
    """True when the client asked for a page rather than JSON (a browser navigating)."""
    best = request.accept_mimetypes.best_match(["application/json", PROBLEM_JSON, "text/html"])
    return best == "text/html" and request.accept_mimetypes["text/html"] > 0


def problem(
    status: int,
    detail: str | None = None,
    *,
    title: str | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> Response:
    """Build a problem response; browsers get the same content as an escaped HTML page."""
    title = title or HTTP_STATUS_CODES.get(status, "Error")
    body: dict[str, Any] = {
        "type": f"about:blank#{problem_slug(status)}",
        "title": title,
        "status": status,
        "detail": detail or title,
        "instance": request.path,
        **extra,
    }
    correlation_id = g.get("correlation_id")
    if correlation_id:
        body["correlation_id"] = correlation_id
    if wants_html():
        html = render_template("hivematrix/error.html", problem=body)
        response = Response(html, status=status, mimetype="text/html")
    else:
        response = Response(json.dumps(body), status=status, mimetype=PROBLEM_JSON)
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


P = ParamSpec("P")
R = TypeVar("R")
#: Titles of the problems a business module's refusal becomes; any other status: "Refused".
REFUSAL_TITLES = {400: "Bad query parameter", 403: "Forbidden", 404: "Not found",
                  409: "Conflict", 502: "Bad gateway"}


def refusals_for(error: type[Exception], *, rollback: bool = True
                 ) -> Callable[[Callable[P, R]], Callable[P, R | Response]]:
    """A view decorator turning ``error`` (a business module's refusal, with ``status`` and
    the input ``field`` at fault) into a problem document naming that field — in the query
    for a 400, in the body otherwise. The request's database session is rolled back first,
    so a refused request leaves nothing half-written."""

    def decorate(view: Callable[P, R]) -> Callable[P, R | Response]:
        @wraps(view)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R | Response:
            try:
                return view(*args, **kwargs)
            except error as exc:
                if rollback:
                    from hivematrix.common.db import get_session

                    get_session().rollback()
                status = int(getattr(exc, "status", 422))
                field = getattr(exc, "field", None)
                extra: dict[str, Any] = {}
                if field:
                    extra["errors"] = {"query" if status == 400 else "json": {field: [str(exc)]}}
                return problem(status, str(exc), title=REFUSAL_TITLES.get(status, "Refused"),
                               **extra)

        return wrapper

    return decorate


def _validation_detail(errors: dict[str, Any]) -> str:
    """Name every invalid field, e.g. ``json.title: Missing data for required field.``."""
    parts = []
    for location, fields in errors.items():
        if isinstance(fields, dict):
            for field, messages in fields.items():
                text = "; ".join(map(str, messages)) if isinstance(messages, list) else messages
                parts.append(f"{location}.{field}: {text}")
        else:
            parts.append(f"{location}: {fields}")
    return " ".join(parts) or "The request is invalid."


def _from_apiflask(error: HTTPError) -> Response:
    """Turn APIFlask's errors (validation, ``abort``, wrapped werkzeug errors) into problems."""
    headers = {k: str(v) for k, v in dict(error.headers or {}).items() if k != "Content-Type"}
    if error.status_code >= 500:
        # ``abort(503, str(exc))`` must not leak internals any more than a raised exception.
        return problem(error.status_code, SERVER_ERROR_DETAIL, headers=headers)
    extra = dict(error.extra_data or {})
    if isinstance(error.detail, dict) and error.detail:
        # A validation error: detail maps location -> field -> messages.
        extra["errors"] = error.detail
        detail = _validation_detail(error.detail)
        return problem(error.status_code, detail, headers=headers, **extra)
    return problem(error.status_code, error.message, headers=headers, **extra)


def _retry_after_seconds() -> int:
    """Seconds until the breached rate limit resets (at least 1)."""
    limiter = current_app.extensions.get("limiter")
    current = getattr(limiter, "current_limit", None) if limiter else None
    if current is None:
        return 60
    return max(1, math.ceil(float(current.reset_at) - time.time()))


def _from_http_exception(error: HTTPException) -> Response:
    status = error.code or 500
    headers = {k: v for k, v in error.get_headers() if k.lower() != "content-type"}
    if status == 429:
        retry_after = _retry_after_seconds()
        headers["Retry-After"] = str(retry_after)
        return problem(429, "Too many requests; retry later.", headers=headers,
                       retry_after=retry_after)
    if status >= 500:
        # Never show internals; the correlation id ties the page to the logged traceback.
        return problem(status, SERVER_ERROR_DETAIL, headers=headers)
    return problem(status, error.description, headers=headers)


def init_app(app: APIFlask) -> None:
    """Register problem handlers for HTTP errors, APIFlask errors and unexpected exceptions."""
    app.config["HTTP_ERROR_SCHEMA"] = PROBLEM_SCHEMA
    app.config["VALIDATION_ERROR_SCHEMA"] = PROBLEM_SCHEMA

    @app.error_processor
    def handle_apiflask_error(error: HTTPError) -> Response:
        return _from_apiflask(error)

    # Flask has already logged an unhandled exception's traceback (``app.log_exception``) by
    # the time its 500 arrives here; logging it again would double every error in the logs.
    @app.errorhandler(HTTPException)
    def handle_http_exception(error: HTTPException) -> Response:
        return _from_http_exception(error)
