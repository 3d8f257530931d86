"""Beacon tool: the ticket wall's active tickets, by section, as the staff member's wall shows
them (Beacon reads Codex's feed and applies the SLA rules; this asks Beacon, not Codex, so the
answer matches the screen on the wall)."""

from __future__ import annotations

from typing import Any

from hivematrix.brainhair.tools.base import Tool, ToolContext
from hivematrix.brainhair.tools.calls import call, capped, integer, limit, obj, pick, segment, text

ROW_FIELDS = ("id", "number", "subject_full", "company", "requester", "agent", "agent_id",
              "priority", "status", "sla_text", "sla", "due", "updated", "age", "url")


def active_tickets(ctx: ToolContext, args: dict[str, Any]) -> Any:
    params = {"agent_id": args.get("agent_id")}
    board = call(ctx, "beacon", f"/api/tickets/{segment(args.get('view', 'helpdesk'))}",
                 params=params)
    size = int(args.get("limit", 25))
    wanted = args.get("section")
    sections = []
    for section in board.get("sections", []):
        if wanted is not None and section.get("number") != wanted:
            continue
        rows = [pick(row, ROW_FIELDS) for row in section.get("rows", [])]
        sections.append({"number": section.get("number"), "title": section.get("title"),
                         "hint": section.get("hint"), **capped(rows, size, key="tickets")})
    return {"view": board.get("view"), "total": board.get("total"), "sections": sections,
            "sync": board.get("sync")}


TOOLS: tuple[Tool, ...] = (
    Tool("beacon_active_tickets",
         "The ticket wall: active tickets by section (1 waiting for a first response, 2 "
         "customer replied, 3 needs an update / overdue, 4 on hold or waiting) with SLA state, "
         "and whether the last ticket sync is stale.",
         obj({"view": text("The wall view's slug (default helpdesk).", max_length=40,
                           pattern=r"^[a-z0-9][a-z0-9-]{0,39}$"),
              "section": integer("Only this section (1-4).", minimum=1, maximum=4),
              "agent_id": text("Only tickets of this PSA agent id (`unassigned` for nobody).",
                               max_length=64, pattern=r"^[A-Za-z0-9_-]{1,64}$"),
              "limit": limit(25, 100)}),
         active_tickets),
)
