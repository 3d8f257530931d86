"""`/api/items` and `/api/folders/tree`: the tree's folders and articles, their revisions."""

from __future__ import annotations

from typing import Any

from apiflask import APIBlueprint

from hivematrix.common.auth import permission_required, service_allowed
from hivematrix.knowledgetree.api import (
    ARTICLE_WRITER_SERVICES,
    READER_SERVICES,
    READERS,
    WRITERS,
    Refused,
    actor,
    client_folders,
    folder_dict,
    is_service,
    item_dict,
    permission_level,
    readable,
    refusals,
    tree,
)
from hivematrix.knowledgetree.api.schemas import (
    CrumbOut,
    DeletedOut,
    FolderOut,
    ItemIn,
    ItemOut,
    ItemPatch,
    ItemSummaryOut,
    MoveIn,
    RevisionOut,
)
from hivematrix.knowledgetree.context import ancestry
from hivematrix.knowledgetree.items import FolderNode, NameTaken

bp = APIBlueprint("knowledgetree_items", __name__, tag="Items")


def _check_account_number(data: dict[str, Any]) -> None:
    # The account number decides which client users see a folder: admins only.
    if data.get("account_number") is not None and permission_level() != "admin":
        raise Refused("only administrators file a folder under an account number",
                      "account_number")


def _service_articles_only(kind: str) -> None:
    if is_service() and kind != "article":
        raise Refused("services write articles only", "type")


@bp.post("/api/items")
@bp.doc(summary="Create a folder or an article",
        description="Admins and technicians; Brainhair creates articles. `parent_id` must be "
                    "a folder (or `root`); sibling names are unique (409 with `existing_id`). "
                    "`account_number` (admins only) files a folder under a company.",
        responses={201: "The new item", 400: "A field is invalid (named)",
                   403: "Not allowed", 404: "No such parent", 409: "The name is taken"})
@permission_required(*WRITERS)
@service_allowed(*ARTICLE_WRITER_SERVICES)
@bp.input(ItemIn, location="json", arg_name="data")
@bp.output(ItemOut, status_code=201)
@refusals
def create_item(data: dict[str, Any]) -> Any:
    knowledge = tree()
    _service_articles_only(data["type"])
    _check_account_number(data)
    item = knowledge.create(
        data["parent_id"], data["name"], data["type"], by=actor(), content=data["content"],
        content_format=data["content_format"], is_attached=data["is_attached"],
        account_number=data.get("account_number"), metadata=data["metadata"])
    return item_dict(item)


@bp.get("/api/items/<item_id>")
@bp.doc(summary="One item with its content",
        description="`root` is the tree's root. Client users see their company's subtree only.")
@permission_required(*READERS)
@service_allowed(*READER_SERVICES)
@bp.output(ItemOut)
@refusals
def get_item(item_id: str) -> Any:
    return item_dict(readable(tree(), item_id))


@bp.patch("/api/items/<item_id>")
@bp.doc(summary="Change an item",
        description="Send only what changes. Renames keep sibling names unique (409). An "
                    "article's previous version becomes a revision. Read-only (synced) items "
                    "answer 403.")
@permission_required(*WRITERS)
@service_allowed(*ARTICLE_WRITER_SERVICES)
@bp.input(ItemPatch, location="json", arg_name="data")
@bp.output(ItemOut)
@refusals
def update_item(item_id: str, data: dict[str, Any]) -> Any:
    knowledge = tree()
    _service_articles_only(knowledge.get(item_id).type)
    _check_account_number(data)
    item = knowledge.update(
        item_id, by=actor(), name=data.get("name"), content=data.get("content"),
        content_format=data.get("content_format"), is_attached=data.get("is_attached"),
        metadata=data.get("metadata"), account_number=data.get("account_number"))
    return item_dict(item)


@bp.delete("/api/items/<item_id>")
@bp.doc(summary="Delete an item and its whole subtree",
        description="Files and revisions go too. Root cannot be deleted (400); a subtree "
                    "holding synced items cannot (403).")
