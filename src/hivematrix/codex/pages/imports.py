"""The import page: upload a CSV or JSON file, read the dry run's report, then apply it.

The uploaded file is kept server-side (``instance/imports`` of Codex, owner-only files) under
a random token, so "Apply" needs no second upload; it re-plans the same file and applies it
only when the plan is still the one the report showed (else the new report is shown again).
Files are removed once applied and after :data:`UPLOAD_LIFETIME` in any case.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from flask import current_app, g, request
from werkzeug.datastructures import FileStorage

from hivematrix.codex import access, imports
from hivematrix.codex.api import refusals
from hivematrix.codex.exports import FORMATS
from hivematrix.codex.listing import boolean
from hivematrix.codex.pages.base import billing_map, bp, render
from hivematrix.common.auth import permission_required
from hivematrix.common.db import get_session, utcnow
from hivematrix.common.files import write_atomic

UPLOAD_LIFETIME = timedelta(hours=24)
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{32}$")


@dataclass(frozen=True)
class Upload:
    token: str
    kind: str
    fmt: str
    owner: str
    filename: str
    #: digest of the dry run's plan, to notice a database that changed before "Apply"
    plan_digest: str
    data: bytes


class UploadStore:
    """Uploaded files waiting for "Apply", one data file and one JSON note per token."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def save(self, *, kind: str, fmt: str, owner: str, filename: str, plan_digest: str,
             data: bytes, now: datetime) -> str:
        self.expire(now)
        token = secrets.token_urlsafe(24)
        write_atomic(self.folder / f"{token}.data", data, 0o600)
        write_atomic(self.folder / f"{token}.json", json.dumps({
            "kind": kind, "fmt": fmt, "owner": owner, "filename": filename,
            "plan_digest": plan_digest, "saved_at": now.isoformat()}), 0o600)
        return token

    def load(self, token: str, owner: str) -> Upload | None:
        """The upload, if the token names one of ``owner``'s (nobody applies another's)."""
        if not _TOKEN.match(token):
            return None
        try:
            note = json.loads((self.folder / f"{token}.json").read_text())
            data = (self.folder / f"{token}.data").read_bytes()
        except (OSError, ValueError):
            return None
        if note.get("owner") != owner:
            return None
        return Upload(token=token, kind=note["kind"], fmt=note["fmt"], owner=note["owner"],
                      filename=note.get("filename", ""), plan_digest=note["plan_digest"],
                      data=data)

    def remove(self, token: str) -> None:
        for suffix in (".data", ".json"):
            (self.folder / f"{token}{suffix}").unlink(missing_ok=True)

    def expire(self, now: datetime) -> None:
        if not self.folder.is_dir():
            return
        for note in self.folder.glob("*.json"):
            try:
                saved = datetime.fromisoformat(json.loads(note.read_text())["saved_at"])
            except (OSError, ValueError, KeyError):
                saved = None
            if saved is None or now - saved > UPLOAD_LIFETIME:
                self.remove(note.stem)


def plan_digest(plan: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(plan, sort_keys=True, default=str).encode()).hexdigest()


def read_rows(data: bytes, fmt: str) -> imports.Source:
    return imports.read_json(data) if fmt == "json" else imports.read_csv(data)


def format_of(upload: FileStorage, data: bytes) -> str:
    """json or csv, by the file's name, then its type, then its first character."""
    name = (upload.filename or "").lower()
    if name.endswith((".json", ".csv")):
        return "json" if name.endswith(".json") else "csv"
    if upload.mimetype in ("application/json", "text/csv"):
        return "json" if upload.mimetype == "application/json" else "csv"
    return "json" if data.lstrip(b"\xef\xbb\xbf \t\r\n")[:1] == b"[" else "csv"


def _store() -> UploadStore:
    home = Path(current_app.config["HIVEMATRIX_HOME"])
    return UploadStore(home / current_app.config["SERVICE_NAME"] / "instance" / "imports")


def _owner() -> str:
    return str(g.user.get("sub", ""))


def _page(status: int = 200, **context: Any) -> Any:
    context.setdefault("kind", request.form.get("kind", "companies"))
    return render("codex/import.html", status, kinds=imports.KINDS, formats=FORMATS,
                  columns=imports.COLUMNS, **context)


@bp.get("/import")
@permission_required(*access.WRITERS)
def import_page() -> Any:
    return _page()


def _plan(kind: str, data: bytes, fmt: str) -> imports.Plan:
    return imports.plan(get_session(), kind, read_rows(data, fmt), billing=billing_map())


@bp.post("/import")
@permission_required(*access.WRITERS)
@refusals
def import_dry_run() -> Any:
    """Check the uploaded file and show what it would do (nothing is changed)."""
    kind = request.form.get("kind", "")
    if kind not in imports.KINDS:
        return _page(400, error=f"Choose what the file holds: {', '.join(imports.KINDS)}.",
                     error_field="kind")
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        return _page(400, error="Choose a CSV or JSON file to import.", error_field="file")
    data = upload.stream.read(imports.MAX_BYTES + 1)
    fmt = format_of(upload, data)
    try:
        plan = _plan(kind, data, fmt)
    except imports.ImportRefused as exc:
        return _page(exc.status, error=str(exc), error_field=exc.field)
    report = plan.to_dict()
    token = _store().save(kind=kind, fmt=fmt, owner=_owner(), filename=upload.filename,
                          plan_digest=plan_digest(report), data=data, now=utcnow())
    return _page(report=report, token=token, filename=upload.filename, kind=kind)


@bp.post("/import/apply")
@permission_required(*access.WRITERS)
@refusals
def import_apply() -> Any:
    store = _store()
    found = store.load(request.form.get("token", ""), _owner())
    if found is None:
        return _page(404, error="That upload is gone (applied already, or older than a day); "
                                "upload the file again.", error_field="file")
    skip_errors = boolean("skip_errors", request.form.get("skip_errors", "false"))
    try:
        plan = _plan(found.kind, found.data, found.fmt)
        report = plan.to_dict()
        if plan_digest(report) != found.plan_digest:
            token = store.save(kind=found.kind, fmt=found.fmt, owner=found.owner,
                               filename=found.filename, plan_digest=plan_digest(report),
                               data=found.data, now=utcnow())
            store.remove(found.token)
            return _page(409, report=report, token=token, filename=found.filename,
                         kind=found.kind, error="The data changed since the dry run; nothing "
                                                "was imported. Check the new report, then "
                                                "apply again.")
        applied = imports.apply(get_session(), plan, skip_errors=skip_errors)
    except imports.ImportRefused as exc:
        return _page(exc.status, error=str(exc), error_field=exc.field, kind=found.kind)
    store.remove(found.token)
    current_app.logger.info(f"import of {found.kind} by {g.user.get('preferred_username')} "
                            "(web page): " + ", ".join(f"{count} {name}"
                                                       for name, count in applied.items()))
    return _page(applied=applied, kind=found.kind, filename=found.filename)
