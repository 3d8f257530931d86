"""`/api/companies/bulk` (for Ledger) and `/api/tickets/active` (for Beacon)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson
from apiflask import APIBlueprint
from flask import Response, current_app, request, stream_with_context
from sqlalchemy.orm import Session
from werkzeug.exceptions import Forbidden

from hivematrix.codex import access, bulk
from hivematrix.codex.api import query_args, refusals
from hivematrix.codex.listing import BadQuery, boolean, integer
from hivematrix.common.auth import service_allowed, token_required
from hivematrix.common.db import get_session, utcnow

bp = APIBlueprint("codex_bulk", __name__, tag="Bulk reads")


def _json(data: Any) -> Response:
    return Response(orjson.dumps(data), mimetype="application/json")


@bp.get("/api/companies/bulk")
@bp.doc(summary="Everything billing needs, for every company, in one call",
        description="Each item has `company`, `assets` (not retired, with `billing_type` and "
                    "integer `backup_bytes`), `contacts` (with `active`), `locations`, and "
                    "with `include_tickets=true` the `tickets` (with `time_entries`) created "
                    "in `year`; `account_number` (repeatable or comma-separated) narrows "
                    "it to those companies. Archived companies are left out. `view=billing` keeps "
                    "only what a bill needs (company billing fields; asset id, hostname, "
                    "category, billing type, backup bytes; one contact per person with id, "
                    "name, email, active; tickets without status, priority or type; no "
                    "locations). `format=ndjson` "
                    "sends one company per line instead of one array. The answer is streamed "
                    "as it is built. Staff and the Ledger, Brainhair and Helm services.")
@token_required
@service_allowed("ledger", "brainhair", "helm")
@refusals
def companies_bulk() -> Any:
    args = query_args()
    include = boolean("include_tickets", args.get("include_tickets", "false"))
    year = integer("year", args["year"], minimum=1970, maximum=9999) if "year" in args else None
    asked = [part.strip() for value in request.args.getlist("account_number")
             for part in value.split(",") if part.strip()]
    account = access.client_account()
    numbers: list[str] | None = asked or None
    if account is not None:  # a client user: their own company, whatever was asked
        numbers = [account] if not asked or account in asked else []
    kind = args.get("format", "json")
    if kind not in ("json", "ndjson"):
        raise BadQuery("format", "must be json or ndjson")
    view = args.get("view", "full")
    if view not in bulk.VIEWS:
        raise BadQuery("view", f"must be one of {', '.join(bulk.VIEWS)}")
    session = get_session()
    lines = bulk.companies_bulk_lines(session, include_tickets=include, year=year,
                                      account_numbers=numbers,
                                      workers=int(current_app.config["CODEX_BULK_WORKERS"]),
                                      view=view)
    # Sent as it is built: the receiver reads the first companies while later ones build.
    if kind == "ndjson":
        return Response(stream_with_context(_released(session, (line + b"\n" for line in lines))),
                        mimetype="application/x-ndjson")
    return Response(stream_with_context(_released(session, _array(lines))),
                    mimetype="application/json")


def _array(lines: Iterator[bytes]) -> Iterator[bytes]:
    yield b"["
    for index, line in enumerate(lines):
        yield b"," + line if index else line
    yield b"]"


def _released(session: Session, chunks: Iterator[bytes]) -> Iterator[bytes]:
    """``chunks``, then ``session`` is closed. The request's own teardown has run by then
    (the body is sent after the view returns), so it would not close this session."""
    try:
        yield from chunks
    finally:
        session.close()


@bp.get("/api/tickets/active")
@bp.doc(summary="The ticket wall's feed",
        description="Active tickets in four sections (`section1`..`section4`) with SLA text "
                    "and class, `total_active`, `last_updated` and `last_sync_time`. Filters: "
                    "`group_id` (repeatable or comma-separated) and `responder_id`.")
@token_required
@service_allowed("beacon", "brainhair")
@refusals
def active_tickets() -> Any:
    if access.client_account() is not None:
        raise Forbidden("The ticket wall is for staff.")
    groups = [part.strip() for value in request.args.getlist("group_id")
              for part in value.split(",") if part.strip()]
    return _json(bulk.active_feed(get_session(), utcnow(), group_ids=groups,
                                  responder_id=request.args.get("responder_id") or None))
