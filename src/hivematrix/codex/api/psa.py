"""`/api/psa/*`: what the PSA side looks like to the ticket wall and the assistant — the
PSA's technicians and how to link to a ticket there (never its credentials)."""

from __future__ import annotations

from typing import Any

from apiflask import APIBlueprint
from flask import current_app
from sqlalchemy import select

from hivematrix.codex import serialise
from hivematrix.codex.api import query_args, refusals
from hivematrix.codex.connectors.factory import PSA_PROVIDERS
from hivematrix.codex.listing import boolean
from hivematrix.codex.models import PSAAgent
from hivematrix.common.auth import permission_required, service_allowed
from hivematrix.common.db import get_session

bp = APIBlueprint("codex_psa", __name__, tag="PSA")

STAFF = ("admin", "technician", "billing")
#: The wall names responders and links tickets; the assistant does the same in its answers.
READERS = ("beacon", "brainhair")
DISPLAY_NAMES = {"freshservice": "Freshservice", "connectwise": "ConnectWise Manage"}
TICKET_URL_SETTINGS = {"freshservice": "FRESHSERVICE_TICKET_URL",
                       "connectwise": "CONNECTWISE_TICKET_URL"}


@bp.get("/api/psa/agents")
@bp.doc(summary="The PSA's technicians",
        description="Active ones first, then by name. Filters: `source` (freshservice, "
                    "connectwise), `active`. Staff and the Beacon and Brainhair services.")
@permission_required(*STAFF)
@service_allowed(*READERS)
@refusals
def psa_agents() -> Any:
    args = query_args()
    query = select(PSAAgent).order_by(PSAAgent.active.desc(), PSAAgent.name, PSAAgent.id)
    if "source" in args:
        query = query.where(PSAAgent.source == args["source"])
    if "active" in args:
        query = query.where(PSAAgent.active.is_(boolean("active", args["active"])))
    return [serialise.agent(row) for row in get_session().scalars(query)]


@bp.get("/api/psa/config")
@bp.doc(summary="Which PSA is configured and how to link to its tickets",
        description="`provider` (null when none), its `display_name`, and "
                    "`ticket_url_template` as configured (FRESHSERVICE_TICKET_URL or "
                    "CONNECTWISE_TICKET_URL; null when unset). No credentials. Staff and "
                    "the Beacon and Brainhair services.")
@permission_required(*STAFF)
@service_allowed(*READERS)
def psa_config() -> Any:
    provider = str(current_app.config.get("CODEX_PSA_PROVIDER", "")).strip().lower()
    if provider not in PSA_PROVIDERS:
        return {"provider": None, "display_name": None, "ticket_url_template": None}
    template = str(current_app.config.get(TICKET_URL_SETTINGS[provider], "") or "").strip()
    return {"provider": provider, "display_name": DISPLAY_NAMES[provider],
            "ticket_url_template": template or None}
