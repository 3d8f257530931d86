"""Writing: create and edit articles and folders (with a server-rendered preview), rename,
move, delete with confirmation, attachments, revisions and their restore, context export.

Every write goes through the model, which keeps the invariants and refuses read-only (synced)
items, whatever the page showed. A refusal about a field of the form shows the form again
with the message beside the field; anything else is the kit's escaped problem page.
"""

from __future__ import annotations

from typing import Any

from flask import current_app, redirect, request, url_for

from hivematrix.common.auth import permission_required
from hivematrix.common.markdown import render as render_content
from hivematrix.knowledgetree import context
from hivematrix.knowledgetree.api import (
    READERS,
    WRITERS,
    actor,
    client_folders,
    readable,
    refusals,
)
from hivematrix.knowledgetree.api.attachments import check_type, original_name, read_limited
from hivematrix.knowledgetree.items import FORMATS, Item, KnowledgeError, NotFound
from hivematrix.knowledgetree.pages import logic
from hivematrix.knowledgetree.pages.base import (
    MAX_CONTENT,
    bp,
    editable,
    folder_tree,
    knowledge,
    render,
)
from hivematrix.knowledgetree.settings import allowed_extensions

#: Form fields whose refusals are shown beside the field rather than as an error page.
FORM_FIELDS = ("name", "content", "content_format", "type")


def _editor(item: Item | None, parent: Item, kind: str, values: dict[str, str],
            errors: dict[str, list[str]], status: int = 200, preview: str | None = None) -> Any:
    return render("knowledgetree/editor.html", status, item=item, parent=parent, kind=kind,
                  values=values, errors=errors, formats=FORMATS, preview=preview)


def _values(kind: str) -> dict[str, str]:
    values = {"name": request.form.get("name", "")[:300],
              "content": request.form.get("content", "")[:MAX_CONTENT],
              "content_format": request.form.get("content_format", "markdown"),
              "is_attached": "1" if request.form.get("is_attached") else ""}
    if kind == "folder":
        values["content"] = ""
    return values


def _too_long() -> None:
    if len(request.form.get("content", "")) > MAX_CONTENT:
        raise KnowledgeError(f"the content is longer than {MAX_CONTENT} characters", "content")


@bp.get("/items/<item_id>/new")
@permission_required(*WRITERS)
@refusals
def new_item(item_id: str) -> Any:
    tree = knowledge()
    parent = readable(tree, item_id)
    kind = request.args.get("type", "article")
    if kind not in ("article", "folder"):
        raise KnowledgeError("type must be article or folder", "type")
    if not parent.is_folder:
        raise KnowledgeError("a new item goes into a folder", "id")
    return _editor(None, parent, kind, {"name": "", "content": "", "content_format": "markdown",
                                        "is_attached": ""}, {})


@bp.post("/items/<item_id>/new")
@permission_required(*WRITERS)
@refusals
def create_item(item_id: str) -> Any:
    tree = knowledge()
    parent = readable(tree, item_id)
    kind = request.form.get("type", "article")
    if kind not in ("article", "folder"):
        raise KnowledgeError("type must be article or folder", "type")
    values = _values(kind)
    if request.form.get("action") == "preview":
        return _editor(None, parent, kind, values, {},
                       preview=render_content(values["content"], values["content_format"]))
    try:
        _too_long()
        created = tree.create(parent.id, values["name"], kind, by=actor(),
                              content=values["content"],
                              content_format=values["content_format"],
                              is_attached=bool(values["is_attached"]))
    except KnowledgeError as exc:
        if exc.field not in FORM_FIELDS:
            raise
        return _editor(None, parent, kind, values, {str(exc.field): [str(exc)]}, exc.status)
    return redirect(url_for(".item", item_id=created.id), 303)


@bp.get("/items/<item_id>/edit")
@permission_required(*WRITERS)
@refusals
def edit_item(item_id: str) -> Any:
    tree = knowledge()
    item = readable(tree, item_id)
    if not editable(item):
        raise KnowledgeError(f"{item.name!r} cannot be edited here", "id")
    return _editor(item, item, item.type, {"name": item.name, "content": item.content,
                                           "content_format": item.content_format,
                                           "is_attached": "1" if item.is_attached else ""}, {})


@bp.post("/items/<item_id>/edit")
@permission_required(*WRITERS)
@refusals
def save_item(item_id: str) -> Any:
    tree = knowledge()
    item = readable(tree, item_id)
    values = _values(item.type)
    if request.form.get("action") == "preview":
        return _editor(item, item, item.type, values, {},
                       preview=render_content(values["content"], values["content_format"]))
    try:
        _too_long()
        if item.is_folder:
            tree.update(item.id, by=actor(), name=values["name"],
                        is_attached=bool(values["is_attached"]))
        else:
            tree.update(item.id, by=actor(), name=values["name"], content=values["content"],
                        content_format=values["content_format"])
    except KnowledgeError as exc:
        if exc.field not in FORM_FIELDS:
            raise
        return _editor(item, item, item.type, values, {str(exc.field): [str(exc)]}, exc.status)
    return redirect(url_for(".item", item_id=item.id), 303)


