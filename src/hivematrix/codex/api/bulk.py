"""`/api/companies/bulk` (for Ledger) and `/api/tickets/active` (for Beacon)."""

from __future__ import annotations

from typing import Any

import orjson
from apiflask import APIBlueprint
from flask import Response, request
from werkzeug.exceptions import Forbidden

from hivematrix.codex import access, bulk
from hivematrix.codex.api import query_args, refusals
from hivematrix.codex.listing import boolean, integer
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
                    "it to those companies. Archived companies are left out. Staff and the Ledger, "
                    "Brainhair and Helm services.")
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
    return Response(bulk.companies_bulk_json(get_session(), include_tickets=include, year=year,
                                             account_numbers=numbers),
                    mimetype="application/json")


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
