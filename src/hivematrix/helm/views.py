"""Helm's pages and JSON API: parse, authorise, call the log store, render.

Every route is for admins only, except log ingestion, which takes service tokens only (the
service name comes from the token, never from the body).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from apiflask import APIBlueprint
from flask import current_app, g, redirect, render_template, request, url_for
from sqlalchemy import select
from werkzeug.wrappers import Response

from hivematrix.common import ratelimit
from hivematrix.common.auth import admin_required, any_service_allowed
from hivematrix.common.db import get_session
from hivematrix.common.errors import problem
from hivematrix.common.logging import quiet
from hivematrix.common.registry import read_services
from hivematrix.helm import lifecycle, logstore, metrics
from hivematrix.helm.models import LogEntry, ServiceSample
from hivematrix.helm.schemas import (
    IngestIn,
    IngestOut,
    LogEntryDetailOut,
    LogPageOut,
    LogQueryIn,
)
from hivematrix.helm.supervisor import State

bp = APIBlueprint("helm", __name__, tag="Helm")

#: Entries the log viewer shows per page.
PAGE_SIZE = 100
#: Badge modifier per level (colour is never the only signal: the level is written too).
LEVEL_BADGES = {"DEBUG": "", "INFO": "badge--info", "WARNING": "badge--warning",
                "ERROR": "badge--danger", "CRITICAL": "badge--danger", "UNKNOWN": ""}
FILTER_NAMES = ("service", "level", "correlation_id", "user", "since", "until", "q")
#: The dashboard's rows ask for fresh statuses this often.
DASHBOARD_REFRESH_SECONDS = 10
#: Warnings and errors the service detail page lists.
RECENT_PROBLEMS = 20


@bp.app_template_filter("duration")
def duration(seconds: float | None) -> str:
    """``3 d 4 h``, ``12 min``, ``40 s``: the two largest units."""
    if seconds is None:
        return "-"
    left = int(seconds)
    parts: list[str] = []
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60), ("s", 1)):
        if left >= size or (unit == "s" and not parts):
            parts.append(f"{left // size} {unit}")
            left %= size
        if len(parts) == 2:
            break
    return " ".join(parts)


@bp.app_template_filter("pretty_json")
def pretty_json(value: Any) -> str:
    """Indented JSON as plain text (the template escapes it like any other text)."""
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)


class BadParameter(ValueError):
    def __init__(self, name: str, message: str) -> None:
        super().__init__(f"{name}: {message}")
        self.name = name
        self.message = message


def _text(args: Mapping[str, str], name: str, limit: int) -> str | None:
    value = (args.get(name) or "").strip()
    if len(value) > limit:
        raise BadParameter(name, f"must be at most {limit} characters")
    return value or None


def _positive(args: Mapping[str, str], name: str) -> int | None:
    raw = (args.get(name) or "").strip()
    if not raw:
        return None
    if not raw.isdigit() or int(raw) < 1:
        raise BadParameter(name, "must be a positive integer")
    return int(raw)


def _time(args: Mapping[str, str], name: str) -> datetime | None:
    raw = (args.get(name) or "").strip()
    if not raw:
        return None
    try:
        return logstore.parse_timestamp(raw)
    except ValueError:
        raise BadParameter(name, "must be an ISO 8601 date-time, "
                                 "e.g. 2026-05-01T12:00:00Z") from None


def parse_query(args: Mapping[str, str], default_limit: int = PAGE_SIZE) -> logstore.LogQuery:
    """The filters of a request. :raises BadParameter: naming the first bad one."""
    level = None
    raw_level = (args.get("level") or "").strip()
    if raw_level:
        level = logstore.normalise_level(raw_level)
        if level is None:
            raise BadParameter("level", "must be one of "
                               f"{', '.join((*logstore.LEVELS, logstore.UNKNOWN))}")
    limit = _positive(args, "limit") or default_limit
    if limit > logstore.MAX_LIMIT:
        raise BadParameter("limit", f"must be at most {logstore.MAX_LIMIT}")
    query = logstore.LogQuery(
        service=_text(args, "service", 50), level=level,
        correlation_id=_text(args, "correlation_id", 128), user=_text(args, "user", 255),
        since=_time(args, "since"), until=_time(args, "until"), q=_text(args, "q", 200),
        limit=limit, before_id=_positive(args, "before_id"),
        after_id=_positive(args, "after_id"))
    if query.before_id is not None and query.after_id is not None:
        raise BadParameter("after_id", "cannot be combined with before_id")
    return query


def _bad_parameter(exc: BadParameter) -> Response:
    return problem(400, str(exc), errors={"query": {exc.name: [exc.message]}})


def _registered_services() -> dict[str, Any]:
    return read_services(current_app.config["SERVICES_FILE"])


def _page(entries: list[LogEntry], limit: int) -> dict[str, Any]:
    return {"logs": [entry.to_dict() for entry in entries], "count": len(entries),
            "limit": limit, "latest_id": logstore.latest_id(get_session()),
            "next_before_id": entries[-1].id if len(entries) == limit else None,
            "has_more": len(entries) == limit}


# --- pages ---------------------------------------------------------------------------------

def _listed(services: Mapping[str, Any]) -> list[tuple[str, str, int]]:
    """``(name, url, port)`` of each service with an address (what lifecycle describes)."""
    return [(name, str(entry["url"]), int(entry["port"])) for name, entry in services.items()
            if isinstance(entry, dict) and entry.get("url") and entry.get("port")]


def _home() -> Path:
    return Path(current_app.config["HIVEMATRIX_HOME"])


def _status_json(status: lifecycle.Status, counts: Mapping[str, int]) -> dict[str, Any]:
    return {"name": status.name, "state": status.state, "health": status.health,
            "pid": status.pid, "port": status.port, "cpu_percent": status.cpu_percent,
            "memory_mb": status.memory_mb, "uptime_seconds": status.uptime_seconds,
            "restarts": status.restarts, "restartable": status.state != "stopped"
            and status.name != "helm",
            "log_counts": {level: counts.get(level, 0)
                           for level in (*logstore.LEVELS, logstore.UNKNOWN)}}


def _range_of(args: Mapping[str, str]) -> str:
    chosen = (args.get("range") or metrics.DEFAULT_RANGE).strip()
    if chosen not in metrics.RANGES:
        raise BadParameter("range", f"must be one of {', '.join(metrics.RANGES)}")
    return chosen


@bp.get("/")
@bp.doc(hide=True)
@admin_required
def dashboard() -> str:
    """Each service's state and health, and its log lines of the last hour by level; the rows
    refresh themselves from ``/api/services`` (dashboard.js)."""
    services = _registered_services()
    statuses = lifecycle.statuses(_home(), _listed(services), sample_seconds=0.1)
    since = datetime.now(UTC) - timedelta(hours=1)
    counts = logstore.level_counts(get_session(), since)
    restarted = request.args.get("restarted")
    return render_template("helm/dashboard.html", statuses=statuses, counts=counts,
                           levels=(*logstore.LEVELS, logstore.UNKNOWN),
                           restarted=restarted if restarted in services else None,
                           refresh_seconds=DASHBOARD_REFRESH_SECONDS)


@bp.get("/services/<name>")
@bp.doc(hide=True)
@admin_required
def service_detail(name: str) -> Any:
    """One service: its state, the supervisor's record, recent problems and resource charts."""
    services = _registered_services()
    if name not in services:
        return problem(404, f"There is no service called '{name}'.", title="Unknown service")
    try:
        chosen = _range_of(request.args)
    except BadParameter as exc:
        return _bad_parameter(exc)
    listed = _listed({name: services[name]})
    status = lifecycle.statuses(_home(), listed, sample_seconds=0.1)[0] if listed else None
    session = get_session()
    problems = logstore.search(session, logstore.LogQuery(service=name, level="WARNING",
                                                          limit=RECENT_PROBLEMS))
    start, end = metrics.window(chosen)
    [charts] = metrics.service_charts(session, [name], start=start, end=end)
    return render_template(
        "helm/service.html", name=name, entry=services[name], status=status,
        supervisor=State.read(_home(), name), problems=problems, badges=LEVEL_BADGES,
        charts=charts, ranges=metrics.RANGES, range_labels=metrics.RANGE_LABELS,
        chosen=chosen, restarted=request.args.get("restarted") == "1")


