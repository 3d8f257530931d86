"""One JSON object per log line, carrying the service name, correlation id and user.

The correlation id comes from the incoming ``X-Correlation-ID`` header (or is generated),
is echoed on the response and is passed on by :func:`hivematrix.common.service_client.call_service`.

Every JSON record also carries ``pid`` (the writing process) and ``seq`` (a counter per
process). Together with the service name and the timestamp they identify a record exactly,
so Helm stores a record once even when it arrives both pushed over HTTP
(:mod:`hivematrix.common.logship`) and read back from the service's log file.
"""

from __future__ import annotations

import itertools
import logging
import os
import re
import sys
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

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
        # Outside a request (Nexus's fast lane) the caller may pass both as ``extra``.
        record.correlation_id = getattr(record, "correlation_id", None)
        record.user = getattr(record, "user", None)
        if has_request_context():
            record.correlation_id = g.get("correlation_id")
            principal = g.get("principal")
            record.user = principal.subject if principal is not None else None
        return True


#: The record attribute holding its formatted payload, so every handler sees the same dict.
_PAYLOAD_ATTRIBUTE = "_hivematrix_payload"
#: Numbers this process's records; ``next`` on a count is atomic under the GIL.
_sequence = itertools.count(1)


class KitJsonFormatter(JsonFormatter):
    """python-json-logger's formatter, plus ``pid`` and ``seq``, with the payload kept.

    :meth:`payload` builds a record's dict once and remembers it on the record, so the stream
    handler and the log shipper put out the very same fields (and the same ``seq``).
    """

    def __init__(self) -> None:
        super().__init__("%(levelname)s %(name)s %(message)s",
                         rename_fields={"levelname": "level", "name": "logger"}, timestamp=True)

    def payload(self, record: logging.LogRecord) -> dict[str, Any]:
        """The record as a dict: what one JSON log line holds. Do not modify it."""
        cached: dict[str, Any] | None = record.__dict__.get(_PAYLOAD_ATTRIBUTE)
        if cached is not None:
            return cached
        message_dict: dict[str, Any] = {}
        if isinstance(record.msg, dict):
            message_dict = record.msg.copy()
            record.message = ""
        else:
            record.message = record.getMessage()
        if record.exc_info and not message_dict.get("exc_info"):
            message_dict["exc_info"] = self.formatException(record.exc_info)
        if not message_dict.get("exc_info") and record.exc_text:
            message_dict["exc_info"] = record.exc_text
        if record.stack_info and not message_dict.get("stack_info"):
            message_dict["stack_info"] = self.formatStack(record.stack_info)
        data: dict[str, Any] = {}
        self.add_fields(data, record, message_dict)
        data["timestamp"] = datetime.fromtimestamp(record.created, tz=UTC).isoformat()
        data["pid"] = os.getpid()
        data["seq"] = next(_sequence)
        data = self.process_log_record(data)
        setattr(record, _PAYLOAD_ATTRIBUTE, data)
        return data

    def format(self, record: logging.LogRecord) -> str:
        return self.serialize_log_record(self.payload(record))

    def serialize(self, data: Any) -> str:
        """JSON text of ``data``, encoding odd values the way log lines encode them."""
        return self.jsonify_log_record(data)


#: The one formatter whose payloads the log file and the shipper share.
JSON_FORMATTER = KitJsonFormatter()


def record_payload(record: logging.LogRecord) -> dict[str, Any]:
    """The JSON fields of ``record`` exactly as its log line carries them."""
    return JSON_FORMATTER.payload(record)


def configure_logging(service: str, level: str = "INFO", json_lines: bool = True) -> None:
    """Send the root logger to stderr, one JSON object per line (or plain text for humans).

    Idempotent: a second call replaces the handler it installed the first time.
    """
    handler = logging.StreamHandler(sys.stderr)
    handler.set_name("hivematrix")
    handler.addFilter(RequestContextFilter(service))
    if json_lines:
        handler.setFormatter(JSON_FORMATTER)
    else:
        handler.setFormatter(logging.Formatter(
            "%(asctime)s %(levelname)s [%(service)s %(correlation_id)s] %(name)s: %(message)s"))
    root = logging.getLogger()
    for existing in list(root.handlers):
        if existing.get_name() == "hivematrix":
            root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level.upper())


F = TypeVar("F", bound=Callable[..., Any])


def quiet(view: F) -> F:
    """Log a view's requests only when they fail (status 400 or more).

    For endpoints called so often that their request lines would drown everything else
    (log ingestion, a live view's polling).
    """
    view.__quiet_request_log__ = True  # type: ignore[attr-defined]
    return view


def current_correlation_id() -> str | None:
    """The id of the request being handled, or ``None`` outside a request."""
    return g.get("correlation_id") if has_request_context() else None


def init_app(app: Flask) -> None:
    """Read or mint a correlation id per request, echo it, and log one line per request."""

    @app.before_request
    def assign_correlation_id() -> None:
        incoming = request.headers.get(CORRELATION_HEADER, "")
        g.correlation_id = incoming if valid_correlation_id(incoming) else uuid.uuid4().hex
        g.request_started = time.perf_counter()

    @app.after_request
    def echo_correlation_id(response: Response) -> Response:
        correlation_id = g.get("correlation_id")
        if correlation_id:
            response.headers[CORRELATION_HEADER] = correlation_id
        started = g.get("request_started")
        view = app.view_functions.get(request.endpoint or "")
        hushed = request.endpoint in _QUIET_ENDPOINTS or (
            getattr(view, "__quiet_request_log__", False) and response.status_code < 400)
        if started is not None and not hushed:
            log_request(request.method, request.path, response.status_code,
                        time.perf_counter() - started)
        return response


def valid_correlation_id(value: str) -> bool:
    """Whether an incoming id is safe to echo into headers and logs (else one is minted)."""
    return bool(_VALID_ID.match(value))


def log_request(method: str, path: str, status: int, seconds: float, *,
                correlation_id: str | None = None, user: str | None = None) -> None:
    """The one line per request; inside a request its id and user come from the context."""
    extra: dict[str, Any] = {"method": method, "path": path, "status": status,
                             "duration_ms": round(seconds * 1000, 2)}
    if correlation_id is not None:
        extra.update(correlation_id=correlation_id, user=user)
    log.info("request", extra=extra)
