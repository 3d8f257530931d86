"""`/api/tickets`: list and read tickets, and change one's status or add a note through
the PSA."""

from __future__ import annotations

from typing import Any

from apiflask import APIBlueprint
from flask import current_app, g
from sqlalchemy import Select, select
from sqlalchemy.orm import selectinload

from hivematrix.codex import access, serialise, tickets
from hivematrix.codex.api import query_args, refusals
from hivematrix.codex.api.visibility import own_company_only
from hivematrix.codex.listing import Listing, page
from hivematrix.codex.models import Ticket
from hivematrix.codex.schemas import TicketPatch
from hivematrix.common.auth import permission_required, service_allowed, token_required
from hivematrix.common.db import get_session, utcnow

bp = APIBlueprint("codex_tickets", __name__, tag="Tickets")

#: The ticket wall, billing (hours) and the assistant read tickets.
READERS = ("beacon", "ledger", "brainhair")


def _values(raw: str) -> list[str]:
    return [part.strip() for part in raw.split(",") if part.strip()]


def _equals(column: Any) -> Any:
    return lambda query, raw: query.where(column == raw)


TICKET_LIST = Listing(
    sorts={"updated_at": Ticket.updated_at, "created_at": Ticket.created_at,
           "due_by": Ticket.due_by, "fr_due_by": Ticket.fr_due_by, "id": Ticket.id},
    filters={
        "account_number": lambda query, raw: query.where(
            Ticket.company.has(account_number=raw)),
        "status": lambda query, raw: query.where(Ticket.status.in_(_values(raw))),
        "priority": lambda query, raw: query.where(Ticket.priority.in_(_values(raw))),
        "responder_id": _equals(Ticket.responder_external_id),
        "group_id": _equals(Ticket.group_id),
        "source": _equals(Ticket.source),
        "external_id": _equals(Ticket.external_id),
        "ticket_type": _equals(Ticket.ticket_type),
        "updated_since": lambda query, raw: query.where(
            Ticket.updated_at >= tickets.parse_moment("updated_since", raw)),
    },
    search=(Ticket.subject, Ticket.number, Ticket.requester_name, Ticket.requester_email))


def _loaded() -> Select[Any]:
    return select(Ticket).options(selectinload(Ticket.company))


def _detail(ticket: Ticket) -> dict[str, Any]:
    data = serialise.ticket(ticket, details=True)
    names = tickets.responder_names(get_session(), [ticket])
    data["responder_name"] = names.get((ticket.source, ticket.responder_external_id or ""))
    data["company_name"] = ticket.company.name if ticket.company else None
    if access.client_account() is not None:
        # Private notes and time-entry notes are the MSP's internal working.
        data["conversations"] = [item for item in data["conversations"] if not item["private"]]
        data["time_entries"] = [{**item, "note": ""} for item in data["time_entries"]]
    return data


@bp.get("/api/tickets")
@bp.doc(summary="List tickets",
        description="Filters: `q` (subject, number, requester), `account_number`, `status` "
                    "and `priority` (comma-separated lists), `responder_id`, `group_id`, "
                    "`source`, `external_id`, `ticket_type`, `updated_since` (ISO 8601; UTC "
                    "without an offset); `sort` (updated_at, created_at, due_by, fr_due_by, "
                    "id; prefix - to reverse; newest update first by default), `limit` "
                    "(≤ 500), `offset`. Client users see their own company's tickets. Staff "
                    "and the Beacon, Ledger and Brainhair services.")
@token_required
@service_allowed(*READERS)
@refusals
def list_tickets() -> Any:
    args = {"sort": "-updated_at", **query_args()}
    query = access.scope(_loaded(), Ticket.company_id)
    return page(get_session(), TICKET_LIST, query, args, serialise.ticket, Ticket.id.desc())


@bp.get("/api/tickets/<int:ticket_id>")
@bp.doc(summary="One ticket, with time entries and conversations",
        description="By Codex's id (`id` in the list; `external_id` is the PSA's). Client "
                    "users do not see private notes.")
@token_required
@service_allowed(*READERS)
@refusals
def get_ticket(ticket_id: int) -> Any:
    ticket = tickets.get(get_session(), ticket_id)
    own_company_only(ticket.company, f"There is no ticket {ticket_id}.")
    return _detail(ticket)


@bp.patch("/api/tickets/<int:ticket_id>")
@bp.doc(summary="Change a ticket's status and/or add a private note",
        description="Admins and technicians. The change goes to the PSA first; only when "
                    "the PSA accepted it is Codex's copy updated. No PSA configured: 503; "
                    "the PSA failing or refusing: 502; a status the PSA's map cannot "
                    "express: 422 naming `status`. Nothing changes locally on any error.")
@permission_required(*access.WRITERS)
@bp.input(TicketPatch, location="json", arg_name="data")
@refusals
def update_ticket(ticket_id: int, data: dict[str, Any]) -> Any:
    session = get_session()
    ticket = tickets.get(session, ticket_id)
    author = str(g.user.get("preferred_username") or "")
    connector = tickets.connector_for(current_app.config)
    try:
        tickets.push_update(session, ticket, connector, status=data.get("status"),
                            note=data.get("note"), author=author, now=utcnow())
    finally:
        close = getattr(connector, "close", None)
        if callable(close):
            close()
    session.commit()
    current_app.logger.info(f"ticket {ticket.source}:{ticket.external_id} updated through "
                            f"the PSA by {author} ({', '.join(sorted(data))})")
    return _detail(ticket)
