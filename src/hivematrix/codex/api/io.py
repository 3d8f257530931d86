"""`/api/import/<kind>` (a dry run by default) and `/api/export/<kind>.csv|.json`."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, ParamSpec, TypeVar

from apiflask import APIBlueprint
from flask import Response, current_app, g, request
from werkzeug.datastructures import FileStorage

from hivematrix.codex import access, exports, imports
from hivematrix.codex.api import query_args, refusals
from hivematrix.codex.billing_types import BillingTypeMap
from hivematrix.codex.listing import boolean
from hivematrix.codex.settings import json_mapping
from hivematrix.common.auth import permission_required, service_allowed, token_required
from hivematrix.common.db import get_session, utcnow
from hivematrix.common.errors import problem

bp = APIBlueprint("codex_io", __name__, tag="Import and export")

P = ParamSpec("P")
R = TypeVar("R")

_KIND = "<any(companies, contacts, assets):kind>"
_TITLES = {404: "Not found", 409: "Conflict", 413: "Too large"}


def import_refusals(view: Callable[P, R]) -> Callable[P, R | Response]:
    @wraps(view)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R | Response:
        try:
            return view(*args, **kwargs)
        except imports.ImportRefused as exc:
            return problem(exc.status, str(exc), title=_TITLES.get(exc.status, "Refused"),
                           errors={"file": {exc.field: [str(exc)]}})

    return wrapper


def _is_json(upload: FileStorage, data: bytes) -> bool:
    name = (upload.filename or "").lower()
    if name.endswith((".json", ".csv")):
        return name.endswith(".json")
    if upload.mimetype in ("application/json", "text/csv"):
        return upload.mimetype == "application/json"
    return data.lstrip(b"\xef\xbb\xbf \t\r\n")[:1] == b"["


def _source() -> imports.Source:
    """The rows sent: a multipart ``file`` (CSV or JSON; a form, so with a CSRF token) or a
    JSON array body."""
    limit = imports.MAX_BYTES + 1  # one byte more tells "too large" from "exactly the limit"
    if request.mimetype == "multipart/form-data":
        upload = request.files.get("file")
        if upload is None:
            raise imports.ImportRefused("file", "Send the file in the multipart field 'file'.",
                                        400)
        data = upload.stream.read(limit)
        return imports.read_json(data) if _is_json(upload, data) else imports.read_csv(data)
    if request.mimetype == "application/json":
        return imports.read_json(request.stream.read(limit))
    raise imports.ImportRefused("file", "Send a CSV or JSON file in the multipart field 'file', "
                                        "or the rows as a JSON array.", 415)


@bp.post(f"/api/import/{_KIND}")
@bp.doc(summary="Import companies, contacts or assets (a dry run unless dry_run=false)",
        description="The rows: a CSV (UTF-8, header row) or JSON file (a list of objects) in "
                    "the multipart field `file` (a form post: it needs the CSRF token, field "
                    "`csrf_token` or header `X-CSRFToken`), or a JSON array body (scripts and "
                    "services). The columns are those "
                    "the export of the same kind writes (see `hivematrix.codex.imports`). "
                    "Every row is checked first; the answer is the plan: per row the "
                    "`action` (create, update, unchanged, error), `changes` (old → new), "
                    "`errors` naming the field, and `warnings`. With `dry_run=false` a plan "
                    "without errors is applied in one transaction (with errors: 422, unless "
                    "`skip_errors=true` leaves those rows out) and `applied` gives the counts. "
                    "Limits: 10 MB, 50,000 rows, 10,000 characters per cell. Admins and "
                    "technicians.")
@permission_required(*access.WRITERS)
@refusals
@import_refusals
def import_rows(kind: str) -> Any:
    args = query_args()
    dry_run = boolean("dry_run", args.get("dry_run", "true"))
    skip_errors = boolean("skip_errors", args.get("skip_errors", "false"))
    source = _source()
    session = get_session()
    billing = BillingTypeMap.from_config(json_mapping(current_app.config,
                                                      "CODEX_BILLING_TYPE_MAP"))
    plan = imports.plan(session, kind, source, billing=billing)
    body = plan.to_dict()
    if dry_run:
        return {**body, "dry_run": True, "applied": None}
    if plan.has_errors and not skip_errors:
        errors = body["counts"]["error"]
        return problem(422, f"{errors} row{'s' if errors > 1 else ''} of the import have "
                            "errors; nothing was changed. Fix them, or send skip_errors=true "
                            "to import the other rows.", title="Rows with errors",
                       plan=body)
    applied = imports.apply(session, plan, skip_errors=skip_errors)
    current_app.logger.info(f"import of {kind} by {g.user.get('preferred_username')}: "
                            + ", ".join(f"{count} {name}" for name, count in applied.items()))
    return {**body, "dry_run": False, "applied": applied}


@bp.get(f"/api/export/{_KIND}.<any(csv, json):fmt>")
@bp.doc(summary="Export companies, contacts or assets as CSV or JSON",
        description="In the columns the import takes, so the file imports back unchanged. "
                    "Contacts take one row per role; retired assets are left out. Staff, and "
                    "the Ledger and Brainhair services; client users get their own company's "
                    "rows only.")
@token_required
@service_allowed("ledger", "brainhair")
def export_rows(kind: str, fmt: str) -> Response:
    body = exports.export(get_session(), kind, fmt, account_number=access.client_account())
    name = exports.filename(kind, fmt, utcnow().date())
    return Response(body, content_type=exports.MEDIA_TYPES[fmt],
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})
