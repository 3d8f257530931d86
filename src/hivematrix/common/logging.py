"""One JSON object per log line, carrying the service name, correlation id and user.

The correlation id comes from the incoming ``X-Correlation-ID`` header (or is generated),
is echoed on the response and is passed on by :func:`hivematrix.common.service_client.call_service`.
"""

from __future__ import annotations

import logging
import re
import sys
import time
import uuid

from flask import Flask, Response, g, has_request_context, request
from pythonjsonlogger.json import JsonFormatter

CORRELATION_HEADER = "X-Correlation-ID"
# Accept only ids that are safe to echo into headers and logs.
_VALID_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")

log = logging.getLogger("hivematrix.request")
# Probes and scrapes arrive every few seconds; logging them would drown real requests.
_QUIET_ENDPOINTS = ("hivematrix.health", "hivematrix.metrics_view")


class RequestContextFilter(logging.Filter):
    """Adds ``service``, ``correlation_id`` and ``user`` to every record."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def filter(self, record: logging.LogRecord) -> bool:
        record.service = self.service
        record.correlation_id = None
        record.user = None
        if has_request_context():
            record.correlation_id = g.get("correlation_id")
            principal = g.get("principal")
            record.user = principal.subject if principal is not None else None
        return True


def configure_logging(service: str, level: str = "INFO", json_lines: bool = True) -> None:
    """Send the root logger to stderr, one JSON object per line (or plain text for humans).

    Idempotent: a second call replaces the handler it installed the first time.
    """
    handler = logging.StreamHandler(sys.stderr)
    handler.set_name("hivematrix")
    handler.addFilter(RequestContextFilter(service))
    if json_lines:
        handler.setFormatter(JsonFormatter(
            "%(levelname)s %(name)s %(message)s",
            rename_fields={"levelname": "level", "name": "logger"},
            timestamp=True,
        ))
    else:
        handler.setFormatter(logging.Formatter(
            "%(asctime)s %(levelname)s [%(service)s %(correlation_id)s] %(name)s: %(message)s"))
    root = logging.getLogger()
    for existing in list(root.handlers):
        if existing.get_name() == "hivematrix":
            root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level.upper())


def current_correlation_id() -> str | None:
    """The id of the request being handled, or ``None`` outside a request."""
    return g.get("correlation_id") if has_request_context() else None


def init_app(app: Flask) -> None:
    """Read or mint a correlation id per request, echo it, and log one line per request."""

    @app.before_request
    def assign_correlation_id() -> None:
        incoming = request.headers.get(CORRELATION_HEADER, "")
        g.correlation_id = incoming if _VALID_ID.match(incoming) else uuid.uuid4().hex
        g.request_started = time.perf_counter()

    @app.after_request
    def echo_correlation_id(response: Response) -> Response:
        correlation_id = g.get("correlation_id")
        if correlation_id:
            response.headers[CORRELATION_HEADER] = correlation_id
        started = g.get("request_started")
        if started is not None and request.endpoint not in _QUIET_ENDPOINTS:
            log.info("request", extra={
                "method": request.method,
                "path": request.path,
                "status": response.status_code,
                "duration_ms": round((time.perf_counter() - started) * 1000, 2),
            })
        return response
