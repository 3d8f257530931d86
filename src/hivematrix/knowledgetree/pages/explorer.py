"""The explorer (a folder's children in a grid or a list, an article rendered), search, and
the grid/list preference (kept in Codex, see :mod:`logic`)."""

from __future__ import annotations

from typing import Any

from flask import redirect, request, session, url_for
from werkzeug.exceptions import BadRequest

from hivematrix.common.auth import permission_required
from hivematrix.common.markdown import render as render_content
from hivematrix.knowledgetree.api import READERS, readable, refusals
from hivematrix.knowledgetree.context import ancestry
from hivematrix.knowledgetree.items import ROOT_ID, KnowledgeError, KnowledgeTree
from hivematrix.knowledgetree.pages import logic
from hivematrix.knowledgetree.pages.base import (
    STAFF,
    bp,
    codex_settings,
    editable,
    folder_tree,
    knowledge,
    level,
    render,
    scope,
    subject,
    view,
)

SEARCH_PAGE_SIZE = 20


def _item_page(tree: KnowledgeTree, item_id: str) -> Any:
    item = readable(tree, item_id)
    found = scope(tree)
    path = ancestry(tree, item.id)
    context: dict[str, Any] = {
        "item": item, "crumbs": logic.visible_crumbs(path, found),
        "open_ids": {crumb.id for crumb in path}, "folders": folder_tree(tree),
        "files": tree.files(item.id), "editable": editable(item),
    }
    if item.is_folder:
        # Staff are told when Codex could not keep their choice (clients have no Codex
        # settings, so theirs is always this browser's).
        unsaved = request.args.get("view") == "unsaved" and level() in STAFF
        return render("knowledgetree/folder.html", children=tree.children(item.id),
                      view=view(), view_unsaved=unsaved, **context)
    return render("knowledgetree/article.html", html=render_content(item.content,
                                                                    item.content_format),
                  revisions=tree.revisions(item.id), **context)


@bp.get("/")
@permission_required(*READERS)
@refusals
def home() -> Any:
    tree = knowledge()
    found = scope(tree)
    if found is None:
        return _item_page(tree, ROOT_ID)
    if not found:
        return render("knowledgetree/no_company.html", 404)
    # A client user starts at their company's folder (the first, if several).
    return redirect(url_for(".item", item_id=sorted(found)[0]), 303)


@bp.get("/items/<item_id>")
@permission_required(*READERS)
@refusals
def item(item_id: str) -> Any:
    return _item_page(knowledge(), item_id)


def _page_number() -> int:
    raw = request.args.get("page", "1")
    if not raw.isdigit() or int(raw) < 1 or int(raw) > 5000:
        raise KnowledgeError("page must be a page number from 1", "page")
    return int(raw)


@bp.get("/search")
@permission_required(*READERS)
@refusals
def search_page() -> Any:
    """Search without JavaScript: the same ranked results as the search-as-you-type box."""
    tree = knowledge()
    query = request.args.get("query", "").strip()
    if len(query) > 500:
        raise KnowledgeError("query must be at most 500 characters", "query")
    page = _page_number()
    found = scope(tree)
    start = ROOT_ID
    if found is not None:
        start = sorted(found)[0] if found else ""
    results = None
    if query and start:
        results = tree.search(query, start_id=start, offset=(page - 1) * SEARCH_PAGE_SIZE,
                              limit=SEARCH_PAGE_SIZE)
    return render("knowledgetree/search.html", query=query, results=results, page=page,
                  page_size=SEARCH_PAGE_SIZE, pieces=logic.marked,
                  crumbs=[], folders=folder_tree(tree), open_ids=set())


@bp.post("/view")
@permission_required(*READERS)
@refusals
def save_view() -> Any:
    """Grid or list, kept in the user's Codex settings (else in this browser session); back
    to the folder they were looking at."""
    chosen = request.form.get("view", "")
    back = request.form.get("item_id", ROOT_ID)
    if not back or len(back) > 64 or not back.replace("-", "").isalnum():
        raise BadRequest("item_id is not an item id")
    try:
        kept = logic.save_view(codex_settings(), session, subject(), chosen)
    except ValueError as exc:
        raise KnowledgeError(f"view {exc}", "view") from None
    if kept:
        return redirect(url_for(".item", item_id=back), 303)
    return redirect(url_for(".item", item_id=back, view="unsaved"), 303)
