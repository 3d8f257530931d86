"""The sync page (per kind: provider, schedule, last run, "Run now", job history) and one
job's page with its whole log and, while it runs, live progress (``codex/static/sync-job.js``
polls ``/api/sync/jobs/<id>``). The same functions as ``/api/sync`` do the work."""

from __future__ import annotations

from typing import Any

from flask import current_app, g, redirect, request, url_for
from sqlalchemy import select
from werkzeug.exceptions import Forbidden, NotFound

from hivematrix.codex.api import refusals
from hivematrix.codex.api.sync import STARTERS
from hivematrix.codex.connectors.factory import NotConfigured
from hivematrix.codex.listing import BadQuery, boolean
from hivematrix.codex.models import SyncJob
from hivematrix.codex.pages.base import STAFF, bp, level, render
from hivematrix.codex.scheduler import interval
from hivematrix.codex.sync import runner, service
from hivematrix.common.auth import permission_required
from hivematrix.common.db import get_db, get_session

#: Who reads job history and logs (as ``/api/sync/jobs``).
HISTORY_READERS = ("admin", "technician")
HISTORY = 25
KIND_TEXT = {"psa": "Companies and contacts (PSA)", "tickets": "Tickets (PSA)",
             "rmm": "Devices (RMM)", "agents": "Staff (identity provider)"}
HOW_TO_CONFIGURE = {
    "psa": "Set CODEX_PSA_PROVIDER to freshservice or connectwise in Codex's settings "
           "(instance/codex.conf), with that PSA's URL and keys.",
    "tickets": "Tickets come from the PSA: set CODEX_PSA_PROVIDER (see above).",
    "rmm": "Set CODEX_RMM_PROVIDER to datto in Codex's settings (instance/codex.conf), with "
           "DATTO_URL, DATTO_API_KEY and DATTO_API_SECRET.",
    "agents": "",
}


def _status(kind: str) -> dict[str, Any]:
    config = current_app.config
    session = get_session()
    try:
        provider: str | None = service.provider_of(config, kind)
        problem = ""
    except NotConfigured as exc:
        provider, problem = None, str(exc)
    last = session.scalar(select(SyncJob).where(SyncJob.kind == kind)
                          .order_by(SyncJob.started_at.desc()).limit(1))
    last_good = session.scalar(select(SyncJob.finished_at).where(
        SyncJob.kind == kind, SyncJob.status.in_(("succeeded", "partial")))
        .order_by(SyncJob.finished_at.desc()).limit(1))
    every = interval(config, kind)
    scheduled = bool(config.get("CODEX_SCHEDULER")) and every is not None and (
        kind != "agents" or bool(config.get("CODEX_SYNC_AGENTS", True)))
    return {"kind": kind, "title": KIND_TEXT[kind], "provider": provider,
            "not_configured": problem, "how": HOW_TO_CONFIGURE[kind],
            "every_minutes": int(every.total_seconds() // 60) if every else None,
            "every_seconds": every.total_seconds() if every else None,
            "scheduled": scheduled, "last": last, "last_success_at": last_good,
            "may_run": level() in STARTERS[kind]}


def _sync_page(status: int = 200, error: str = "", running_job: str | None = None) -> Any:
    session = get_session()
    jobs: list[SyncJob] = []
    kind_filter = request.args.get("kind", "")
    if level() in HISTORY_READERS:
        query = select(SyncJob).order_by(SyncJob.started_at.desc()).limit(HISTORY)
        if kind_filter:
            if kind_filter not in service.KINDS:
                raise BadQuery("kind", f"must be one of {', '.join(service.KINDS)}")
            query = query.where(SyncJob.kind == kind_filter)
        jobs = list(session.scalars(query))
    return render("codex/sync.html", status, kinds=[_status(kind) for kind in service.KINDS],
                  jobs=jobs, kind_filter=kind_filter, kind_text=KIND_TEXT,
                  show_history=level() in HISTORY_READERS,
                  scheduler_on=bool(current_app.config.get("CODEX_SCHEDULER")),
                  error=error, running_job=running_job)


@bp.get("/sync")
@permission_required(*STAFF)
@refusals
def sync() -> Any:
    return _sync_page()


def launch(kind: str, *, full: bool, triggered_by: str) -> str:
    """Record the job and run it in a thread (as ``POST /api/sync/<kind>`` does): its id."""
    return service.start_in_background(current_app.config, get_db(), kind, full=full,
                                       triggered_by=triggered_by)


@bp.post("/sync/<kind>/run")
@permission_required("admin", "technician")
@refusals
def run_sync(kind: str) -> Any:
    if kind not in service.KINDS:
        raise NotFound(f"There is no '{kind}' sync; expected one of {', '.join(service.KINDS)}.")
    if level() not in STARTERS[kind]:
        raise Forbidden(f"Starting a {kind} sync requires permission level: "
                        f"{', '.join(STARTERS[kind])}.")
    full = boolean("full", request.form.get("full", "false"))
    if full and level() != "admin":
        raise Forbidden("A full sync requires permission level: admin.")
    try:
        job_id = launch(kind, full=full, triggered_by=g.user.get("preferred_username", ""))
    except NotConfigured as exc:
        return _sync_page(503, f"The {kind} sync cannot run: {exc}.")
    except runner.JobRunning as exc:
        return _sync_page(409, f"A {kind} sync is already running.", running_job=exc.job_id)
    current_app.logger.info(f"{kind} sync started by {g.user.get('preferred_username')} "
                            f"(web page){' (full)' if full else ''}")
    return redirect(url_for(".sync_job", job_id=job_id), 303)


@bp.get("/sync/jobs/<job_id>")
@permission_required(*HISTORY_READERS)
@refusals
def sync_job(job_id: str) -> Any:
    job = get_session().get(SyncJob, job_id)
    if job is None:
        raise NotFound(f"There is no sync job '{job_id}'.")
    return render("codex/sync_job.html", job=job, kind_text=KIND_TEXT)
