"""The snapshot scheduler: its configuration form and the history of snapshot jobs (the
scheduler's and "Accept all bills"'), each linking to its progress page."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import current_app, redirect, request, url_for

from hivematrix.common.auth import permission_required
from hivematrix.common.db import get_session
from hivematrix.ledger import jobs
from hivematrix.ledger import scheduler as schedule
from hivematrix.ledger.api import refusals
from hivematrix.ledger.errors import LedgerError
from hivematrix.ledger.pages.base import READERS, WRITERS, bp, field_errors, render
from hivematrix.ledger.pages.forms import SCHEDULE_FIELDS, schedule_body

HISTORY = 25


def _values(row: Any) -> dict[str, str]:
    numbers = row.account_numbers
    return {"enabled": "on" if row.enabled else "", "day_of_month": str(row.day_of_month),
            "hour": str(row.hour), "period": row.period,
            "scope": "all" if numbers is None else "list",
            "account_numbers": "\n".join(numbers or [])}


def _page(*, status: int = 200, errors: dict[str, list[str]] | None = None,
          values: Mapping[str, Any] | None = None) -> Any:
    session = get_session()
    row = schedule.config(session)
    session.commit()  # the row is created on first use
    return render("ledger/scheduler.html", status, config=row,
                  values=values if values is not None else _values(row), errors=errors or {},
                  jobs=jobs.recent(session, HISTORY), saved=request.args.get("saved") == "1",
                  running=bool(current_app.config.get("LEDGER_SCHEDULER")))


@bp.get("/scheduler")
@permission_required(*READERS)
@refusals
def scheduler() -> Any:
    return _page()


@bp.post("/scheduler")
@permission_required(*WRITERS)
@refusals
def save_scheduler() -> Any:
    session = get_session()
    try:
        schedule.update_config(session, schedule_body(request.form))
    except LedgerError as exc:
        session.rollback()
        values = request.form.to_dict()
        values.setdefault("enabled", "")
        return _page(status=exc.status, errors=field_errors(exc, SCHEDULE_FIELDS),
                     values=values)
    session.commit()
    return redirect(url_for(".scheduler", saved="1"), 303)
