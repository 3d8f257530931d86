"""Helm tools for administrators: how every service is doing, and recent errors from the
central log. Offered to admins only; Helm checks the token again."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from hivematrix.brainhair.tools.base import Tool, ToolContext
from hivematrix.brainhair.tools.calls import (
    call,
    capped,
    choice,
    integer,
    limit,
    obj,
    pick,
    short,
    text,
)

ADMINS = ("admin",)
SERVICES = ("identity", "core", "nexus", "helm", "codex", "beacon", "ledger", "knowledgetree",
            "brainhair", "template")
STATUS_FIELDS = ("name", "state", "health", "port", "cpu_percent", "memory_mb",
                 "uptime_seconds", "restarts", "log_counts")


def service_status(ctx: ToolContext, args: dict[str, Any]) -> Any:
    answer = call(ctx, "helm", "/api/services")
    services = [pick(item, STATUS_FIELDS) for item in answer.get("services", [])]
    return {"checked_at": answer.get("checked_at"), "services": services}


def recent_errors(ctx: ToolContext, args: dict[str, Any]) -> Any:
    size = int(args.get("limit", 50))
    since = datetime.now(UTC) - timedelta(hours=int(args.get("hours", 24)))
    answer = call(ctx, "helm", "/api/logs", params={
        "level": args.get("level", "ERROR"), "service": args.get("service"),
        "q": args.get("query"), "since": since.isoformat(timespec="seconds"), "limit": size})
    entries = [{**pick(entry, ("id", "timestamp", "service", "level", "logger",
                               "correlation_id", "user")),
                "message": short(entry.get("message"), 1000)}
               for entry in answer.get("logs", [])]
    result = capped(entries, size, key="entries")
    if answer.get("has_more"):
        result["truncated"] = True
        result["note"] = f"There are more than {size}; narrow by service or hours."
    return result


TOOLS: tuple[Tool, ...] = (
    Tool("helm_service_status",
         "Every HiveMatrix service's state, health, port, CPU, memory, uptime, restarts and "
         "log lines of the last hour per level. Admins only.",
         obj({}), service_status, levels=ADMINS),
    Tool("helm_recent_errors",
         "Recent errors (or warnings) from the central log, newest first. Admins only.",
         obj({"service": choice("Only this service.", SERVICES),
              "level": choice("This level and above (default ERROR).",
                              ("WARNING", "ERROR", "CRITICAL")),
              "hours": integer("How many hours back (default 24).", minimum=1, maximum=720),
              "query": text("Words in the message.", max_length=200),
              "limit": limit(50, 200)}),
         recent_errors, levels=ADMINS),
)
