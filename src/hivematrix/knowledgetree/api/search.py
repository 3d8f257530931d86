"""`/api/search`: ranked full-text search with snippets, highlights and folder paths."""

from __future__ import annotations

from typing import Any

from apiflask import APIBlueprint
from flask import jsonify

from hivematrix.common.auth import permission_required, service_allowed
from hivematrix.knowledgetree.api import (
    READER_SERVICES,
    READERS,
    client_folders,
    item_dict,
    readable,
    refusals,
    tree,
)
from hivematrix.knowledgetree.api.schemas import SearchOut, SearchQuery
from hivematrix.knowledgetree.items import ROOT_ID

bp = APIBlueprint("knowledgetree_search", __name__, tag="Search")


@bp.get("/api/search")
@bp.doc(summary="Search names and content",
        description="Every word must match (the last also as a prefix). Best first: an exact "
                    "title, then the full-text score, in which a title counts four times a "
                    "body. `start` limits the search to a folder's subtree; `limit` ≤ 100, "
                    "`offset` pages. Each hit has a plain-text `snippet` with `highlights` "
                    "(`[start, end)` offsets of the matched words) and its folder `path`. "
                    "Client users search their company's folder only.")
@permission_required(*READERS)
@service_allowed(*READER_SERVICES)
@bp.input(SearchQuery, location="query", arg_name="args")
@bp.output(SearchOut)
@refusals
def search(args: dict[str, Any]) -> Any:
    knowledge = tree()
    start = args["start"]
    scope = client_folders(knowledge)
    if scope is not None and start == ROOT_ID:
        # A client's search starts at their company's folder (the first, if several).
        if not scope:
            return {"query": args["query"], "total": 0, "offset": args["offset"],
                    "limit": args["limit"], "results": []}
        start = sorted(scope)[0]
    if start != ROOT_ID or scope is not None:  # root is readable by every staff member
        readable(knowledge, start, "start")
    page = knowledge.search(args["query"], start_id=start, offset=args["offset"],
                            limit=args["limit"])
    # Already in SearchOut's shape (its fields, JSON types): answered as is, since
    # marshmallow's dump of twenty hits costs more than the index query behind them.
    return jsonify({
        "query": args["query"], "total": page.total, "offset": page.offset,
        "limit": page.limit,
        "results": [{
            **item_dict(hit.item, content=False),
            "score": hit.score, "snippet": hit.snippet,
            "highlights": [list(span) for span in hit.highlights],
            "path": [{"id": crumb.id, "name": crumb.name} for crumb in hit.path],
            "folder_path": " / ".join(crumb.name for crumb in hit.path),
        } for hit in page.hits],
    })
