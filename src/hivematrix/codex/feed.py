"""The ticket wall's feed: active tickets sorted into four sections with SLA texts.

A pure function of the tickets and the clock, so every threshold can be tested at its edge.
The rules (first match wins) and thresholds follow the wall MSP staff already know:

1. customer replied → section 2 ("Customer Replied (3h ago)", warning);
2. pending an external CRM → section 4 (no SLA);
3. no update for longer than the priority allows (urgent 30 min, high 2 days, medium 3,
   low 4, anything else 3) → section 3 ("Update Overdue", critical);
4. open / update needed / pending → section 1, with the first-response SLA (or "FR Met");
5. waiting on the customer → section 4 (responded); 6. on hold → section 4 (no SLA);
7. anything else active → section 4 (in progress).

Closed, resolved, billed, spam, trash and deleted tickets never appear. Within a section the
most urgent priority comes first, then the longest-untouched ticket.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

EXCLUDED = frozenset({"closed", "resolved", "job_complete_bill", "billing_complete", "spam",
                      "trash", "deleted"})
FIRST_RESPONSE_STATUSES = frozenset({"open", "update_needed", "pending"})
UPDATE_LIMITS = {"urgent": timedelta(minutes=30), "high": timedelta(days=2),
                 "medium": timedelta(days=3), "low": timedelta(days=4)}
DEFAULT_UPDATE_LIMIT = timedelta(days=3)
STATUS_TEXT = {"open": "Open", "pending": "Pending", "update_needed": "Update Needed",
               "waiting_customer": "Waiting on Customer", "waiting_third_party":
               "Waiting on Third Party", "on_hold": "On Hold", "customer_replied":
               "Customer Replied", "scheduled": "Scheduled", "under_investigation":
               "Under Investigation", "pending_hubspot": "Pending Hubspot"}
PRIORITY_TEXT = {"low": "Low", "medium": "Medium", "high": "High", "urgent": "Urgent"}
PRIORITY_RANK = {"low": 1, "medium": 2, "high": 3, "urgent": 4}


def status_text(status: str) -> str:
    return STATUS_TEXT.get(status, status.replace("_", " ").title())


def ago(moment: datetime | None, now: datetime) -> str:
    """"3d ago", "5h ago", "12m ago" or "Just now" ("Never" without a time)."""
    if moment is None:
        return "Never"
    seconds = (now - moment).total_seconds()
    if seconds >= 86400:
        return f"{int(seconds // 86400)}d ago"
    if seconds >= 3600:
        return f"{int(seconds // 3600)}h ago"
    if seconds >= 60:
        return f"{int(seconds // 60)}m ago"
    return "Just now"


def days_old(created: datetime | None, now: datetime) -> str:
    if created is None:
        return ""
    days = (now - created).days
    return "Today" if days <= 0 else "1 day old" if days == 1 else f"{days} days old"


def duration(seconds: float) -> str:
    """"2.5 days", "3.0 hours", "45 min" or "30 sec" (of an absolute span)."""
    seconds = abs(seconds)
    if seconds >= 2 * 86400:
        return f"{seconds / 86400:.1f} days"
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} hours"
    if seconds >= 60:
        return f"{int(seconds // 60)} min"
    return f"{int(seconds)} sec"


@dataclass(frozen=True)
class Sla:
    section: int
    text: str
    css_class: str


def first_response_sla(ticket: Mapping[str, Any], now: datetime) -> tuple[str, str]:
    """Text and class of the first-response (or, for service requests, resolution) target."""
    service_request = ticket.get("ticket_type") == "Service Request"
    prefix = "Due" if service_request else "FR"
    target: datetime | None = ticket.get("due_by") if service_request else ticket.get("fr_due_by")
    if target is None:
        return ("No Due Date" if service_request else "No FR Due Date"), "sla-none"
    remaining = (target - now).total_seconds()
    if remaining < 0:
        return f"{prefix} Overdue by {duration(remaining)}", "sla-overdue"
    hours = remaining / 3600
    css = "sla-critical" if hours < 4 else "sla-warning" if hours < 12 else "sla-normal"
    return f"{duration(remaining)} for {prefix}", css


def classify(ticket: Mapping[str, Any], now: datetime) -> Sla | None:
    """The section and SLA of one ticket (None: not active, not on the wall)."""
    status = ticket["status"]
    if status in EXCLUDED:
        return None
    updated: datetime | None = ticket.get("updated_at")
    since = ago(updated, now)
    if status == "customer_replied":
        return Sla(2, f"Customer Replied ({since})", "sla-warning")
    if status == "pending_hubspot":
        return Sla(4, f"Pending Hubspot ({since})", "sla-none")
    priority = ticket.get("priority")
    if priority and updated is not None and (
            now - updated > UPDATE_LIMITS.get(priority, DEFAULT_UPDATE_LIMIT)):
        return Sla(3, f"Update Overdue ({status_text(status)}, {since})", "sla-critical")
    if status in FIRST_RESPONSE_STATUSES:
        if ticket.get("first_responded_at") is not None:
            return Sla(1, f"{status_text(status)} (FR Met)", "sla-responded")
        text, css = first_response_sla(ticket, now)
        return Sla(1, text, css)
    if status == "waiting_customer":
        responded = ago(ticket.get("agent_responded_at"), now)
        return Sla(4, f"Waiting on Customer (Agent: {responded})", "sla-responded")
    if status == "on_hold":
        return Sla(4, f"On Hold ({since})", "sla-none")
    return Sla(4, f"{status_text(status)} ({since})", "sla-in-progress")


def feed_item(ticket: Mapping[str, Any], sla: Sla, now: datetime) -> dict[str, Any]:
    """One ticket as the wall shows it (the raw fields plus the friendly texts).

    Times stay datetime objects: the endpoint's JSON encoder (orjson) writes them as ISO 8601
    far faster than calling ``isoformat`` on 40,000 values here."""
    priority = ticket.get("priority") or ""
    return {
        "id": ticket["external_id"], "source": ticket.get("source"),
        "ticket_number": ticket.get("number") or ticket["external_id"],
        "subject": ticket.get("subject", ""),
        "description_text": ticket.get("description_text", ""),
        "status": ticket["status"], "status_text": status_text(ticket["status"]),
        "status_raw": ticket.get("status_raw", ""),
        "priority": priority, "priority_raw": ticket.get("priority_raw"),
        "priority_text": PRIORITY_TEXT.get(priority, priority.title()),
        "ticket_type": ticket.get("ticket_type", "Incident"),
        "company_account_number": ticket.get("account_number"),
        "company_name": ticket.get("company_name"),
        "requester_id": ticket.get("requester_external_id"),
        "requester_name": ticket.get("requester_name") or "Unknown requester",
        "requester_email": ticket.get("requester_email", ""),
        "responder_id": ticket.get("responder_external_id"),
        "agent_name": ticket.get("agent_name") or (
            "Unassigned" if not ticket.get("responder_external_id")
            else f"Agent {ticket['responder_external_id']}"),
        "group_id": ticket.get("group_id"),
        "created_at": ticket.get("created_at"),
        "updated_at": ticket.get("updated_at"),
        "fr_due_by": ticket.get("fr_due_by"), "due_by": ticket.get("due_by"),
        "first_responded_at": ticket.get("first_responded_at"),
        "agent_responded_at": ticket.get("agent_responded_at"),
        "updated_friendly": ago(ticket.get("updated_at"), now),
        "created_days_old": days_old(ticket.get("created_at"), now),
        "agent_responded_friendly": ago(ticket.get("agent_responded_at"), now),
        "sla_text": sla.text, "sla_class": sla.css_class,
        "total_hours_spent": str(ticket.get("total_hours", "0")),
    }


_NEVER = datetime.max.replace(tzinfo=UTC)


def _sort_key(item: dict[str, Any]) -> tuple[int, datetime]:
    # Most urgent first (by the normalised priority: raw ids are per vendor, and ConnectWise's
    # are per tenant); then the longest without an update (unknown update times last).
    return (-PRIORITY_RANK.get(item["priority"], 0), item["updated_at"] or _NEVER)


def build(tickets: Iterable[Mapping[str, Any]], now: datetime,
          last_sync_time: datetime | None) -> dict[str, Any]:
    """The whole feed: ``section1`` … ``section4``, ``total_active`` and the two times."""
    sections: dict[int, list[dict[str, Any]]] = {1: [], 2: [], 3: [], 4: []}
    for ticket in tickets:
        sla = classify(ticket, now)
        if sla is not None:
            sections[sla.section].append(feed_item(ticket, sla, now))
    for items in sections.values():
        items.sort(key=_sort_key)
    return {**{f"section{number}": items for number, items in sections.items()},
            "total_active": sum(len(items) for items in sections.values()),
            "last_updated": now, "last_sync_time": last_sync_time}
