"""KnowledgeTree's JSON API, one module per area; who may call what, and shared helpers, here.

Who may do what:

- admins and technicians read and write; billing users read;
- client users read only their own company's subtree (the folders whose ``account_number`` is
  the one in their token); anything else answers 404, so they cannot probe for items; they
  write nothing;
- wipe, import and starting the Codex sync are for admins only; so is setting a folder's
  ``account_number`` (it decides what a client user can see);
- services are admitted route by route: Brainhair reads, and writes articles (after a person
  approved it, on its side); Helm reads the counts and the sync's progress.

``read_only`` items (written by the Codex sync) are never changed through the API: the model
refuses them (403) because no route passes ``allow_read_only`` except wipe and import.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, ParamSpec, TypeVar

from apiflask import APIBlueprint
from flask import current_app, g, request
from werkzeug.exceptions import NotFound as HTTPNotFound
from werkzeug.wrappers import Response

from hivematrix.common.errors import problem
from hivematrix.knowledgetree.graph import GraphError
from hivematrix.knowledgetree.items import (
    FolderNode,
    Item,
    KnowledgeError,
    KnowledgeTree,
    NameTaken,
    StoredFile,
)

P = ParamSpec("P")
R = TypeVar("R")

#: User levels that read (client users only their company's subtree).
READERS = ("admin", "technician", "billing", "client")
#: Staff levels that read everything.
STAFF = ("admin", "technician", "billing")
WRITERS = ("admin", "technician")
#: Services that read the tree.
READER_SERVICES = ("brainhair",)
#: Services that write articles (never folders, never deletes or moves).
ARTICLE_WRITER_SERVICES = ("brainhair",)

TITLES = {400: "Bad request", 403: "Forbidden", 404: "Not found", 409: "Conflict",
          413: "Content too large", 415: "Unsupported media type"}


class Refused(KnowledgeError):
    """The caller may not do this (403), naming the field that asked for it."""

    status = 403


def holder() -> Any:
    return current_app.extensions["knowledgetree"]


def tree() -> KnowledgeTree:
    """The ready tree of this process (opened and its schema ensured on first use)."""
    found: KnowledgeTree = holder().tree()
    return found


def _where(field: str) -> tuple[str, str]:
    """Where the refused input came from, and its name there (the model says ``id`` for the
    item it was asked about: the route's ``item_id``)."""
    view_args = request.view_args or {}
    if field == "id" and "item_id" in view_args:
        return "path", "item_id"
    base = field.split("[", 1)[0].split(".", 1)[0]
    if base in view_args:
        return "path", field
    if base in request.args:
        return "query", field
    if request.files or request.form or (request.mimetype or "").startswith("multipart/"):
        return "form", field
    return "json", field


def refusals(view: Callable[P, R]) -> Callable[P, R | Response]:
    """Turn the model's refusals into problem documents naming the field, and an unreachable
    graph into 503."""

    @wraps(view)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R | Response:
        try:
            return view(*args, **kwargs)
        except KnowledgeError as exc:
            extra: dict[str, Any] = {}
            if exc.field:
                location, name = _where(exc.field)
                extra["errors"] = {location: {name: [str(exc)]}}
            if isinstance(exc, NameTaken) and exc.existing_id:
                extra["existing_id"] = exc.existing_id
            return problem(exc.status, str(exc), title=TITLES.get(exc.status, "Refused"),
                           **extra)
        except GraphError:
            current_app.logger.exception("the graph store failed")
            return problem(503, "The knowledge base's graph store is unavailable.",
                           headers={"Retry-After": "5"})

    return wrapper


def actor() -> str:
    """Who is acting, for the records: the user's name or the calling service."""
    if getattr(g, "is_service_call", False):
        return f"service:{g.service}"
    user: dict[str, Any] = getattr(g, "user", None) or {}
    return str(user.get("preferred_username") or user.get("sub") or "unknown")


def is_service() -> bool:
    return bool(getattr(g, "is_service_call", False))


def permission_level() -> str | None:
    if is_service():
        return None
    user: dict[str, Any] = getattr(g, "user", None) or {}
    level = user.get("permission_level")
    return str(level) if level else None


def client_account() -> str | None:
    """The account number a client user is confined to; None for staff and services."""
    if permission_level() == "client":
        user: dict[str, Any] = getattr(g, "user", None) or {}
        return str(user.get("account_number") or "")  # no company claim: sees nothing
    return None


def client_folders(knowledge: KnowledgeTree) -> set[str] | None:
    """The folders a client user may read below (their company's); None: no confinement."""
    account = client_account()
    if account is None:
        return None
    if not account:
        return set()
    from hivematrix.knowledgetree.context import company_folders

    return {folder.id for folder in company_folders(knowledge, account)}


def not_found(item_id: str) -> HTTPNotFound:
    return HTTPNotFound(f"There is no item '{item_id}'.")


def readable(knowledge: KnowledgeTree, item_id: str, field: str = "id") -> Item:
    """The item, if the caller may read it. A client user gets the same 404 for an item
    outside their company as for one that does not exist, so they cannot probe for ids."""
    scope = client_folders(knowledge)
    if scope is None:
        return knowledge.get(item_id, field)
    item = knowledge.find(item_id)
    if item is None or not in_scope(knowledge, item_id, scope):
        raise not_found(item_id)
    return item


def in_scope(knowledge: KnowledgeTree, item_id: str, scope: set[str]) -> bool:
    from hivematrix.knowledgetree.context import ancestry

    return any(crumb.id in scope for crumb in ancestry(knowledge, item_id))


def item_dict(item: Item, *, content: bool = True) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": item.id, "name": item.name, "type": item.type, "is_folder": item.is_folder,
        "parent_id": item.parent_id, "content_format": item.content_format,
        "is_attached": item.is_attached, "read_only": item.read_only, "source": item.source,
        "account_number": item.account_number, "metadata": item.metadata,
        "created_at": item.created_at, "created_by": item.created_by,
        "updated_at": item.updated_at, "updated_by": item.updated_by,
    }
    if content:
        data["content"] = item.content
    return data


def file_dict(stored: StoredFile) -> dict[str, Any]:
    return {"id": stored.id, "item_id": stored.item_id,
            "filename": stored.original_filename, "content_type": stored.content_type,
            "size": stored.size, "created_at": stored.created_at,
            "created_by": stored.created_by,
            "url": f"/api/items/{stored.item_id}/attachments/{stored.id}"}


def folder_dict(node: FolderNode) -> dict[str, Any]:
    return {"id": node.id, "name": node.name, "is_attached": node.is_attached,
            "read_only": node.read_only, "children": [folder_dict(c) for c in node.children]}


def blueprints() -> list[APIBlueprint]:
    from hivematrix.knowledgetree.api.admin import bp as admin
    from hivematrix.knowledgetree.api.attachments import bp as attachments
    from hivematrix.knowledgetree.api.context import bp as context
    from hivematrix.knowledgetree.api.items import bp as items
    from hivematrix.knowledgetree.api.search import bp as search
    from hivematrix.knowledgetree.api.sync import bp as sync

    return [items, search, attachments, context, admin, sync]
