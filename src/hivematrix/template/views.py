"""The template's pages and JSON API: parse, authorise, call notes.py, render."""

from __future__ import annotations

from typing import Any

from apiflask import APIBlueprint
from flask import g, redirect, render_template, request, url_for
from marshmallow import ValidationError
from werkzeug.wrappers import Response

from hivematrix.common.auth import (
    admin_required,
    permission_required,
    service_allowed,
    token_required,
)
from hivematrix.common.db import get_session
from hivematrix.template import notes
from hivematrix.template.schemas import DataOut, NoteIn, NoteOut

bp = APIBlueprint("template", __name__, tag="Template")

#: Permission levels that may write notes.
WRITERS = ("admin", "technician")


def _render_index(errors: dict[str, Any] | None = None, form: Any = None,
                  status: int = 200) -> tuple[str, int]:
    session = get_session()
    page = render_template("template/index.html", user=g.user, notes=notes.list_notes(session),
                           can_write=g.user["permission_level"] in WRITERS,
                           errors=errors or {}, form=form or {})
    return page, status


@bp.get("/")
@bp.doc(hide=True)
@token_required
def index() -> tuple[str, int]:
    """The signed-in user's name and permission level, and the latest notes."""
    return _render_index()


@bp.post("/notes")
@bp.doc(hide=True)
@permission_required(*WRITERS)
def add_note() -> Response | tuple[str, int]:
    """Add a note from the HTML form (CSRF-checked by the kit)."""
    try:
        data = NoteIn().load({"title": request.form.get("title", ""),
                              "body": request.form.get("body", "")})
    except ValidationError as exc:
        return _render_index(errors=exc.messages_dict, form=request.form, status=400)
    notes.create_note(get_session(), author=g.user["preferred_username"], **data)
    get_session().commit()
    return redirect(url_for(".index"), code=303)


@bp.get("/admin")
@bp.doc(hide=True)
@admin_required
def admin() -> str:
    """Admin-only overview."""
    return render_template("template/admin.html", user=g.user,
                           note_count=notes.count_notes(get_session()))


@bp.post("/api/notes")
@bp.doc(summary="Add a note", description="Admins and technicians only.")
@permission_required(*WRITERS)
@bp.input(NoteIn, location="json", arg_name="note")
@bp.output(NoteOut, status_code=201)
def api_add_note(note: dict[str, str]) -> Any:
    created = notes.create_note(get_session(), author=g.user["preferred_username"], **note)
    get_session().commit()
    return created


@bp.get("/api/data")
@bp.doc(summary="Data for the caller",
        description="Users get the latest notes; the Helm service gets a summary.")
@token_required
@service_allowed("helm")
@bp.output(DataOut)
def api_data() -> dict[str, Any]:
    session = get_session()
    if g.is_service_call:
        return {"caller": "service", "name": g.service, "note_count": notes.count_notes(session)}
    return {"caller": "user", "name": g.user.get("name"),
            "permission_level": g.user["permission_level"],
            "note_count": notes.count_notes(session), "notes": notes.list_notes(session)}
