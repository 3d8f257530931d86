"""What the wall shows: Codex's feed split by view, narrowed to one agent, shaped into rows.

Codex decides each ticket's section and SLA text (``codex/feed.py``); Beacon decides which
view a ticket belongs to, filters by agent and turns feed items into table rows with display
texts, indicator classes and sort keys. Plain functions of their inputs and the clock.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote, urlsplit

from hivematrix.beacon.settings import View

SECTIONS = (1, 2, 3, 4)
#: The agent filter value for tickets nobody is assigned to.
UNASSIGNED = "unassigned"
SUBJECT_LENGTH = 60
DESCRIPTION_LENGTH = 5000

#: Codex's SLA classes → the design system's status colours (red, orange, green, muted).
SLA_TONES = {"sla-overdue": "status-text--danger", "sla-critical": "status-text--danger",
             "sla-warning": "status-text--warning", "sla-normal": "status-text--success",
             "sla-responded": "status-text--success", "sla-in-progress": "status-text--muted",
             "sla-none": "status-text--muted"}
#: Most urgent first when the SLA column is sorted ascending.
SLA_RANK = {"sla-overdue": 0, "sla-critical": 1, "sla-warning": 2, "sla-normal": 3,
            "sla-in-progress": 4, "sla-responded": 5, "sla-none": 6}
#: SLA classes that show when the first response (or resolution) is due.
AT_RISK = frozenset({"sla-overdue", "sla-critical", "sla-warning"})
PRIORITY_BADGES = {"urgent": "badge--danger", "high": "badge--warning", "medium": "badge--info"}
PRIORITY_RANK = {"low": 1, "medium": 2, "high": 3, "urgent": 4}
#: Columns, in table order; each row carries a sort key per column.
COLUMNS = ("number", "subject", "requester", "agent", "priority", "sla", "updated", "age")


# --- views and the agent filter ------------------------------------------------------------

def _group(item: Mapping[str, Any]) -> str | None:
    group = item.get("group_id")
    return None if group is None or str(group).strip() == "" else str(group).strip()


def claimed_elsewhere(view: View, views: Iterable[View]) -> frozenset[str]:
    """The group ids other views show."""
    return frozenset().union(*(other.group_ids for other in views if other.slug != view.slug))


def _in_view(group: str | None, view: View, claimed: frozenset[str]) -> bool:
    if group is not None and group in view.group_ids:
        return True
    return view.others and (group is None or group not in claimed)


def belongs(item: Mapping[str, Any], view: View, views: Sequence[View]) -> bool:
    """Whether a ticket is on ``view``'s wall: its group is the view's, or the view takes
    the others and no other view claims the group (tickets without a group go there too)."""
    return _in_view(_group(item), view, claimed_elsewhere(view, views))


def matches_agent(item: Mapping[str, Any], agent_id: str | None) -> bool:
    """The agent filter: every ticket (no filter), unassigned ones, or one PSA agent's."""
    if not agent_id:
        return True
    responder = item.get("responder_id")
    responder = None if responder is None or str(responder) == "" else str(responder)
    if agent_id == UNASSIGNED:
        return responder is None
    return responder == agent_id


def split(feed: Mapping[str, Any], view: View, views: Sequence[View],
          agent_id: str | None = None) -> dict[int, list[dict[str, Any]]]:
    """Codex's four sections, keeping only ``view``'s tickets (of one agent, if asked);
    Codex's order within each section is kept."""
    claimed = claimed_elsewhere(view, views)
    return {number: [item for item in feed.get(f"section{number}") or []
                     if _in_view(_group(item), view, claimed) and matches_agent(item, agent_id)]
            for number in SECTIONS}


def agent_choices(agents: Iterable[Mapping[str, Any]], provider: str | None) -> list[
        dict[str, str]]:
    """The filter's options: the configured PSA's active agents by name (id, name)."""
    choices = {}
    for agent in agents:
        if not agent.get("active", True) or agent.get("external_id") in (None, ""):
            continue
        if provider and agent.get("source") not in (None, provider):
            continue
        choices[str(agent["external_id"])] = str(agent.get("name") or agent["external_id"])
    return [{"id": key, "name": name}
            for key, name in sorted(choices.items(), key=lambda pair: pair[1].casefold())]


# --- rows -----------------------------------------------------------------------------------

def parse_time(value: Any) -> datetime | None:
    """An ISO 8601 time from Codex's JSON (UTC when it carries no offset)."""
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str) and value:
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
    else:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def ago(moment: datetime | None, now: datetime) -> str:
    """"3d ago", "5h ago", "12m ago", "Just now" or "never"."""
    if moment is None:
        return "never"
    seconds = max(0.0, (now - moment).total_seconds())
    for size, unit in ((86400, "d"), (3600, "h"), (60, "m")):
        if seconds >= size:
            return f"{int(seconds // size)}{unit} ago"
    return "Just now"


