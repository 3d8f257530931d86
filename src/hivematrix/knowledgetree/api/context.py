"""`/api/context/...`: markdown context for the assistant, within a character budget."""

from __future__ import annotations

from typing import Any

from apiflask import APIBlueprint
from flask import current_app

from hivematrix.common.auth import permission_required, service_allowed
from hivematrix.knowledgetree import context
from hivematrix.knowledgetree.api import (
    READER_SERVICES,
    READERS,
    client_account,
    client_folders,
    not_found,
    readable,
    refusals,
    tree,
)
from hivematrix.knowledgetree.api.schemas import ContextIn, ContextOut, ContextQuery

bp = APIBlueprint("knowledgetree_context", __name__, tag="Context")

SHAPE = ("Answer: `context` (markdown), `chars`, `budget`, `truncated` (something did not "
         "fit), `sources` (the items used: id, name, folder path, `cut` when only their start "
         "fit).")


def _budget(args: dict[str, Any]) -> int:
    config = current_app.config
    raw = args.get("max_chars")
    return context.check_budget(int(config["KT_CONTEXT_DEFAULT_CHARS"]) if raw is None else raw,
                                int(config["KT_CONTEXT_MAX_CHARS"]))


def _item_context(item_id: str, args: dict[str, Any]) -> Any:
    knowledge = tree()
    readable(knowledge, item_id)
    built = context.item_context(knowledge, item_id, budget=_budget(args),
                                 excluded_ids=args["excluded_ids"],
                                 floor_ids=client_folders(knowledge))
    return context.to_dict(built)


ITEM_DOC = ("For every folder from root to the item: its articles, and every article inside "
            "its attached child folders (`attached_folders` lists them; leave some out with "
            "`excluded_ids`); then the item's attachments. The levels nearest the item are "
            "kept first when the budget (`max_chars`, default `KT_CONTEXT_DEFAULT_CHARS`, at "
            "most `KT_CONTEXT_MAX_CHARS`) runs out. " + SHAPE)


@bp.get("/api/context/<item_id>")
@bp.doc(summary="Context around an item", description=ITEM_DOC)
@permission_required(*READERS)
@service_allowed(*READER_SERVICES)
@bp.input(ContextQuery, location="query", arg_name="args")
@bp.output(ContextOut)
@refusals
def item_context_get(item_id: str, args: dict[str, Any]) -> Any:
    return _item_context(item_id, args)


@bp.post("/api/context/<item_id>")
@bp.doc(summary="Context around an item (options in the body)", description=ITEM_DOC)
@permission_required(*READERS)
@service_allowed(*READER_SERVICES)
@bp.input(ContextIn, location="json", arg_name="args")
@bp.output(ContextOut)
@refusals
def item_context_post(item_id: str, args: dict[str, Any]) -> Any:
    return _item_context(item_id, args)


@bp.get("/api/context/for-company/<account_number>")
@bp.doc(summary="Everything filed about one company",
        description="Every article under the folder(s) whose `account_number` is this one "
                    "(synced contacts, assets and tickets, and what people filed beside them), "
                    "in tree order, each under a heading with its path and `[id: ...]`; "
                    "`excluded_ids` leaves items or folders out; `folders` lists the company "
                    "folders. Client users ask for their own company only. " + SHAPE)
@permission_required(*READERS)
@service_allowed(*READER_SERVICES)
@bp.input(ContextQuery, location="query", arg_name="args")
@bp.output(ContextOut)
@refusals
def company_context(account_number: str, args: dict[str, Any]) -> Any:
    account = client_account()
    if account is not None and account != account_number:
        raise not_found(account_number)
    built = context.company_context(tree(), account_number, budget=_budget(args),
                                    excluded_ids=args["excluded_ids"])
    return context.to_dict(built)
