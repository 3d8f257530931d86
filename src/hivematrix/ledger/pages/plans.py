"""Billing plans: the list, create, edit and delete forms, and the JSON export and import.
The work is :mod:`hivematrix.ledger.plans`', as for ``/api/plans``."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from flask import Response, redirect, request, url_for

from hivematrix.common.auth import permission_required
from hivematrix.common.db import get_session
from hivematrix.ledger import plans
from hivematrix.ledger.api import refusals
from hivematrix.ledger.errors import LedgerError
from hivematrix.ledger.inputs import SUPPORT_LEVELS
from hivematrix.ledger.models import BillingPlan
from hivematrix.ledger.pages.base import READERS, WRITERS, bp, field_errors, render
from hivematrix.ledger.pages.forms import PLAN_FIELDS, features_text, plan_body
from hivematrix.ledger.pages.settings import RATE_LABELS

#: The largest plans file the import takes.
IMPORT_MAX_BYTES = 2 * 1024 * 1024


def _values(plan: BillingPlan) -> dict[str, str]:
    shown = {name: str(value) for name, value in plans.to_dict(plan).items()
             if name in PLAN_FIELDS and name != "features"}
    shown["features"] = features_text(plan.features)
    return shown


def _list_page(*, status: int = 200, failed: str = "", errors: dict[str, list[str]] | None = None,
               values: Mapping[str, Any] | None = None, notice: str = "") -> Any:
    return render("ledger/plans.html", status, plans=plans.list_plans(get_session()),
                  failed=failed, errors=errors or {}, values=values or {}, notice=notice,
                  support_levels=SUPPORT_LEVELS, rate_labels=RATE_LABELS)


NOTICES = {"created": "The plan was created.", "saved": "The plan was saved.",
           "deleted": "The plan was deleted."}


@bp.get("/plans")
@permission_required(*READERS)
@refusals
def plan_list() -> Any:
    notice = NOTICES.get(request.args.get("done", ""), "")
    imported = request.args.get("imported", "")
    if imported:
        created, _, updated = imported.partition("-")
        if created.isdigit() and updated.isdigit():
            notice = f"Imported: {created} plans created, {updated} updated."
    return _list_page(notice=notice)


@bp.post("/plans")
@permission_required(*WRITERS)
@refusals
def create_plan() -> Any:
    session = get_session()
    try:
        plans.create(session, plan_body(request.form))
    except LedgerError as exc:
        session.rollback()
        return _list_page(status=exc.status, failed="create",
                          errors=field_errors(exc, PLAN_FIELDS), values=request.form.to_dict())
    session.commit()
    return redirect(url_for(".plan_list", done="created"), 303)


def _edit_page(plan: BillingPlan, values: Mapping[str, Any], *, status: int = 200,
               errors: dict[str, list[str]] | None = None) -> Any:
    return render("ledger/plan.html", status, plan=plan, values=values, errors=errors or {},
                  support_levels=SUPPORT_LEVELS, rate_labels=RATE_LABELS)


@bp.get("/plans/<int:plan_id>")
@permission_required(*READERS)
@refusals
def plan(plan_id: int) -> Any:
    found = plans.get(get_session(), plan_id)
    return _edit_page(found, _values(found))


@bp.post("/plans/<int:plan_id>")
@permission_required(*WRITERS)
@refusals
def save_plan(plan_id: int) -> Any:
    session = get_session()
    try:
        plans.update(session, plan_id, plan_body(request.form))
    except LedgerError as exc:
        session.rollback()
        if exc.status == 404:
            raise
        return _edit_page(plans.get(session, plan_id), request.form.to_dict(),
                          status=exc.status, errors=field_errors(exc, PLAN_FIELDS))
    session.commit()
    return redirect(url_for(".plan_list", done="saved"), 303)


@bp.post("/plans/<int:plan_id>/delete")
@permission_required(*WRITERS)
@refusals
def delete_plan(plan_id: int) -> Any:
    session = get_session()
    plans.delete(session, plan_id)
    session.commit()
    return redirect(url_for(".plan_list", done="deleted"), 303)


@bp.get("/plans/export.json")
@permission_required(*READERS)
@refusals
def export_plans() -> Response:
    """Every plan as a file that the import takes back."""
    text = json.dumps({"plans": plans.export(get_session())}, indent=2, ensure_ascii=False)
    return Response(text + "\n", mimetype="application/json", headers={
        "Content-Disposition": 'attachment; filename="billing-plans.json"'})


@bp.post("/plans/import")
@permission_required(*WRITERS)
@refusals
def import_plans() -> Any:
    """A plans file (the export's shape); one bad entry refuses the whole file."""
    session = get_session()
    upload = request.files.get("file")
    try:
        if upload is None or not upload.filename:
            raise LedgerError("file: choose a plans JSON file", field="file", status=400)
        raw = upload.read(IMPORT_MAX_BYTES + 1)
        if len(raw) > IMPORT_MAX_BYTES:
            raise LedgerError(f"file: larger than {IMPORT_MAX_BYTES // 1024} KiB",
                              field="file", status=413)
        try:
            body = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise LedgerError(f"file: not a JSON document ({exc})", field="file",
                              status=400) from None
        items = body.get("plans") if isinstance(body, dict) else body
        counts = plans.import_plans(session, items)
    except LedgerError as exc:
        session.rollback()
        return _list_page(status=exc.status, failed="import",
                          errors={"file": [str(exc)]})
    session.commit()
    return redirect(url_for(".plan_list", imported=f"{counts['created']}-{counts['updated']}"),
                    303)
