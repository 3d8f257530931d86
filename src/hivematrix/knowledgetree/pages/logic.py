"""What the pages need beyond the model, as plain functions (no Flask): the saved grid/list
view, highlighted snippets, the folder picker, and an import waiting for its confirmation.

The grid/list preference: Codex's agent row has no field for it (only ``theme`` and
``home_page``; ``PATCH /api/agents/me`` refuses other fields), so it is kept in the graph, one
``ViewPreference`` node per user subject, beside the sync's lease. It follows the user across
browsers and devices like Codex's settings would.
"""

from __future__ import annotations

import contextlib
import re
import secrets
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from hivematrix.knowledgetree.graph import GraphError, GraphStore
from hivematrix.knowledgetree.items import Crumb, FolderNode

VIEWS = ("grid", "list")
DEFAULT_VIEW = "grid"


def saved_view(store: GraphStore, subject: str) -> str:
    """The user's explorer view; the default when they never chose one."""
    try:
        rows = store.query("MATCH (p:ViewPreference {subject: $subject}) RETURN p.view AS view",
                           {"subject": subject})
    except GraphError as exc:
        if "empty key" not in str(exc):
            raise
        rows = []  # FalkorDB: a graph with nothing in it yet
    view = rows[0]["view"] if rows else None
    return view if view in VIEWS else DEFAULT_VIEW


def save_view(store: GraphStore, subject: str, view: str) -> str:
    """:raises ValueError: ``view`` is not one of :data:`VIEWS`."""
    if view not in VIEWS:
        raise ValueError(f"must be one of {', '.join(VIEWS)}")
    store.write("MERGE (p:ViewPreference {subject: $subject}) SET p.view = $view",
                {"subject": subject, "view": view})
    return view


@dataclass(frozen=True)
class Piece:
    text: str
    marked: bool


def marked(snippet: str, highlights: Iterable[tuple[int, int] | list[int]]) -> list[Piece]:
    """The snippet cut into plain and highlighted pieces (overlaps merged, bad spans skipped),
    for a template to escape piece by piece."""
    spans: list[tuple[int, int]] = []
    for start, end in sorted((int(s), int(e)) for s, e in highlights):
        start, end = max(0, start), min(len(snippet), end)
        if start >= end:
            continue
        if spans and start <= spans[-1][1]:
            spans[-1] = (spans[-1][0], max(end, spans[-1][1]))
        else:
            spans.append((start, end))
    pieces: list[Piece] = []
    at = 0
    for start, end in spans:
        if start > at:
            pieces.append(Piece(snippet[at:start], False))
        pieces.append(Piece(snippet[start:end], True))
        at = end
    if at < len(snippet):
        pieces.append(Piece(snippet[at:], False))
    return pieces


@dataclass(frozen=True)
class Choice:
    id: str
    label: str
    depth: int


def folder_choices(top: FolderNode, moving_id: str | None = None) -> list[Choice]:
    """Every folder as a flat, indented list for a "move to" picker; the moving item's own
    subtree is left out (the model refuses a move into it anyway)."""
    found: list[Choice] = []

    def walk(node: FolderNode, depth: int) -> None:
        if node.id == moving_id:
            return
        found.append(Choice(node.id, "\u2014 " * depth + node.name, depth))
        for child in node.children:
            walk(child, depth + 1)

    walk(top, 0)
    return found


def pruned(node: FolderNode, scope: set[str]) -> FolderNode | None:
    """The folder tree cut down to the scope's folders, their subtrees and the path to them."""
    if node.id in scope:
        return node
    kept = [cut for child in node.children if (cut := pruned(child, scope))]
    if not kept:
        return None
    return FolderNode(id=node.id, name=node.name, is_attached=node.is_attached,
                      read_only=node.read_only, children=kept)


def visible_crumbs(crumbs: list[Crumb], scope: set[str] | None) -> list[Crumb]:
    """The breadcrumb a user may follow: all of it for staff, from their company's folder
    down for a client user (the levels above are not theirs to open)."""
    if scope is None:
        return crumbs
    for index, crumb in enumerate(crumbs):
        if crumb.id in scope:
            return crumbs[index:]
    return []


_TOKEN = re.compile(r"[0-9a-f]{32}")


class PendingImports:
    """Import documents between the dry run and the confirmation, one file each under a
    random token (kept in the admin's session, never in a URL or a form another admin sees)."""

    def __init__(self, folder: Path | None = None) -> None:
        self.folder = folder or Path(tempfile.gettempdir()) / "hivematrix-kt-imports"

    def _path(self, token: str) -> Path:
        if not _TOKEN.fullmatch(token or ""):
            raise KeyError(token)
        return self.folder / f"{token}.json"

    def put(self, data: bytes) -> str:
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        token = secrets.token_hex(16)
        self._path(token).write_bytes(data)
        return token

    def get(self, token: str) -> bytes:
        """:raises KeyError: no such pending import (never stored, or already used)."""
        path = self._path(token)
        if not path.is_file():
            raise KeyError(token)
        return path.read_bytes()

    def drop(self, token: str) -> None:
        with contextlib.suppress(KeyError):  # not a token: nothing of ours to remove
            self._path(token).unlink(missing_ok=True)