@bp.post("/items/<item_id>/rename")
@permission_required(*WRITERS)
@refusals
def rename_item(item_id: str) -> Any:
    tree = knowledge()
    item = readable(tree, item_id)
    tree.update(item.id, by=actor(), name=request.form.get("name", "")[:300])
    return redirect(url_for(".item", item_id=item.id), 303)


@bp.get("/items/<item_id>/move")
@permission_required(*WRITERS)
@refusals
def move_form(item_id: str) -> Any:
    tree = knowledge()
    item = readable(tree, item_id)
    choices = logic.folder_choices(folder_tree(tree), moving_id=item.id)
    return render("knowledgetree/move.html", item=item, choices=choices)


@bp.post("/items/<item_id>/move")
@permission_required(*WRITERS)
@refusals
def move_item(item_id: str) -> Any:
    tree = knowledge()
    item = readable(tree, item_id)
    target = request.form.get("new_parent_id", "")[:64]
    readable(tree, target, "new_parent_id")
    tree.move(item.id, target, by=actor())
    return redirect(url_for(".item", item_id=item.id), 303)


@bp.get("/items/<item_id>/delete")
@permission_required(*WRITERS)
@refusals
def delete_form(item_id: str) -> Any:
    item = readable(knowledge(), item_id)
    return render("knowledgetree/delete.html", item=item)


@bp.post("/items/<item_id>/delete")
@permission_required(*WRITERS)
@refusals
def delete_item(item_id: str) -> Any:
    tree = knowledge()
    item = readable(tree, item_id)
    parent = item.parent_id
    tree.delete(item.id, by=actor())
    return redirect(url_for(".item", item_id=parent) if parent else url_for(".home"), 303)


@bp.post("/items/<item_id>/attachments")
@permission_required(*WRITERS)
@refusals
def upload(item_id: str) -> Any:
    tree = knowledge()
    item = readable(tree, item_id)
    sent = request.files.get("file")
    if sent is None:
        raise KnowledgeError("file: choose a file to upload", "file")
    name = original_name(sent.filename)
    content_type = check_type(name, allowed_extensions(current_app.config))
    data = read_limited(sent.stream, int(current_app.config["KT_MAX_UPLOAD_BYTES"]))
    tree.attach_file(item.id, name, data, by=actor(), content_type=content_type)
    return redirect(url_for(".item", item_id=item.id), 303)


@bp.post("/items/<item_id>/attachments/<file_id>/delete")
@permission_required(*WRITERS)
@refusals
def delete_file(item_id: str, file_id: str) -> Any:
    tree = knowledge()
    item = readable(tree, item_id)
    stored, _ = tree.file(file_id)
    if stored.item_id != item.id:
        raise NotFound(f"no file {file_id!r}", "file_id")
    tree.delete_file(stored.id, by=actor())
    return redirect(url_for(".item", item_id=item.id), 303)


@bp.get("/items/<item_id>/revisions/<revision_id>")
@permission_required(*READERS)
@refusals
def revision(item_id: str, revision_id: str) -> Any:
    tree = knowledge()
    item = readable(tree, item_id)
    chosen = next((rev for rev in tree.revisions(item.id) if rev.id == revision_id), None)
    if chosen is None:
        raise NotFound(f"no revision {revision_id!r} of {item_id!r}", "revision_id")
    return render("knowledgetree/revision.html", item=item, revision=chosen,
                  html=render_content(chosen.content, chosen.content_format),
                  editable=editable(item))


@bp.post("/items/<item_id>/revisions/<revision_id>/restore")
@permission_required(*WRITERS)
@refusals
def restore(item_id: str, revision_id: str) -> Any:
    tree = knowledge()
    item = readable(tree, item_id)
    tree.restore(item.id, revision_id, by=actor())
    return redirect(url_for(".item", item_id=item.id), 303)


def _budget() -> int:
    config = current_app.config
    raw = request.args.get("max_chars", "").strip()
    if raw and not raw.isdigit():
        raise KnowledgeError("max_chars must be a whole number of characters", "max_chars")
    budget = int(raw) if raw else int(config["KT_CONTEXT_DEFAULT_CHARS"])
    return context.check_budget(budget, int(config["KT_CONTEXT_MAX_CHARS"]))


@bp.get("/items/<item_id>/context")
@permission_required(*READERS)
@refusals
def context_page(item_id: str) -> Any:
    """The context export without JavaScript (the dialog on the item's page asks the API)."""
    tree = knowledge()
    item = readable(tree, item_id)
    excluded = [value[:64] for value in request.args.getlist("excluded_ids")][:1000]
    budget = _budget()
    built = context.item_context(tree, item.id, budget=budget, excluded_ids=excluded,
                                 floor_ids=client_folders(tree))
    # The attached folders to offer: those in scope with nothing left out, so unticking one
    # does not make it vanish from the list.
    offered = (built if not excluded else
               context.item_context(tree, item.id, budget=budget, excluded_ids=[],
                                    floor_ids=client_folders(tree))).attached_folders
    return render("knowledgetree/context.html", item=item, built=built, offered=offered,
                  excluded=set(excluded), budget=budget)