@bp.post("/services/<name>/restart")
@bp.doc(hide=True)
@admin_required
def restart_service(name: str) -> Response:
    """Restart a supervised service now (its supervisor stops and starts it)."""
    if name not in _registered_services():
        return problem(404, f"There is no service called '{name}'.", title="Unknown service")
    if name == "helm":
        return problem(409, "Helm cannot restart itself from its own page; use "
                            "`hivematrix restart helm`.", title="Refused")
    if not lifecycle.restart_now(_home(), name):
        return problem(409, f"'{name}' is not running under Helm's supervision; start it "
                            f"with `hivematrix start {name}`.", title="Not running")
    current_app.logger.warning(f"restart of {name} requested by an admin")
    if request.form.get("return_to") == "service":
        return redirect(url_for("helm.service_detail", name=name, restarted="1"), 303)
    return redirect(url_for("helm.dashboard", restarted=name), 303)


@bp.get("/logs")
@bp.doc(hide=True)
@admin_required
def logs_page() -> tuple[str, int]:
    """The log viewer: the first page rendered here, newer entries fetched by logs.js."""
    session = get_session()
    filters = {name: request.args[name] for name in FILTER_NAMES if request.args.get(name)}
    error = None
    entries: list[LogEntry] = []
    try:
        query = parse_query(request.args)
        query.after_id = None
        entries = logstore.search(session, query)
    except BadParameter as exc:
        error = str(exc)
    except logstore.UnknownCursor:
        error = "before_id: no such entry"
    names = sorted(set(logstore.services_with_logs(session)) | set(_registered_services()))
    older = None
    if len(entries) == PAGE_SIZE:
        older = {**filters, "before_id": str(entries[-1].id)}
    page = render_template(
        "helm/logs.html", entries=entries, filters=filters, error=error, services=names,
        levels=(*logstore.LEVELS, logstore.UNKNOWN), badges=LEVEL_BADGES, older=older,
        latest_id=logstore.latest_id(session))
    return page, 400 if error else 200


