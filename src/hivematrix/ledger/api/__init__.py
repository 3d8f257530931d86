"""Ledger's JSON API, one module per area; who may call what, and shared helpers, here.

Reads are for billing, admin and technician users; writes for billing and admin users only;
client users are refused. Services are admitted route by route.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from datetime import UTC, date, datetime
from typing import Any

import httpx
from apiflask import APIBlueprint
from flask import g, request

from hivematrix.common.errors import refusals_for
from hivematrix.common.service_client import call_service, stream_service
from hivematrix.ledger.billing import period_of
from hivematrix.ledger.errors import LedgerError
from hivematrix.ledger.inputs import Period

READERS = ("admin", "technician", "billing")
WRITERS = ("admin", "billing")
#: Services that read bills (the assistant answers billing questions, Helm checks health).
READER_SERVICES = ("brainhair", "helm")


#: Ledger's refusals as problem documents naming the field.
refusals = refusals_for(LedgerError)


def today() -> date:
    return datetime.now(UTC).date()


def query_int(name: str, minimum: int, maximum: int) -> int | None:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return None
    try:
        value = int(raw)
    except ValueError:
        raise LedgerError(f"{name}: {raw!r} is not an integer", field=name, status=400) from None
    if not minimum <= value <= maximum:
        raise LedgerError(f"{name}: must be between {minimum} and {maximum}", field=name,
                          status=400)
    return value


def query_period() -> Period:
    return period_of(query_int("year", 1970, 9999), query_int("month", 1, 12), today())


def fetch_codex(path: str) -> httpx.Response:
    return call_service("codex", path)


def stream_codex(path: str) -> AbstractContextManager[httpx.Response]:
    return stream_service("codex", path)


def actor() -> str:
    """Who is acting, for the records: the user's name or the calling service."""
    if getattr(g, "is_service_call", False):
        return f"service:{g.service}"
    user: dict[str, Any] = getattr(g, "user", None) or {}
    return str(user.get("preferred_username") or user.get("sub") or "unknown")


def json_body() -> Any:
    return request.get_json(silent=True)


def blueprints() -> list[APIBlueprint]:
    """The JSON API's blueprints, then the web pages'."""
    from hivematrix.ledger.api.archive import bp as archive
    from hivematrix.ledger.api.billing import bp as billing
    from hivematrix.ledger.api.overrides import bp as overrides
    from hivematrix.ledger.api.plans import bp as plans
    from hivematrix.ledger.pages import bp as pages

    return [billing, plans, overrides, archive, pages]
