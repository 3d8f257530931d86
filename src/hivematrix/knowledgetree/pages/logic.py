"""What the pages need beyond the model, as plain functions (no Flask): the saved grid/list
view, highlighted snippets, the folder picker, and an import waiting for its confirmation.

The grid/list preference is the staff member's Codex setting ``knowledge_tree_view``, read
and written at ``/api/my/settings`` with the user's own token (Codex answers for that user
only). Codex's values are the platform's (grid, tree, hierarchy); KnowledgeTree draws two
layouts, so grid is the card grid and both tree and hierarchy are the list, and choosing
"list" stores "tree" unless the setting already shows as a list (a "hierarchy" chosen in Codex
is kept). When Codex cannot keep the choice (not installed, down, or the user is a client user,
who is no Codex agent) it is kept in the browser session only, and the page says so to staff.
"""
from __future__ import annotations

import contextlib
import logging
import re
import secrets
import tempfile
from collections.abc import Iterable, Mapping, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from hivematrix.knowledgetree.items import Crumb, FolderNode

log = logging.getLogger("hivematrix.knowledgetree.pages")

VIEWS = ("grid", "list")
DEFAULT_VIEW = "grid"
#: Codex's value for each of KnowledgeTree's views, and KnowledgeTree's for each of Codex's.
TO_CODEX = {"grid": "grid", "list": "tree"}
FROM_CODEX = {"grid": "grid", "tree": "list", "hierarchy": "list"}
#: Where a choice Codex could not keep waits, in the browser session.
SESSION_KEY = "kt_view"
SETTINGS_PATH = "/api/my/settings"
CODEX_TIMEOUT = httpx.Timeout(3.0, connect=1.0)


class CodexSettings:
    """The signed-in user's Codex settings, reached with their own bearer token.

    ``base_url`` is None when Codex is not installed; ``token`` None when there is no user
    token to forward. Every failure reads as "unavailable" (None / False): a page never fails
    because Codex did.
    """

    def __init__(self, http: httpx.Client, base_url: str | None, token: str | None,
                 headers: Mapping[str, str] | None = None) -> None:
        self.http = http
        self.base_url = base_url.rstrip("/") if base_url else None
        self.token = token
        self.headers = dict(headers or {})

    def _send(self, method: str, body: dict[str, str] | None = None) -> dict[str, Any] | None:
        if self.base_url is None or not self.token:
            return None
        try:
            response = self.http.request(
                method, f"{self.base_url}{SETTINGS_PATH}", json=body, timeout=CODEX_TIMEOUT,
                headers={**self.headers, "Authorization": f"Bearer {self.token}",
                         "Accept": "application/json"})
        except httpx.HTTPError as exc:
            log.warning(f"Codex settings unavailable: {exc}")
            return None
        if response.status_code != 200:
            if response.status_code != 403:  # 403: a client user, who is no agent
                log.warning(f"Codex answered {response.status_code} for the settings")
            return None
        try:
            answer = response.json()
        except ValueError:
            return None
        return answer if isinstance(answer, dict) else None

    def view(self) -> str | None:
        """KnowledgeTree's view for the user's Codex setting; None when Codex cannot say."""
        answer = self._send("GET")
        if answer is None:
            return None
        return FROM_CODEX.get(str(answer.get("knowledge_tree_view")), DEFAULT_VIEW)

    def save_view(self, view: str) -> bool:
        """Store ``view`` in Codex; whether Codex kept it."""
        current = self.view()
        if current is None:
            return False
        if current == view:
            return True  # already shown this way: keep the exact Codex value (hierarchy)
        answer = self._send("PUT", {"knowledge_tree_view": TO_CODEX[view]})
        return answer is not None and FROM_CODEX.get(
            str(answer.get("knowledge_tree_view"))) == view


def saved_view(codex: CodexSettings, held: Mapping[str, Any], who: str) -> str:
    """The explorer view of user ``who`` (their token's subject): a choice waiting in the
    session, else Codex's, else the default."""
    waiting = held.get(SESSION_KEY)
    # Held with the subject, so a session that changes hands never carries a choice over.
    if isinstance(waiting, list) and len(waiting) == 2 and waiting[0] == who and \
            waiting[1] in VIEWS:
        return str(waiting[1])
    return codex.view() or DEFAULT_VIEW


def save_view(codex: CodexSettings, held: MutableMapping[str, Any], who: str,
              view: str) -> bool:
    """Keep ``view`` in Codex, else in the session; whether Codex kept it.

    :raises ValueError: ``view`` is not one of :data:`VIEWS`.
    """
    if view not in VIEWS:
        raise ValueError(f"must be one of {', '.join(VIEWS)}")
    if codex.save_view(view):
        held.pop(SESSION_KEY, None)
        return True
    held[SESSION_KEY] = [who, view]
    return False


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