# --- JSON API ------------------------------------------------------------------------------

@bp.post("/api/logs/ingest")
@bp.doc(summary="Store a batch of log records",
        description="Service tokens only: the entries are stored under the calling service's "
                    "name. At most 10,000 entries; a bad entry refuses the whole batch (422, "
                    "naming its index and field). Records already stored (same service, pid, "
                    "seq and timestamp) are not stored again.",
        responses={413: "More than 10,000 entries", 422: "An entry is invalid"})
@quiet  # every service calls it every second; its request lines would be most of the log
@ratelimit.limit("1200 per minute")
@any_service_allowed
@bp.input(IngestIn, location="json", arg_name="body", validation=False)
@bp.output(IngestOut)
def ingest(body: Any) -> Any:
    service = str(g.service)
    if not logstore.SERVICE_NAME.match(service):
        return problem(403, f"Service name {service!r} cannot own log entries.")
    data = request.get_json(silent=True)
    if not isinstance(data, dict) or "logs" not in data:
        return problem(422, "logs: required, a list of log entries",
                       errors={"json": {"logs": ["Missing data for required field."]}})
    entries = data["logs"]
    if isinstance(entries, list) and len(entries) > logstore.MAX_BATCH:
        return problem(413, f"logs: at most {logstore.MAX_BATCH} entries per request, "
                            f"got {len(entries)}",
                       errors={"json": {"logs": [f"At most {logstore.MAX_BATCH} entries."]}})
    rows, errors = logstore.validate_batch(entries, service=service)
    if errors:
        fields: dict[str, list[str]] = {}
        for error in errors:
            key = "logs" if error.index < 0 else f"logs.{error.index}.{error.field}"
            fields.setdefault(key, []).append(error.message)
        return problem(422, " ".join(str(error) for error in errors[:5]),
                       errors={"json": fields})
    session = get_session()
    stored = logstore.store(session, rows)
    session.commit()
    return {"received": len(rows), "stored": stored, "duplicates": len(rows) - stored}


