"""`/api/admin/sync`: start the Codex sync in the background, and follow its progress.

The sync itself and its lease are :mod:`hivematrix.knowledgetree.sync` and
:mod:`hivematrix.knowledgetree.scheduler`: one sync at a time per deployment (the lease in the
graph), so a start while one runs answers 409, and two starts racing each other run once.
"""

from __future__ import annotations

import threading
from typing import Any

from apiflask import APIBlueprint
from flask import current_app

from hivematrix.common.auth import admin_required, permission_required, service_allowed
from hivematrix.knowledgetree import scheduler, sync
from hivematrix.knowledgetree.api import STAFF, actor, holder, refusals, tree
from hivematrix.knowledgetree.api.schemas import SyncIn, SyncStatusOut
from hivematrix.knowledgetree.items import KnowledgeError

bp = APIBlueprint("knowledgetree_sync", __name__, tag="Sync")


class SyncRunning(KnowledgeError):
    status = 409


def _run(app: Any, companies: bool, tickets: bool, who: str) -> None:
    """The background run: its outcome is on the lease (``last_result``), failures logged."""
    lease_seconds = float(app.config.get("KT_SYNC_LEASE_SECONDS")
                          or scheduler.DEFAULTS["KT_SYNC_LEASE_SECONDS"])
    reader = sync.HttpCodexReader(app.extensions["hivematrix.service_client"])
    try:
        result = scheduler.run_locked(app.extensions["knowledgetree"].tree(), reader, who,
                                      companies=companies, tickets=tickets,
                                      lease_seconds=lease_seconds)
    except Exception:
        app.logger.exception("the Codex sync started by %s failed", who)
        return
    if result is None:
        app.logger.info("a Codex sync was already running; %s's start did nothing", who)


@bp.post("/api/admin/sync")
@bp.doc(summary="Start the Codex sync",
        description="Admins only. Body (optional): `companies`, `tickets` (both true by "
                    "default: everything). Answers 202 at once with the status to poll at "
                    "`GET /api/admin/sync`; 409 while a sync runs (here or in the scheduler "
                    "or the command).")
@admin_required
@bp.input(SyncIn, location="json", arg_name="data")
@bp.output(SyncStatusOut, status_code=202)
@refusals
def start_sync(data: dict[str, Any]) -> Any:
    knowledge = tree()
    if not (data["companies"] or data["tickets"]):
        raise KnowledgeError("choose companies, tickets or both", "companies")
    if scheduler.status(knowledge.store)["running"]:
        raise SyncRunning("a Codex sync is running; wait for it to finish", "companies")
    who = scheduler.who_am_i(f"api:{actor()}")
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    threading.Thread(target=_run, args=(app, data["companies"], data["tickets"], who),
                     name="knowledgetree-sync", daemon=True).start()
    return scheduler.status(knowledge.store)


@bp.get("/api/admin/sync")
@bp.doc(summary="The Codex sync's progress and last result",
        description="`running`, `holder`, `done` of `total` companies, `current`, "
                    "`finished_at` and `last_result` (counts, or the error).")
@permission_required(*STAFF)
@service_allowed("helm")
@bp.output(SyncStatusOut)
@refusals
def sync_status() -> Any:
    return scheduler.status(holder().store)
