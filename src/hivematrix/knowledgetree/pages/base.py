"""What every KnowledgeTree page shares: the blueprint, who may do what, rendering.

Who may do what is the API's (:mod:`hivematrix.knowledgetree.api`): admins and technicians
write, billing reads, client users read their company's subtree only (404 elsewhere), the admin
page is for admins. The model refuses read-only (synced) items whatever a page offers.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from apiflask import APIBlueprint
from flask import current_app, g, render_template, session

from hivematrix.common.auth import bearer_token
from hivematrix.common.logging import CORRELATION_HEADER, current_correlation_id
from hivematrix.common.service_client import ServiceCallError
from hivematrix.knowledgetree.api import WRITERS, client_folders, permission_level, tree
from hivematrix.knowledgetree.items import Item, KnowledgeTree
from hivematrix.knowledgetree.pages import logic

bp = APIBlueprint("knowledgetree_pages", __name__, enable_openapi=False)

#: Form fields for an article's content are at most this long (a whole-tree import aside,
#: nothing a person types is bigger).
MAX_CONTENT = 2_000_000
#: Codex's agents (its settings are theirs); client users are not among them.
STAFF = ("admin", "technician", "billing")


@bp.app_template_filter("epoch_time")
def epoch_time(seconds: float | int | None) -> str:
    """Seconds since the epoch (the sync lease's times) as ISO 8601 UTC, for ``ui.when``."""
    if seconds is None:
        return ""
    return datetime.fromtimestamp(float(seconds), UTC).isoformat(timespec="seconds")


def level() -> str:
    return permission_level() or ""


def can_write() -> bool:
    return level() in WRITERS


def editable(item: Item) -> bool:
    """Edit controls are offered for this item (the model decides anyway)."""
    return can_write() and not item.read_only and item.type != "root"


def subject() -> str:
    user: dict[str, Any] = getattr(g, "user", None) or {}
    return str(user.get("sub") or "")


def codex_settings() -> logic.CodexSettings:
    """The signed-in user's Codex settings, asked with their own token (forwarded by Nexus).

    Client users are no Codex agents (Codex refuses them), so they are not asked about.
    """
    client = current_app.extensions["hivematrix.service_client"]
    try:
        base: str | None = client.base_url("codex")
    except ServiceCallError:
        base = None  # Codex is not installed
    correlation = current_correlation_id()
    return logic.CodexSettings(client.http, base,
                               bearer_token() if level() in STAFF else None,
                               {CORRELATION_HEADER: correlation} if correlation else None)


def view() -> str:
    return logic.saved_view(codex_settings(), session, subject())


def render(template: str, status: int = 200, **context: Any) -> tuple[str, int]:
    """A page, with what the navigation and the permission checks in templates need."""
    page = render_template(template, user=g.user, level=level(), can_write=can_write(),
                           is_admin=level() == "admin", **context)
    return page, status


def scope(knowledge: KnowledgeTree) -> set[str] | None:
    return client_folders(knowledge)


def folder_tree(knowledge: KnowledgeTree) -> Any:
    """The folder tree this user may see (a client's: the path to their company's folder)."""
    top = knowledge.folder_tree()
    found = scope(knowledge)
    if found is None:
        return top
    return logic.pruned(top, found)


def pending_imports() -> logic.PendingImports:
    """Where imports wait for their confirmation (``KT_PENDING_IMPORTS_DIR``, else
    ``$HIVEMATRIX_HOME/knowledgetree/pending-imports``): client data, kept with the rest."""
    folder = current_app.config.get("KT_PENDING_IMPORTS_DIR")
    return logic.PendingImports(Path(folder) if folder else Path(
        current_app.config["HIVEMATRIX_HOME"]) / "knowledgetree" / "pending-imports")


def knowledge() -> KnowledgeTree:
    return tree()
