"""Ticket changes made from HiveMatrix: pushed to the PSA first, then recorded here.

The PSA owns tickets, so a status change or note that the PSA did not accept must not show
in Codex either: :func:`push_update` calls the connector first and only on success changes
the local row (timezone-aware UTC). A note is stored as a private conversation under a
Codex id; the next detailed sync replaces it with the PSA's copy. The caller commits.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from hivematrix.codex.companies import CompanyError
from hivematrix.codex.connectors.base import PSAConnector
from hivematrix.codex.connectors.factory import NotConfigured
from hivematrix.codex.connectors.http import ConnectorError
from hivematrix.codex.feed import EXCLUDED
from hivematrix.codex.listing import BadQuery
from hivematrix.codex.models import Conversation, PSAAgent, Ticket
from hivematrix.codex.settings import BadSetting

#: Statuses of a finished ticket: moving into one sets the closing time.
FINISHED = frozenset({"resolved", "closed", "job_complete_bill", "billing_complete"})


class TicketError(CompanyError):
    """A refusal about a ticket (same shape as the company rules' refusals)."""


def get(session: Session, ticket_id: int) -> Ticket:
    ticket = session.get(Ticket, ticket_id)
    if ticket is None:
        raise TicketError(None, f"There is no ticket {ticket_id}.", 404)
    return ticket


def parse_moment(parameter: str, raw: str) -> datetime:
    """An ISO 8601 time from a query string; one without an offset is taken as UTC."""
    text = raw.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise BadQuery(parameter, "must be an ISO 8601 time such as "
                                  "2025-01-31T08:00:00Z") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def responder_names(session: Session, tickets: list[Ticket]) -> dict[tuple[str, str], str]:
    """(source, external id) → PSA agent name, for the responders of ``tickets``."""
    wanted = {ticket.responder_external_id for ticket in tickets if ticket.responder_external_id}
    if not wanted:
        return {}
    rows = session.execute(select(PSAAgent.source, PSAAgent.external_id, PSAAgent.name).where(
        PSAAgent.external_id.in_(wanted)))
    return {(source, external_id): name for source, external_id, name in rows}


def connector_for(config: Mapping[str, Any]) -> PSAConnector:
    from hivematrix.codex.connectors import factory

    try:
        return factory.psa(config)
    except NotConfigured as exc:
        raise TicketError(None, f"Tickets cannot be changed: {exc}.", 503) from None
    except BadSetting as exc:
        raise TicketError(None, f"The PSA connector is misconfigured: {exc}", 503) from None


def push_update(session: Session, ticket: Ticket, connector: PSAConnector, *,
                status: str | None, note: str | None, author: str, now: datetime) -> Ticket:
    if status is None and note is None:
        raise TicketError("status", "Send a status, a note, or both.")
    if ticket.source != connector.source:
        raise TicketError(None, f"Ticket {ticket.number or ticket.id} comes from "
                                f"{ticket.source}, but the configured PSA is "
                                f"{connector.source}.", 409)
    if status == ticket.status:
        status = None  # nothing to change; the note (if any) still goes
        if note is None:
            return ticket
    try:
        connector.update_ticket(ticket.external_id, status=status, note=note, author=author)
    except ConnectorError as exc:
        raise TicketError(None, f"The PSA refused or failed the change: {exc}", 502) from None
    except ValueError as exc:  # a status the provider's map has no id for
        raise TicketError("status", str(exc)) from None
    if status is not None:
        ticket.status = status
        if status in FINISHED:
            ticket.closed_at = ticket.closed_at or now
        elif status not in EXCLUDED:
            ticket.closed_at = None  # reopened
    if note is not None:
        ticket.conversations.append(Conversation(
            external_id=f"codex-{uuid.uuid4()}", private=True, incoming=False, author=author,
            body_text=note, body_html="", created_at=now))
    ticket.updated_at = now
    session.flush()
    return ticket
