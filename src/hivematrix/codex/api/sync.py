"""`/api/sync/...`: start a sync now, follow its progress, read the job history."""

from __future__ import annotations

from typing import Any

from apiflask import APIBlueprint
from flask import current_app, g, request, url_for
from sqlalchemy import select
from werkzeug.exceptions import Forbidden

from hivematrix.codex.api import query_args, refusals
from hivematrix.codex.connectors.factory import NotConfigured
from hivematrix.codex.listing import BadQuery, integer
from hivematrix.codex.models import SyncJob
from hivematrix.codex.scheduler import interval
from hivematrix.codex.serialise import iso
from hivematrix.codex.sync import runner, service
from hivematrix.common.auth import permission_required, service_allowed
from hivematrix.common.db import get_db, get_session
from hivematrix.common.errors import problem

bp = APIBlueprint("codex_sync", __name__, tag="Sync")

#: Who may start each kind: ticket refreshes are everyday work; the rest change master data.
STARTERS = {"tickets": ("admin", "technician"), "psa": ("admin",), "rmm": ("admin",),
            "agents": ("admin",)}


def job_summary(job: SyncJob) -> dict[str, Any]:
    return {"id": job.id, "kind": job.kind, "provider": job.provider, "full": job.full,
            "status": job.status, "triggered_by": job.triggered_by,
            "started_at": iso(job.started_at), "finished_at": iso(job.finished_at),
            "counts": job.counts or {}, "progress": job.progress or {}, "error": job.error}


@bp.post("/api/sync/<kind>")
@bp.doc(summary="Start a sync now",
        description="`psa`, `rmm` and `agents`: admins; `tickets`: admins and technicians. "
                    "`{\"full\": true}` (admins) re-reads the whole ticket history. Answers "
                    "202 with the job id at once; 409 while a run of the kind is going on; "
                    "503 when the vendor is not configured.")
@permission_required("admin", "technician")
@refusals
def start_sync(kind: str) -> Any:
    if kind not in service.KINDS:
        return problem(404, f"There is no '{kind}' sync; expected one of "
                            f"{', '.join(service.KINDS)}.", title="Unknown sync")
    level = g.user["permission_level"]
    if level not in STARTERS[kind]:
        raise Forbidden(f"Starting a {kind} sync requires permission level: "
                        f"{', '.join(STARTERS[kind])}.")
    body = request.get_json(silent=True)
    if body is None:
        body = {}
    if not isinstance(body, dict):
        return problem(422, "The body must be a JSON object, such as {\"full\": true}.",
                       title="Invalid input",
                       errors={"json": {"_schema": ["Must be a JSON object."]}})
    full = body.get("full", False)
    if not isinstance(full, bool):
        return problem(422, "full: must be true or false", title="Invalid input",
                       errors={"json": {"full": ["Must be true or false."]}})
    if full and level != "admin":
        raise Forbidden("A full sync requires permission level: admin.")
    config = current_app.config
    starter = str(g.user.get("preferred_username", ""))
    try:
        job_id = service.start_in_background(config, get_db(), kind, full=full,
                                             triggered_by=starter)
    except NotConfigured as exc:
        return problem(503, str(exc), title="Not configured")
    except runner.JobRunning as exc:
        return problem(409, str(exc), title="Already running", job_id=exc.job_id)
    return {"job_id": job_id, "status": "running",
            "status_url": url_for(".sync_job", job_id=job_id)}, 202


@bp.get("/api/sync/jobs")
@bp.doc(summary="Recent sync jobs", description="Newest first; `kind`, `limit` (≤ 200).")
@permission_required("admin", "technician")
@service_allowed("beacon", "helm")
@refusals
def sync_jobs() -> Any:
    args = query_args()
    query = select(SyncJob).order_by(SyncJob.started_at.desc())
    if "kind" in args:
        if args["kind"] not in service.KINDS:
            raise BadQuery("kind", f"must be one of {', '.join(service.KINDS)}")
        query = query.where(SyncJob.kind == args["kind"])
    limit = integer("limit", args.get("limit", "50"), minimum=1, maximum=200)
    return [job_summary(job) for job in get_session().scalars(query.limit(limit))]


@bp.get("/api/sync/jobs/<job_id>")
@bp.doc(summary="One sync job with its whole log")
@permission_required("admin", "technician")
@service_allowed("beacon", "helm")
def sync_job(job_id: str) -> Any:
    job = get_session().get(SyncJob, job_id)
    if job is None:
        return problem(404, f"There is no sync job '{job_id}'.", title="Not found")
    return {**job_summary(job), "log": job.log}


@bp.get("/api/sync/status")
@bp.doc(summary="What is configured, scheduled and last ran, per kind of sync")
@permission_required("admin", "technician", "billing")
@service_allowed("beacon", "helm", "brainhair")
def sync_status() -> Any:
    session = get_session()
    config = current_app.config
    kinds = {}
    for kind in service.KINDS:
        try:
            provider: str | None = service.provider_of(config, kind)
        except NotConfigured:
            provider = None
        last = session.scalar(select(SyncJob).where(SyncJob.kind == kind)
                              .order_by(SyncJob.started_at.desc()).limit(1))
        last_good = session.scalar(select(SyncJob.finished_at).where(
            SyncJob.kind == kind, SyncJob.status.in_(("succeeded", "partial")))
            .order_by(SyncJob.finished_at.desc()).limit(1))
        every = interval(config, kind)
        kinds[kind] = {"provider": provider,
                       "every_minutes": int(every.total_seconds() // 60) if every else None,
                       # Exact, for schedules finer than a minute (every_minutes is then 0).
                       "every_seconds": every.total_seconds() if every else None,
                       "last_job": job_summary(last) if last else None,
                       "last_success_at": iso(last_good)}
    return {"scheduler": bool(config.get("CODEX_SCHEDULER")), "kinds": kinds}