def truncate(text: str, length: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= length else text[:length - 1].rstrip() + "\u2026"


def ticket_url(template: str | None, item: Mapping[str, Any]) -> str | None:
    """The ticket's page in the PSA from the configured template (``{id}``, ``{number}``).

    Only http(s) addresses with a host become links; the values are URL-quoted, so a ticket
    number cannot change where the link points.
    """
    if not template or not is_web_url(template):
        return None
    ticket_id = str(item.get("id") or "")
    if not ticket_id:
        return None
    number = str(item.get("ticket_number") or ticket_id)
    return (template.replace("{id}", quote(ticket_id, safe=""))
            .replace("{number}", quote(number, safe="")))


def is_web_url(value: str) -> bool:
    try:
        parts = urlsplit(value.strip())
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def _seconds_since(moment: datetime | None, now: datetime) -> str:
    # Unknown times sort last (an empty key, whichever the direction).
    return "" if moment is None else str(int((now - moment).total_seconds()))


def row(item: Mapping[str, Any], now: datetime, url_template: str | None, *,
        display: bool = False) -> dict[str, Any]:
    """One ticket as a table row: the texts to show, the classes, the sort keys.

    A wall display (``display``) gets no description and no requester e-mail: it hangs where
    visitors can read it.
    """
    ticket_id = str(item.get("id") or "")
    number = str(item.get("ticket_number") or ticket_id)
    subject = str(item.get("subject") or "")
    sla_class = str(item.get("sla_class") or "sla-none")
    priority = str(item.get("priority") or "")
    updated = parse_time(item.get("updated_at"))
    created = parse_time(item.get("created_at"))
    due_field = "due_by" if item.get("ticket_type") == "Service Request" else "fr_due_by"
    due = parse_time(item.get(due_field)) if (
        sla_class in AT_RISK and not item.get("first_responded_at")) else None
    found: dict[str, Any] = {
        "id": ticket_id,
        "number": number,
        "url": ticket_url(url_template, item),
        "subject": truncate(subject, SUBJECT_LENGTH) or "(no subject)",
        "subject_full": subject,
        "requester": str(item.get("requester_name") or ""),
        "company": str(item.get("company_name") or ""),
        "agent": str(item.get("agent_name") or "Unassigned"),
        "agent_id": None if item.get("responder_id") in (None, "") else str(item["responder_id"]),
        "priority": str(item.get("priority_text") or priority.title() or "None"),
        "priority_badge": PRIORITY_BADGES.get(priority, ""),
        "status": str(item.get("status_text") or item.get("status") or ""),
        "sla_text": str(item.get("sla_text") or ""),
        "sla": sla_class,
        "sla_tone": SLA_TONES.get(sla_class, "status-text--muted"),
        "due": (f"{'Due' if due_field == 'due_by' else 'FR due'} "
                f"{due.astimezone(UTC):%Y-%m-%d %H:%M} UTC") if due else "",
        "updated": ago(updated, now),
        "age": str(item.get("created_days_old") or ""),
        "sort": {
            "number": number,
            "subject": subject.casefold(),
            "requester": str(item.get("requester_name") or "").casefold(),
            "agent": "" if not item.get("responder_id") else str(
                item.get("agent_name") or "").casefold(),
            # Ascending: most urgent first, like the feed's own order.
            "priority": str(-PRIORITY_RANK.get(priority, 0)),
            "sla": str(SLA_RANK.get(sla_class, len(SLA_RANK))),
            "updated": _seconds_since(updated, now),
            "age": _seconds_since(created, now),
        },
    }
    if not display:
        found["description"] = truncate_block(str(item.get("description_text") or ""))
        found["requester_email"] = str(item.get("requester_email") or "")
    return found


def blank_row(*, display: bool = False) -> dict[str, Any]:
    """A row with nothing in it: the page's template for rows the browser adds later."""
    found: dict[str, Any] = {key: "" for key in (
        "id", "number", "subject", "subject_full", "requester", "company", "agent", "priority",
        "priority_badge", "status", "sla_text", "sla", "sla_tone", "due", "updated", "age")}
    found.update(url=None, agent_id=None, sla_tone="status-text--muted",
                 sort=dict.fromkeys(COLUMNS, ""))
    if not display:
        found.update(description="", requester_email="")
    return found


def truncate_block(text: str, length: int = DESCRIPTION_LENGTH) -> str:
    """A description for the detail panel: line breaks kept, very long text cut."""
    text = text.strip()
    return text if len(text) <= length else text[:length].rstrip() + "\u2026"


SECTION_TITLES = {1: "Open {view} Tickets", 2: "Customer Replied",
                  3: "Needs Agent / Update Overdue", 4: "Other Active {view} Tickets"}
SECTION_HINTS = {1: "Waiting for a first response", 2: "The customer wrote back",
                 3: "No update within the priority's limit", 4: "On hold, waiting or pending"}


def section_title(number: int, view: View) -> str:
    return SECTION_TITLES[number].format(view=view.name)


def sync_state(last_sync: datetime | None, now: datetime,
               stale_after: timedelta) -> dict[str, Any]:
    """The "last synced" indicator: its text and whether it is stale (amber)."""
    stale = last_sync is None or now - last_sync > stale_after
    text = "Tickets never synced" if last_sync is None else f"Last synced {ago(last_sync, now)}"
    return {"text": text, "stale": stale,
            "at": last_sync.isoformat() if last_sync else None}


def board(feed: Mapping[str, Any], view: View, views: Sequence[View], *, agent_id: str | None,
          url_template: str | None, now: datetime, stale_after: timedelta,
          display: bool = False) -> dict[str, Any]:
    """Everything one wall shows, as the page renders it and the JSON API returns it."""
    sections = split(feed, view, views, agent_id)
    return {
        "view": {"slug": view.slug, "name": view.name},
        "agent_id": agent_id or None,
        "sections": [{"number": number, "title": section_title(number, view),
                      "hint": SECTION_HINTS[number],
                      "rows": [row(item, now, url_template, display=display)
                               for item in sections[number]]}
                     for number in SECTIONS],
        "total": sum(len(items) for items in sections.values()),
        "generated_at": now.isoformat(),
        "sync": sync_state(parse_time(feed.get("last_sync_time")), now, stale_after),
    }
