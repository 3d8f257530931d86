"""KnowledgeTree tools: search, browse, read, a company's filed knowledge, and writing
articles (writes: the approver sees where the article goes and what changes).

KnowledgeTree lets the assistant write articles only (never folders, moves or deletes) and
still applies the user's level: a billing user's approved edit is refused there.
"""

from __future__ import annotations

from typing import Any

from hivematrix.brainhair.tools.base import Proposal, Tool, ToolContext, ToolError
from hivematrix.brainhair.tools.calls import (
    ACCOUNT,
    call,
    capped,
    choice,
    integer,
    limit,
    obj,
    pick,
    segment,
    short,
    text,
)

ROOT = "root"
ITEM_ID = text("A KnowledgeTree item id (`root` for the top).", max_length=100,
               pattern=r"^[A-Za-z0-9_-]{1,100}$")
#: How much of one article the model reads at once.
ARTICLE_CHARS = 20_000
PREVIEW_CHARS = 600
MAX_CONTENT = 200_000
SUMMARY = ("id", "name", "type", "is_folder", "read_only", "account_number", "updated_at",
           "updated_by")


def _path(ctx: ToolContext, item_id: str) -> str:
    crumbs = call(ctx, "knowledgetree", f"/api/items/{segment(item_id)}/breadcrumbs") or []
    return " / ".join(str(crumb.get("name")) for crumb in crumbs)


def search(ctx: ToolContext, args: dict[str, Any]) -> Any:
    size = int(args.get("limit", 10))
    answer = call(ctx, "knowledgetree", "/api/search", params={
        "query": args["query"], "start": args.get("start", ROOT), "limit": size,
        "offset": args.get("offset", 0)})
    hits = [{**pick(hit, ("id", "name", "type", "folder_path", "account_number")),
             "snippet": short(hit.get("snippet"), 400)} for hit in answer.get("results", [])]
    return {"query": answer.get("query"),
            **capped(hits, size, total=int(answer.get("total", len(hits))), key="results")}


def browse(ctx: ToolContext, args: dict[str, Any]) -> Any:
    item_id = args.get("item_id", ROOT)
    children = call(ctx, "knowledgetree", f"/api/items/{segment(item_id)}/children") or []
    return {"item_id": item_id, "path": _path(ctx, item_id),
            **capped([pick(child, SUMMARY) for child in children], int(args.get("limit", 100)),
                     key="children")}


def read(ctx: ToolContext, args: dict[str, Any]) -> Any:
    item = call(ctx, "knowledgetree", f"/api/items/{segment(args['item_id'])}")
    article = pick(item, (*SUMMARY, "parent_id", "content_format", "source", "created_at",
                          "created_by"))
    article["path"] = _path(ctx, args["item_id"])
    article["content"] = short(item.get("content"), ARTICLE_CHARS)
    return article


def company_context(ctx: ToolContext, args: dict[str, Any]) -> Any:
    params = {"max_chars": args.get("max_chars")}
    answer = call(ctx, "knowledgetree",
                  f"/api/context/for-company/{segment(args['account_number'])}", params=params)
    return {"account_number": args["account_number"],
            **pick(answer, ("context", "chars", "truncated", "folders")),
            "sources": [pick(source, ("id", "name", "path", "cut"))
                        for source in (answer.get("sources") or [])[:100]]}


# --- writes --------------------------------------------------------------------------------

def _preview(content: str) -> str:
    return short(content, PREVIEW_CHARS) if content else "(empty)"


def propose_create(ctx: ToolContext, args: dict[str, Any]) -> Proposal:
    parent = call(ctx, "knowledgetree", f"/api/items/{segment(args['parent_id'])}")
    if not parent.get("is_folder"):
        raise ToolError(f"{args['parent_id']} is an article, not a folder: articles go into "
                        "folders.")
    siblings = call(ctx, "knowledgetree",
                    f"/api/items/{segment(args['parent_id'])}/children") or []
    taken = next((item for item in siblings if item.get("name") == args["name"]), None)
    if taken is not None:
        raise ToolError(f"The folder has an item named {args['name']!r} already (id "
                        f"{taken.get('id')}); update that one instead.")
    content = args.get("content", "")
    folder = _path(ctx, args["parent_id"])
    return Proposal(action=f"Create the article '{args['name']}' in {folder}",
                    details={"folder": folder, "name": args["name"],
                             "format": args.get("content_format", "markdown"),
                             "length": f"{len(content)} characters",
                             "content": _preview(content)})