@permission_required(*WRITERS)
@bp.output(DeletedOut)
@refusals
def delete_item(item_id: str) -> Any:
    return {"deleted": tree().delete(item_id, by=actor())}


@bp.get("/api/items/<item_id>/children")
@bp.doc(summary="Direct children", description="Folders first, then by name; no content.")
@permission_required(*READERS)
@service_allowed(*READER_SERVICES)
@bp.output(ItemSummaryOut(many=True))
@refusals
def children(item_id: str) -> Any:
    knowledge = tree()
    readable(knowledge, item_id)
    return [item_dict(child, content=False) for child in knowledge.children(item_id)]


@bp.get("/api/items/<item_id>/breadcrumbs")
@bp.doc(summary="The path from root to the item", description="Root first, the item last.")
@permission_required(*READERS)
@service_allowed(*READER_SERVICES)
@bp.output(CrumbOut(many=True))
@refusals
def breadcrumbs(item_id: str) -> Any:
    knowledge = tree()
    readable(knowledge, item_id)
    return [{"id": crumb.id, "name": crumb.name} for crumb in ancestry(knowledge, item_id)]


@bp.post("/api/items/<item_id>/move")
@bp.doc(summary="Move an item under another folder",
        description="Refused: root (400), into itself or its subtree (400), a name taken at "
                    "the target (409), read-only items (403).")
@permission_required(*WRITERS)
@bp.input(MoveIn, location="json", arg_name="data")
@bp.output(ItemOut)
@refusals
def move_item(item_id: str, data: dict[str, Any]) -> Any:
    try:
        return item_dict(tree().move(item_id, data["new_parent_id"], by=actor()))
    except NameTaken as exc:
        exc.field = "new_parent_id"  # the item's name is taken there: the target is at fault
        raise


@bp.get("/api/items/<item_id>/revisions")
@bp.doc(summary="An article's previous versions", description="Newest first, the last 20.")
@permission_required(*READERS)
@service_allowed(*READER_SERVICES)
@bp.output(RevisionOut(many=True))
@refusals
def revisions(item_id: str) -> Any:
    knowledge = tree()
    readable(knowledge, item_id)
    return [{"id": rev.id, "number": rev.number, "name": rev.name, "content": rev.content,
             "content_format": rev.content_format, "written_at": rev.written_at,
             "written_by": rev.written_by, "replaced_at": rev.replaced_at}
            for rev in knowledge.revisions(item_id)]


@bp.post("/api/items/<item_id>/revisions/<revision_id>/restore")
@bp.doc(summary="Bring back a revision's content",
        description="The name stays; the content it replaces becomes a revision in turn.")
@permission_required(*WRITERS)
@bp.output(ItemOut)
@refusals
def restore_revision(item_id: str, revision_id: str) -> Any:
    return item_dict(tree().restore(item_id, revision_id, by=actor()))


def _pruned(node: FolderNode, scope: set[str]) -> FolderNode | None:
    """The tree cut down to the scope's folders, their subtrees and the path to them."""
    if node.id in scope:
        return node
    kept = [pruned for child in node.children if (pruned := _pruned(child, scope))]
    if not kept:
        return None
    return FolderNode(id=node.id, name=node.name, is_attached=node.is_attached,
                      read_only=node.read_only, children=kept)


@bp.get("/api/folders/tree")
@bp.doc(summary="Every folder, nested",
        description="Root with its folders, each level by name. Client users get the path "
                    "to their company's folder and its subtree only.")
@permission_required(*READERS)
@service_allowed(*READER_SERVICES)
@bp.output(FolderOut)
@refusals
def folder_tree() -> Any:
    knowledge = tree()
    top = knowledge.folder_tree()
    scope = client_folders(knowledge)
    if scope is not None:
        top = _pruned(top, scope) or FolderNode(id=top.id, name=top.name, is_attached=False,
                                                read_only=top.read_only)
    return folder_dict(top)