@bp.get("/api/logs")
@bp.doc(summary="Search the central log",
        description="Admins only. Newest first; filters combine. `before_id` pages back, "
                    "`after_id` returns what arrived since (live view).",
        responses={400: "A filter is invalid (named in the problem)"})
@quiet  # the live viewer polls it: it must not fill the log it is showing
@admin_required
@bp.input(LogQueryIn, location="query", arg_name="params", validation=False)
@bp.output(LogPageOut)
def api_logs(params: Any) -> Any:
    try:
        query = parse_query(request.args)
        entries = logstore.search(get_session(), query)
    except BadParameter as exc:
        return _bad_parameter(exc)
    except logstore.UnknownCursor:
        return _bad_parameter(BadParameter("before_id", "no such entry"))
    return _page(entries, query.limit)


@bp.get("/api/logs/<int:entry_id>")
@bp.doc(summary="One log entry", description="Admins only.")
@admin_required
@bp.output(LogEntryDetailOut)
def api_log_entry(entry_id: int) -> Any:
    entry = get_session().get(LogEntry, entry_id)
    if entry is None:
        return problem(404, f"No log entry {entry_id}.")
    return entry.to_dict()


@bp.get("/api/services")
@bp.doc(summary="Every service's status",
        description="Admins only. State, health, pid, port, CPU, memory, uptime and restarts "
                    "of each service in services.json, with its log lines of the last hour "
                    "per level (what the dashboard shows; it polls this).")
@quiet  # polled by every open dashboard: its request lines would crowd the log
@admin_required
def api_services() -> Any:
    statuses = lifecycle.statuses(_home(), _listed(_registered_services()), sample_seconds=0.1)
    counts = logstore.level_counts(get_session(), datetime.now(UTC) - timedelta(hours=1))
    return {"services": [_status_json(status, counts.get(status.name, {}))
                         for status in statuses],
            "checked_at": datetime.now(UTC).isoformat(timespec="seconds")}


@bp.get("/api/services/<name>/samples")
@bp.doc(summary="A service's recent resource samples",
        description="Admins only. Oldest first; `since` (ISO 8601, default 24 hours ago) "
                    "and `limit` (at most 1000).")
@admin_required
def api_samples(name: str) -> Any:
    try:
        since = _time(request.args, "since") or datetime.now(UTC) - timedelta(hours=24)
        limit = _positive(request.args, "limit") or logstore.MAX_LIMIT
        if limit > logstore.MAX_LIMIT:
            raise BadParameter("limit", f"must be at most {logstore.MAX_LIMIT}")
    except BadParameter as exc:
        return _bad_parameter(exc)
    statement = (select(ServiceSample)
                 .where(ServiceSample.service == name, ServiceSample.timestamp >= since)
                 .order_by(ServiceSample.timestamp.desc()).limit(limit))
    samples = sorted(get_session().scalars(statement), key=lambda sample: sample.timestamp)
    return {"service": name, "samples": [
        {"timestamp": sample.timestamp.isoformat(), "state": sample.state,
         "cpu_percent": sample.cpu_percent, "memory_mb": sample.memory_mb,
         "uptime_seconds": sample.uptime_seconds} for sample in samples]}