def create_article(ctx: ToolContext, args: dict[str, Any]) -> Any:
    created = call(ctx, "knowledgetree", "/api/items", "POST", json={
        "parent_id": args["parent_id"], "name": args["name"], "type": "article",
        "content": args.get("content", ""),
        "content_format": args.get("content_format", "markdown")})
    return {"created": pick(created, ("id", "name", "parent_id", "created_at", "created_by"))}


def _changes(args: dict[str, Any]) -> dict[str, Any]:
    body: dict[str, Any] = {name: args[name] for name in ("name", "content", "content_format")
                            if name in args}
    if not body:
        raise ToolError("Nothing to change: give name, content and/or content_format.")
    return body


def propose_update(ctx: ToolContext, args: dict[str, Any]) -> Proposal:
    body = _changes(args)
    current = call(ctx, "knowledgetree", f"/api/items/{segment(args['item_id'])}")
    if current.get("is_folder"):
        raise ToolError("The assistant edits articles only, not folders.")
    if current.get("read_only"):
        raise ToolError(f"'{current.get('name')}' is kept in sync from another service and "
                        "cannot be edited.")
    details: dict[str, Any] = {"article": current.get("name"),
                               "path": _path(ctx, args["item_id"])}
    if "name" in body:
        details["name"] = f"{current.get('name')} → {body['name']}"
    if "content_format" in body:
        details["format"] = f"{current.get('content_format')} → {body['content_format']}"
    if "content" in body:
        before = str(current.get("content") or "")
        details["length"] = f"{len(before)} → {len(body['content'])} characters"
        details["content before"] = _preview(before)
        details["content after"] = _preview(body["content"])
    return Proposal(action=f"Update the article '{current.get('name')}'", details=details)


def update_article(ctx: ToolContext, args: dict[str, Any]) -> Any:
    updated = call(ctx, "knowledgetree", f"/api/items/{segment(args['item_id'])}", "PATCH",
                   json=_changes(args))
    return {"updated": pick(updated, ("id", "name", "updated_at", "updated_by"))}


CONTENT = text("The article's text (markdown unless content_format says html).",
               max_length=MAX_CONTENT, min_length=0)
FORMAT = choice("markdown (default) or html.", ("markdown", "html"))

TOOLS: tuple[Tool, ...] = (
    Tool("kt_search",
         "Search the knowledge base (titles and text; every word must match). Best first, "
         "with a snippet and the folder path.",
         obj({"query": text("Words to search for.", max_length=500),
              "start": {**ITEM_ID, "description": "Only inside this folder's subtree."},
              "limit": limit(10, 50),
              "offset": integer("Skip this many hits.", maximum=100_000)}, ["query"]),
         search),
    Tool("kt_browse", "A folder's direct children (folders first), with the folder's path.",
         obj({"item_id": {**ITEM_ID, "description": "The folder (default root)."},
              "limit": limit(100, 500)}),
         browse),
    Tool("kt_read", "Read one article (its content, path and who changed it last).",
         obj({"item_id": ITEM_ID}, ["item_id"]), read),
    Tool("kt_company_context",
         "Everything filed about one company in the knowledge base (synced contacts, assets, "
         "tickets, and people's notes), as one markdown text with its sources.",
         obj({"account_number": ACCOUNT,
              "max_chars": integer("Most characters to return.", minimum=1000,
                                   maximum=200_000)}, ["account_number"]),
         company_context),
    Tool("kt_create_article",
         "Create an article in a folder. Needs approval; admins and technicians only.",
         obj({"parent_id": {**ITEM_ID, "description": "The folder to create it in."},
              "name": text("The article's title (unique in its folder).", max_length=255),
              "content": CONTENT, "content_format": FORMAT},
             ["parent_id", "name", "content"]),
         create_article, propose=propose_create),
    Tool("kt_update_article",
         "Change an article's title and/or content (the previous version is kept as a "
         "revision). Needs approval; admins and technicians only.",
         obj({"item_id": ITEM_ID, "name": text("New title.", max_length=255),
              "content": {**CONTENT, "description": "The whole new text (replaces the old)."},
              "content_format": FORMAT}, ["item_id"]),
         update_article, propose=propose_update),
)
