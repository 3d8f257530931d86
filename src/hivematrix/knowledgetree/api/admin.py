"""`/api/export`, `/api/import` and `/api/admin/...`: the whole tree at once."""

from __future__ import annotations

from typing import Any

from apiflask import APIBlueprint
from flask import Response, current_app, json, request

from hivematrix.common.auth import admin_required, permission_required, service_allowed
from hivematrix.knowledgetree import admin
from hivematrix.knowledgetree.api import STAFF, actor, readable, refusals, tree
from hivematrix.knowledgetree.api.schemas import (
    CountsOut,
    ExportQuery,
    ImportIn,
    ImportOut,
    ImportQuery,
    WipeIn,
    WipeOut,
)
from hivematrix.knowledgetree.items import KnowledgeError

bp = APIBlueprint("knowledgetree_admin", __name__, tag="Admin")


@bp.before_request
def larger_body_for_imports() -> None:
    # A whole tree's export is larger than any upload; only this (admin-only) route takes it,
    # and its body is read after the caller was checked.
    if request.endpoint == "knowledgetree_admin.import_items":
        request.max_content_length = int(current_app.config["KT_MAX_IMPORT_BYTES"])


@bp.get("/api/export")
@bp.doc(summary="The tree (or one folder's subtree) as JSON",
        description="Staff. Names, types, content and its format, attached and read-only "
                    "flags, account numbers and metadata, nested; what `/api/import` takes "
                    "back. Ids, dates and files are not part of it.")
@permission_required(*STAFF)
@bp.input(ExportQuery, location="query", arg_name="args")
@refusals
def export(args: dict[str, Any]) -> Any:
    knowledge = tree()
    readable(knowledge, args["item_id"], "item_id")
    document = admin.export_document(knowledge, args["item_id"])
    return Response(json.dumps(document), mimetype="application/json", headers={
        "Content-Disposition": 'attachment; filename="knowledgetree-export.json"'})


@bp.post("/api/import")
@bp.doc(summary="Create items from an export",
        description="Admins. Body: an export document (or `{\"items\": [...]}`), optional "
                    "`parent_id` (default root). All or nothing: a bad entry or a top-level "
                    "name already used under the parent refuses everything, naming the entry "
                    "(`items[2].children[0].name`). `dry_run` (body or query) checks and "
                    "counts without writing. Synced (read-only) items come back as they were.")
@admin_required
@bp.input(ImportQuery, location="query", arg_name="query")
@bp.input(ImportIn, location="json", arg_name="data")
@bp.output(ImportOut)
@refusals
def import_items(query: dict[str, Any], data: dict[str, Any]) -> Any:
    knowledge = tree()
    dry_run = bool(query["dry_run"] or data["dry_run"])
    # An administrator restoring an export restores what the sync wrote as well.
    report = admin.check_import(knowledge, data["parent_id"], data["items"], by=actor(),
                                allow_read_only=True)
    if dry_run:
        return {"dry_run": True, "created": 0, **report}
    created = knowledge.import_items(data["parent_id"], data["items"], by=actor(),
                                     allow_read_only=True)
    return {"dry_run": False, "created": created, **report}


@bp.post("/api/admin/wipe")
@bp.doc(summary="Delete everything under root",
        description="Admins only (never a service). Body `{\"confirm\": \"WIPE\"}`. Synced "
                    "items, files and revisions go too; root stays. Answers the counts before.")
@admin_required
@bp.input(WipeIn, location="json", arg_name="data")
@bp.output(WipeOut)
@refusals
def wipe(data: dict[str, Any]) -> Any:
    if data["confirm"] != admin.WIPE_PHRASE:
        raise KnowledgeError(f"type {admin.WIPE_PHRASE} to confirm", "confirm")
    return {"wiped": admin.wipe(tree(), by=actor())}


@bp.get("/api/admin/counts")
@bp.doc(summary="How many folders, articles and files")
@permission_required(*STAFF)
@service_allowed("helm")
@bp.output(CountsOut)
@refusals
def counts() -> Any:
    return tree().counts()
