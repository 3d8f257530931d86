"""The dashboard (the home page): one month's totals, contracts, bills with errors, and the
"accept every bill" job with its progress page."""

from __future__ import annotations

from typing import Any

from flask import redirect, url_for
from werkzeug.wrappers import Response

from hivematrix.common.auth import permission_required
from hivematrix.common.db import get_session
from hivematrix.ledger import jobs
from hivematrix.ledger.api import refusals
from hivematrix.ledger.pages.base import (
    READERS,
    WRITERS,
    bp,
    dashboard,
    form_period,
    page_period,
    render,
    start_job,
)

#: The job states a progress page keeps polling in.
UNFINISHED = ("queued", "running")


@bp.get("/")
@permission_required(*READERS)
@refusals
def home() -> Any:
    period = page_period()
    board = dashboard(period)
    rows = board["companies"]
    return render("ledger/dashboard.html", period=period, board=board,
                  summary=board["summary"],
                  errors=[row for row in rows if row["error"]],
                  expiring=[row for row in rows if row["contract_expiring_soon"]],
                  expired=[row for row in rows if row["contract_expired"]],
                  companies=sorted(rows, key=lambda row: str(row["company_name"]).casefold()))


@bp.post("/jobs")
@permission_required(*WRITERS)
@refusals
def accept_all() -> Response:
    """Accept every bill of the posted month in the background; show the job's progress."""
    job_id = start_job(form_period())
    return redirect(url_for(".job", job_id=job_id), 303)


@bp.get("/jobs/<int:job_id>")
@permission_required(*READERS)
@refusals
def job(job_id: int) -> Any:
    found = jobs.get(get_session(), job_id)
    return render("ledger/job.html", job=found, running=found.status in UNFINISHED,
                  period_args={"year": found.year, "month": found.month},
                  unfinished=UNFINISHED)

