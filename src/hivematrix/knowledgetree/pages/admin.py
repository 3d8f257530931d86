"""The admin page (admins only): counts, the Codex sync with its progress, export, import
(a dry-run report first, then the import itself) and wipe with a typed confirmation."""

from __future__ import annotations

import json
import threading
from typing import Any

from flask import current_app, redirect, request, session, url_for

from hivematrix.common.auth import admin_required
from hivematrix.knowledgetree import admin, scheduler
from hivematrix.knowledgetree.api import actor, refusals
from hivematrix.knowledgetree.api.attachments import read_limited
from hivematrix.knowledgetree.api.sync import _run as run_sync
from hivematrix.knowledgetree.items import ROOT_ID, KnowledgeError, KnowledgeTree
from hivematrix.knowledgetree.pages.base import bp, knowledge, pending_imports, render

#: The admin's session holds the token of the import waiting for confirmation.
PENDING = "kt_pending_import"


@bp.before_request
def larger_body_for_imports() -> None:
    # As for POST /api/import: a whole tree's export is larger than any upload, and only this
    # admin-only form takes one (read after the caller was checked).
    if request.endpoint == "knowledgetree_pages.check_import":
        request.max_content_length = int(current_app.config["KT_MAX_IMPORT_BYTES"])


def _page(tree: KnowledgeTree, status: int = 200, **extra: Any) -> Any:
    values = {"report": None, "errors": {}, "wiped": None, "imported": None, **extra}
    holder = current_app.extensions["knowledgetree"]
    return render("knowledgetree/admin.html", status, counts=tree.counts(),
                  sync=scheduler.status(tree.store), search=holder.search_status(), **values)


@bp.get("/admin")
@admin_required
@refusals
def admin_page() -> Any:
    return _page(knowledge(), started=request.args.get("started") == "1",
                 reindexing=request.args.get("reindex") == "1")


@bp.post("/admin/sync")
@admin_required
@refusals
def start_sync() -> Any:
    """The same start as ``POST /api/admin/sync`` (everything), for the page's form."""
    tree = knowledge()
    if scheduler.status(tree.store)["running"]:
        return _page(tree, 409, errors={"sync": ["A Codex sync is running; wait for it to "
                                                 "finish."]})
    who = scheduler.who_am_i(f"page:{actor()}")
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    threading.Thread(target=run_sync, args=(app, True, True, who), name="knowledgetree-sync",
                     daemon=True).start()
    return redirect(url_for(".admin_page", started="1"), 303)


def _document(data: bytes) -> tuple[Any, str]:
    """The items of an uploaded export, and the parent it goes under."""
    try:
        document = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise KnowledgeError("the file is not a JSON export", "file") from None
    if isinstance(document, list):
        return document, ROOT_ID
    if not isinstance(document, dict) or "items" not in document:
        raise KnowledgeError("the file has no items list (is it an export?)", "file")
    return document["items"], ROOT_ID


@bp.post("/admin/import")
@admin_required
@refusals
def check_import() -> Any:
    """Step one: the dry run. The document waits (for this admin) until they confirm."""
    tree = knowledge()
    sent = request.files.get("file")
    if sent is None or not sent.filename:
        return _page(tree, 400, errors={"file": ["Choose an export file (.json)."]})
    data = read_limited(sent.stream, int(current_app.config["KT_MAX_IMPORT_BYTES"]))
    try:
        items, parent = _document(data)
        report = admin.check_import(tree, parent, items, by=actor(), allow_read_only=True)
    except KnowledgeError as exc:
        where = f"{exc.field}: " if exc.field and exc.field != "file" else ""
        return _page(tree, exc.status, errors={"file": [f"{where}{exc}"]})
    store = pending_imports()
    previous = session.pop(PENDING, None)
    if previous:
        store.drop(previous)
    session[PENDING] = store.put(data)
    return _page(tree, report=report)


@bp.post("/admin/import/confirm")
@admin_required
@refusals
def confirm_import() -> Any:
    """Step two: import what the dry run checked (checked again, all or nothing)."""
    tree = knowledge()
    store = pending_imports()
    token = session.pop(PENDING, None)
    try:
        data = store.get(token or "")
    except KeyError:
        return _page(tree, 409, errors={"file": ["No checked import is waiting; upload the "
                                                 "file again."]})
    store.drop(token or "")
    items, parent = _document(data)
    created = tree.import_items(parent, items, by=actor(), allow_read_only=True)
    return _page(tree, imported=created)


@bp.post("/admin/import/cancel")
@admin_required
@refusals
def cancel_import() -> Any:
    token = session.pop(PENDING, None)
    if token:
        pending_imports().drop(token)
    return redirect(url_for(".admin_page"), 303)


@bp.post("/admin/search-index")
@admin_required
@refusals
def rebuild_search_index() -> Any:
    """Rebuild the search index from the graph in the background (searches use the graph
    meanwhile only if the index was not ready; otherwise the old index answers until the
    new one is committed)."""
    tree = knowledge()
    holder = current_app.extensions["knowledgetree"]
    if holder.search_index is None:
        return _page(tree, 409, errors={"search": ["The search index is turned off "
                                                   "(KT_SEARCH_INDEX)."]})
    if not holder.rebuild_in_background(force=True):
        return _page(tree, 409, errors={"search": ["A rebuild is running; wait for it to "
                                                   "finish."]})
    return redirect(url_for(".admin_page", reindex="1"), 303)


@bp.post("/admin/wipe")
@admin_required
@refusals
def wipe() -> Any:
    tree = knowledge()
    if request.form.get("confirm", "") != admin.WIPE_PHRASE:
        return _page(tree, 400, errors={"confirm": [f"Type {admin.WIPE_PHRASE} to confirm."]})
    wiped = admin.wipe(tree, by=actor())
    return _page(tree, wiped=wiped)
