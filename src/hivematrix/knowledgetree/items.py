"""KnowledgeTree's model: folders and articles in one tree, their files and revisions.

Graph shape::

    (:ContextItem)-[:PARENT_OF]->(:ContextItem)      the tree; root has no parent
    (:ContextItem)-[:HAS_FILE]->(:File)              attachments (bytes under ``files_dir``)
    (:ContextItem)-[:HAS_REVISION]->(:Revision)      an article's previous versions (last 20)

Invariants, all checked by the statement that writes (see :mod:`.graph` on atomicity):
sibling names are unique (compared case-insensitively, so a path is never ambiguous), a child
lives only under a folder (or root) that exists, root is never deleted or moved, a move never
makes a folder its own descendant, deleting a subtree deletes its files from disk, and a
``read_only`` item (written by the Codex sync) changes only with ``allow_read_only=True``.

Concurrency. Sibling-name uniqueness is a database guarantee, not a check-then-write: every
item carries ``sibling_key`` (its parent's id, ``/``, its folded name) under a unique
constraint, which both FalkorDB and Neo4j enforce against concurrent writers; a refused write
is reported as :class:`NameTaken`. Structural writes (create, move, delete) also touch root's
``tree_version`` first: FalkorDB runs write queries one at a time anyway, and on Neo4j that
write lock on root serialises them, so two concurrent moves cannot build a cycle between them.
"""

from __future__ import annotations

import html
import json
import logging
import re
import threading
import time
import unicodedata
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hivematrix.knowledgetree.graph import (
    ConstraintViolation,
    GraphStore,
    Row,
    Schema,
    search_terms,
)
from hivematrix.knowledgetree.search_index import (
    Changes,
    IndexDoc,
    SearchIndex,
    SearchIndexError,
)

log = logging.getLogger("hivematrix.knowledgetree.items")

ROOT_ID = "root"
ROOT_NAME = "KnowledgeTree"
TYPES = ("root", "folder", "article")
FORMATS = ("markdown", "html")
SOURCES = ("manual", "codex")
MAX_REVISIONS = 20
MAX_NAME = 255
SEARCH_LIMIT_MAX = 100
#: A scoped search lists the subtree's nodes up to this many (see :meth:`KnowledgeTree.search`).
SCOPE_LIST_MAX = 256
#: A title that is exactly the query outranks any full-text score.
EXACT_TITLE_BONUS = 1000.0

ITEM_SCHEMA = Schema(label="ContextItem", indexed=("id", "name_key"),
                     unique=("id", "sibling_key"), fulltext=("name", "content"),
                     weights={"name": 4.0})
FILE_SCHEMA = Schema(label="File", indexed=("id",), unique=("id",))
REVISION_SCHEMA = Schema(label="Revision", indexed=("id",), unique=("id",))

_NAME_FORBIDDEN = re.compile(r"[/\\\x00-\x1f\x7f]")
_TAG = re.compile(r"<[^>]*>")
_SPACE = re.compile(r"\s+")
_EXTENSION = re.compile(r"\.[A-Za-z0-9]{1,10}\Z")

_LOCK_TREE = ("MATCH (lock:ContextItem {id: $root}) "
              "SET lock.tree_version = coalesce(lock.tree_version, 0) + 1 WITH lock ")


class KnowledgeError(Exception):
    """A refused operation; ``field`` names the input at fault, ``status`` the HTTP answer."""

    status = 400

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class NotFound(KnowledgeError):
    status = 404


class NameTaken(KnowledgeError):
    status = 409

    def __init__(self, message: str, existing_id: str | None = None) -> None:
        super().__init__(message, "name")
        self.existing_id = existing_id


class ReadOnly(KnowledgeError):
    status = 403


class RootProtected(KnowledgeError):
    status = 400


class MoveCycle(KnowledgeError):
    status = 400


@dataclass(frozen=True)
class Item:
    id: str
    name: str
    type: str
    parent_id: str | None
    content: str = ""
    content_format: str = "markdown"
    is_attached: bool = False
    read_only: bool = False
    source: str = "manual"
    account_number: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    created_at: str = ""
    created_by: str = ""
    updated_at: str = ""
    updated_by: str = ""

    @property
    def is_folder(self) -> bool:
        return self.type != "article"


@dataclass(frozen=True)
class Revision:
    id: str
    number: int
    name: str
    content: str
    content_format: str
    #: When and by whom this version had been written (it was replaced at ``replaced_at``).
    written_at: str
    written_by: str
    replaced_at: str


@dataclass(frozen=True)
class StoredFile:
    id: str
    item_id: str
    original_filename: str
    stored_name: str
    content_type: str
    size: int
    created_at: str
    created_by: str


@dataclass(frozen=True)
class Crumb:
    id: str
    name: str


@dataclass(frozen=True)
class SearchHit:
    item: Item
    score: float
    snippet: str
    #: ``(start, end)`` offsets into ``snippet`` of the words that matched.
    highlights: list[tuple[int, int]]
    #: The folders from root down to the item's parent.
    path: list[Crumb]


@dataclass(frozen=True)
class SearchPage:
    total: int
    offset: int
    limit: int
    hits: list[SearchHit]


@dataclass
class FolderNode:
    id: str
    name: str
    is_attached: bool
    read_only: bool
    children: list[FolderNode] = field(default_factory=list)


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


def clean_name(name: object, field_name: str = "name") -> str:
    """A name as stored: NFC, trimmed; refused when empty, too long or holding ``/``, ``\\``
    or control characters (a name is a path segment)."""
    if not isinstance(name, str):
        raise KnowledgeError("the name must be text", field_name)
    cleaned = unicodedata.normalize("NFC", name).strip()
    if not cleaned:
        raise KnowledgeError("the name must not be empty", field_name)
    if len(cleaned) > MAX_NAME:
        raise KnowledgeError(f"the name is longer than {MAX_NAME} characters", field_name)
    if _NAME_FORBIDDEN.search(cleaned):
        raise KnowledgeError("the name must not contain /, \\ or control characters",
                             field_name)
    return cleaned


def name_key(name: str) -> str:
    """How sibling names are compared: case and width folded."""
    return unicodedata.normalize("NFKC", name).casefold()


def _choice(value: str, allowed: tuple[str, ...], field_name: str) -> str:
    if value not in allowed:
        raise KnowledgeError(f"{field_name} must be one of {', '.join(allowed)}", field_name)
    return value


_ITEM_PROPERTIES = ("id", "name", "type", "content", "content_format", "is_attached",
                    "read_only", "source", "account_number", "metadata", "created_at",
                    "created_by", "updated_at", "updated_by")


def _columns(variable: str) -> str:
    """An item's properties as columns, which :func:`_item` reads like ``properties()``:
    FalkorDB's client decodes a map value by value in Python, columns in bulk (a listing of
    2,000 articles comes back two to three times faster)."""
    return ", ".join(f"{variable}.{name} AS {name}" for name in _ITEM_PROPERTIES)


def _item(row: Mapping[str, Any], parent_id: str | None) -> Item:
    metadata = row.get("metadata")
    return Item(
        id=row["id"], name=row["name"], type=row["type"], parent_id=parent_id,
        content=row.get("content") or "", content_format=row.get("content_format") or "markdown",
        is_attached=bool(row.get("is_attached")), read_only=bool(row.get("read_only")),
        source=row.get("source") or "manual", account_number=row.get("account_number"),
        metadata=json.loads(metadata) if metadata else {},
        created_at=row.get("created_at") or "", created_by=row.get("created_by") or "",
        updated_at=row.get("updated_at") or "", updated_by=row.get("updated_by") or "")


def plain_text(content: str, content_format: str) -> str:
    """Content without markup, for snippets."""
    text = html.unescape(_TAG.sub(" ", content)) if content_format == "html" else content
    return _SPACE.sub(" ", text).strip()


def snippet(text: str, terms: list[str], width: int = 160) -> tuple[str, list[tuple[int, int]]]:
    """A window of ``text`` around the first matched word, and where the words are in it."""
    folded = text.casefold()
    positions = [folded.find(term) for term in terms if term and term in folded]
    first = min(positions) if positions else 0
    start = max(0, first - width // 4)
    if start:
        space = text.find(" ", start)
        start = space + 1 if 0 <= space < first else start
    window = text[start:start + width]
    prefix = "…" if start else ""
    suffix = "…" if start + width < len(text) else ""
    shown = prefix + window + suffix
    folded_shown = shown.casefold()
    spans: list[tuple[int, int]] = []
    for term in terms:
        at = folded_shown.find(term)
        while term and at >= 0:
            spans.append((at, at + len(term)))
            at = folded_shown.find(term, at + len(term))
    spans.sort()
    merged: list[tuple[int, int]] = []
    for begin, end in spans:
        if merged and begin <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((begin, end))
    return shown, merged


@dataclass
class _Pending:
    """Index work gathered by :meth:`KnowledgeTree.search_batch` (one thread's)."""

    depth: int = 0
    items: set[str] = field(default_factory=set)
    subtrees: set[str] = field(default_factory=set)
    gone: set[str] = field(default_factory=set)
    #: When the last commit of this batch was (``time.monotonic()``).
    flushed: float = 0.0


class KnowledgeTree:
    """The tree over a :class:`GraphStore`; files of attachments live in ``files_dir``.

    With a ``search_index``, every write that succeeded in the graph is then projected into
    it (see :meth:`_reindex`) and :meth:`search` asks it first; without one, or while it is
    not ready, search is the graph's full-text call. ``rebuild_due`` (set by the service's
    :class:`~hivematrix.knowledgetree.settings.TreeHolder`) is called when a search found the
    index unusable.
    """

    def __init__(self, store: GraphStore, files_dir: Path,
                 search_index: SearchIndex | None = None) -> None:
        self.store = store
        self.files_dir = files_dir
        self.search_index = search_index
        self.rebuild_due: Callable[[], object] | None = None
        self._local = threading.local()

    # -- setup ---------------------------------------------------------------------------

    def ensure_ready(self) -> None:
        """Indexes and constraints (operational before anything is written), then root."""
        for schema in (ITEM_SCHEMA, FILE_SCHEMA, REVISION_SCHEMA):
            self.store.ensure_schema(schema)
        stamp = now()
        self.store.write(
            "MERGE (root:ContextItem {id: $root}) "
            "ON CREATE SET root.name = $name, root.name_key = $key, root.type = 'root', "
            "root.content = '', root.content_format = 'markdown', root.is_attached = false, "
            "root.read_only = false, root.source = 'manual', root.created_at = $now, "
            "root.created_by = 'system', root.updated_at = $now, root.updated_by = 'system'",
            {"root": ROOT_ID, "name": ROOT_NAME, "key": name_key(ROOT_NAME), "now": stamp})
        self.files_dir.mkdir(parents=True, exist_ok=True)

    # -- reading -------------------------------------------------------------------------

    def find(self, item_id: str) -> Item | None:
        rows = self.store.query(
            "MATCH (item:ContextItem {id: $id}) "
            "OPTIONAL MATCH (parent:ContextItem)-[:PARENT_OF]->(item) "
            "RETURN properties(item) AS item, parent.id AS parent_id", {"id": item_id})
        return _item(rows[0]["item"], rows[0]["parent_id"]) if rows else None

    def get(self, item_id: str, field_name: str = "id") -> Item:
        item = self.find(item_id)
        if item is None:
            raise NotFound(f"no item {item_id!r}", field_name)
        return item

    def children(self, item_id: str) -> list[Item]:
        """Direct children: folders first, then by name."""
        parent = self.get(item_id)
        rows = self.store.query(
            "MATCH (parent:ContextItem {id: $id})-[:PARENT_OF]->(child:ContextItem) "
            "WITH child, CASE child.type WHEN 'article' THEN 1 ELSE 0 END AS rank "
            f"ORDER BY rank, child.name_key RETURN {_columns('child')}", {"id": item_id})
        return [_item(row, parent.id) for row in rows]

    def breadcrumbs(self, item_id: str) -> list[Crumb]:
        """Root first, the item last; walked up from the item (one parent per level)."""
        rows = self.store.query(
            "MATCH path = (item:ContextItem {id: $id})<-[:PARENT_OF*0..]-(up:ContextItem) "
            "RETURN up.id AS id, up.name AS name, length(path) AS depth ORDER BY depth DESC",
            {"id": item_id})
        if not rows or rows[0]["id"] != ROOT_ID:
            raise NotFound(f"no item {item_id!r}", "id")
        return [Crumb(id=row["id"], name=row["name"]) for row in rows]

    def folder_tree(self) -> FolderNode:
        """Every folder, nested, each level by name; articles left out."""
        root = self.get(ROOT_ID)
        rows = self.store.query(
            "MATCH (parent:ContextItem)-[:PARENT_OF]->(folder:ContextItem) "
            "WHERE folder.type = 'folder' "
            "RETURN parent.id AS parent_id, folder.id AS id, folder.name AS name, "
            "folder.is_attached AS is_attached, folder.read_only AS read_only "
            "ORDER BY folder.name_key")
        top = FolderNode(id=root.id, name=root.name, is_attached=False, read_only=root.read_only)
        nodes = {root.id: top}
        for row in rows:
            nodes[row["id"]] = FolderNode(id=row["id"], name=row["name"],
                                          is_attached=bool(row["is_attached"]),
                                          read_only=bool(row["read_only"]))
        for row in rows:
            parent = nodes.get(row["parent_id"])
            if parent is not None:
                parent.children.append(nodes[row["id"]])
        return top

    # -- creating ------------------------------------------------------------------------

    def create(self, parent_id: str, name: object, type: str, *, by: str,
               content: str = "", content_format: str = "markdown",
               is_attached: bool = False, read_only: bool = False, source: str = "manual",
               account_number: str | None = None, metadata: Mapping[str, Any] | None = None,
               allow_read_only: bool = False) -> Item:
        """A new folder or article under the folder ``parent_id``.

        Only the sync (``allow_read_only``) may create ``read_only`` items; anyone may add
        items to a read-only folder (what a person writes beside generated content).
        """
        cleaned = clean_name(name)
        _choice(type, ("folder", "article"), "type")
        _choice(content_format, FORMATS, "content_format")
        _choice(source, SOURCES, "source")
        if not isinstance(content, str):
            raise KnowledgeError("the content must be text", "content")
        if is_attached and type != "folder":
            raise KnowledgeError("only a folder can be attached", "is_attached")
        if read_only and not allow_read_only:
            raise ReadOnly("read-only items are written by the sync only", "read_only")
        key = name_key(cleaned)
        stamp = now()
        props = {
            "id": str(uuid.uuid4()), "name": cleaned, "name_key": key,
            "sibling_key": f"{parent_id}/{key}", "type": type, "content": content,
            "content_format": content_format, "is_attached": is_attached,
            "read_only": read_only, "source": source, "account_number": account_number,
            "metadata": json.dumps(dict(metadata or {}), sort_keys=True),
            "created_at": stamp, "created_by": by, "updated_at": stamp, "updated_by": by,
        }
        try:
            rows = self.store.write(
                _LOCK_TREE
                + "MATCH (parent:ContextItem {id: $parent_id}) WHERE parent.type <> 'article' "
                "OPTIONAL MATCH (parent)-[:PARENT_OF]->(twin:ContextItem {name_key: $key}) "
                "WITH parent, count(twin) AS twins WHERE twins = 0 "
                "CREATE (parent)-[:PARENT_OF]->(item:ContextItem) SET item = $props "
                "RETURN properties(item) AS item",
                {"root": ROOT_ID, "parent_id": parent_id, "key": key,
                 "props": {k: v for k, v in props.items() if v is not None}})
        except ConstraintViolation:
            rows = []
        if not rows:
            self._refused_child(parent_id, cleaned, "parent_id")
        created = _item(rows[0]["item"], parent_id)
        self._reindex(items=[created.id])
        return created

    def _refused_child(self, parent_id: str, name: str, field_name: str,
                       moving_id: str | None = None) -> None:
        """Why a child ``name`` cannot go under ``parent_id``; raises."""
        parent = self.find(parent_id)
        if parent is None:
            raise NotFound(f"the parent {parent_id!r} does not exist", field_name)
        if not parent.is_folder:
            raise KnowledgeError("an article cannot hold other items", field_name)
        rows = self.store.query(
            "MATCH (:ContextItem {id: $parent_id})-[:PARENT_OF]->"
            "(twin:ContextItem {name_key: $key}) RETURN twin.id AS id",
            {"parent_id": parent_id, "key": name_key(name)})
        twins = [row["id"] for row in rows if row["id"] != moving_id]
        raise NameTaken(f"{parent.name!r} already holds an item named {name!r}",
                        twins[0] if twins else None)

    # -- changing ------------------------------------------------------------------------

    def update(self, item_id: str, *, by: str, name: object | None = None,
               content: str | None = None, content_format: str | None = None,
               is_attached: bool | None = None, metadata: Mapping[str, Any] | None = None,
               account_number: str | None = None,
               allow_read_only: bool = False) -> Item:
        """Change what is given (``None``: unchanged). An article's previous version is kept
        as a revision whenever its name, content or format changes (the last 20 are kept)."""
        current = self.get(item_id)
        if current.read_only and not allow_read_only:
            raise ReadOnly(f"{current.name!r} is generated by the sync and cannot be edited",
                           "id")
        cleaned = None if name is None else clean_name(name)
        if current.type == "root" and cleaned is not None and cleaned != current.name:
            raise RootProtected("the root cannot be renamed", "name")
        if content_format is not None:
            _choice(content_format, FORMATS, "content_format")
        if content is not None and not isinstance(content, str):
            raise KnowledgeError("the content must be text", "content")
        if is_attached and current.type != "folder":
            raise KnowledgeError("only a folder can be attached", "is_attached")
        key = None if cleaned is None else name_key(cleaned)
        params = {
            "id": item_id, "allow": allow_read_only, "name": cleaned, "key": key,
            "content": content, "format": content_format, "attached": is_attached,
            "metadata": None if metadata is None else json.dumps(dict(metadata),
                                                                 sort_keys=True),
            "account": account_number, "now": now(), "by": by,
            "revision_id": str(uuid.uuid4()), "keep": MAX_REVISIONS,
        }
        try:
            rows = self.store.write(
                "MATCH (item:ContextItem {id: $id}) WHERE $allow OR NOT item.read_only "
                "OPTIONAL MATCH (parent:ContextItem)-[:PARENT_OF]->(item) "
                "OPTIONAL MATCH (parent)-[:PARENT_OF]->(twin:ContextItem {name_key: $key}) "
                "WHERE twin.id <> item.id "
                "WITH item, parent, count(twin) AS twins WHERE twins = 0 "
                "FOREACH (changed IN CASE WHEN item.type = 'article' AND ("
                "  item.name <> coalesce($name, item.name) "
                "  OR item.content <> coalesce($content, item.content) "
                "  OR item.content_format <> coalesce($format, item.content_format)) "
                "  THEN [1] ELSE [] END | "
                "  CREATE (item)-[:HAS_REVISION]->(:Revision {id: $revision_id, "
                "    number: coalesce(item.revision_count, 0) + 1, name: item.name, "
                "    content: item.content, content_format: item.content_format, "
                "    written_at: item.updated_at, written_by: item.updated_by, "
                "    replaced_at: $now}) "
                "  SET item.revision_count = coalesce(item.revision_count, 0) + 1) "
                "SET item.name = coalesce($name, item.name), "
                "item.name_key = coalesce($key, item.name_key), "
                "item.sibling_key = CASE WHEN parent IS NULL THEN null "
                "  ELSE parent.id + '/' + coalesce($key, item.name_key) END, "
                "item.content = coalesce($content, item.content), "
                "item.content_format = coalesce($format, item.content_format), "
                "item.is_attached = coalesce($attached, item.is_attached), "
                "item.metadata = coalesce($metadata, item.metadata), "
                "item.account_number = coalesce($account, item.account_number), "
                "item.updated_at = $now, item.updated_by = $by "
                "WITH item, parent "
                "OPTIONAL MATCH (item)-[:HAS_REVISION]->(revision:Revision) "
                "WITH item, parent, revision ORDER BY revision.number DESC "
                "WITH item, parent, collect(revision) AS revisions "
                "FOREACH (old IN revisions[$keep..] | DETACH DELETE old) "
                "RETURN properties(item) AS item, parent.id AS parent_id", params)
        except ConstraintViolation:
            rows = []
        if not rows:
            again = self.get(item_id)
            if again.read_only and not allow_read_only:
                raise ReadOnly(f"{again.name!r} is generated by the sync and cannot be edited",
                               "id")
            if again.parent_id is None or cleaned is None:
                raise NotFound(f"no item {item_id!r}", "id")
            self._refused_child(again.parent_id, cleaned, "name", moving_id=item_id)
        updated = _item(rows[0]["item"], rows[0]["parent_id"])
        self._reindex(items=[updated.id])
        return updated

    def move(self, item_id: str, new_parent_id: str, *, by: str,
             allow_read_only: bool = False) -> Item:
        """Re-parent an item (and its subtree) under another folder."""
        current = self.get(item_id)
        if current.type == "root":
            raise RootProtected("the root cannot be moved", "id")
        if current.read_only and not allow_read_only:
            raise ReadOnly(f"{current.name!r} is generated by the sync and cannot be moved",
                           "id")
        if current.parent_id == new_parent_id:
            return current
        try:
            rows = self.store.write(
                _LOCK_TREE
                + "MATCH (old:ContextItem)-[link:PARENT_OF]->(item:ContextItem {id: $id}) "
                "WHERE $allow OR NOT item.read_only "
                "MATCH (target:ContextItem {id: $target}) WHERE target.type <> 'article' "
                "OPTIONAL MATCH (item)-[:PARENT_OF*0..]->(inside:ContextItem {id: $target}) "
                "WITH link, item, target, count(inside) AS loops WHERE loops = 0 "
                "OPTIONAL MATCH (target)-[:PARENT_OF]->(twin:ContextItem) "
                "WHERE twin.name_key = item.name_key "
                "WITH link, item, target, count(twin) AS twins WHERE twins = 0 "
                "DELETE link "
                "CREATE (target)-[:PARENT_OF]->(item) "
                "SET item.sibling_key = target.id + '/' + item.name_key, "
                "item.updated_at = $now, item.updated_by = $by "
                "RETURN properties(item) AS item",
                {"root": ROOT_ID, "id": item_id, "target": new_parent_id,
                 "allow": allow_read_only, "now": now(), "by": by})
        except ConstraintViolation:
            rows = []
        if rows:
            # Every item of the moved subtree has new ancestors.
            self._reindex(subtrees=[item_id])
            return _item(rows[0]["item"], new_parent_id)
        again = self.get(item_id)
        target = self.find(new_parent_id)
        if target is None:
            raise NotFound(f"the folder {new_parent_id!r} does not exist", "new_parent_id")
        if not target.is_folder:
            raise KnowledgeError("an article cannot hold other items", "new_parent_id")
        if any(crumb.id == item_id for crumb in self.breadcrumbs(new_parent_id)):
            raise MoveCycle(f"{again.name!r} cannot move into itself or its own subtree",
                            "new_parent_id")
        if again.read_only and not allow_read_only:
            raise ReadOnly(f"{again.name!r} is generated by the sync and cannot be moved", "id")
        self._refused_child(new_parent_id, again.name, "new_parent_id", moving_id=item_id)
        raise AssertionError("unreachable")  # pragma: no cover - _refused_child raises

    def delete(self, item_id: str, *, by: str, allow_read_only: bool = False) -> int:
        """Delete an item, its whole subtree, their revisions and files (from disk too).

        Returns how many items went. Refused when the subtree holds a read-only item (unless
        ``allow_read_only``): a person cannot delete what the sync maintains.
        """
        current = self.get(item_id)
        if current.type == "root":
            raise RootProtected("the root cannot be deleted", "id")
        rows = self.store.write(
            _LOCK_TREE
            + "MATCH (top:ContextItem {id: $id}) WHERE top.type <> 'root' "
            "MATCH (top)-[:PARENT_OF*0..]->(node:ContextItem) "
            "WITH collect(DISTINCT node) AS nodes "
            "WHERE $allow OR none(node IN nodes WHERE node.read_only) "
            "UNWIND nodes AS node "
            "OPTIONAL MATCH (node)-[:HAS_FILE]->(file:File) "
            "OPTIONAL MATCH (node)-[:HAS_REVISION]->(revision:Revision) "
            "WITH collect(DISTINCT node) AS nodes, collect(DISTINCT file) AS files, "
            "collect(DISTINCT revision) AS revisions "
            "WITH nodes, files, revisions, [file IN files | file.stored_name] AS stored "
            "FOREACH (file IN files | DETACH DELETE file) "
            "FOREACH (revision IN revisions | DETACH DELETE revision) "
            "FOREACH (node IN nodes | DETACH DELETE node) "
            "RETURN size(nodes) AS deleted, stored",
            {"root": ROOT_ID, "id": item_id, "allow": allow_read_only})
        # The last aggregation answers one row even when the guard let nothing through.
        if not rows or not rows[0]["deleted"]:
            if self.find(item_id) is None:
                raise NotFound(f"no item {item_id!r}", "id")
            raise ReadOnly(f"{current.name!r} holds items generated by the sync; they cannot "
                           "be deleted", "id")
        self._reindex(gone=[item_id])
        # Only after the graph let go of them: a crash here leaves unreferenced bytes
        # (sweep_files() removes them), never a File node without its file.
        for stored_name in rows[0]["stored"]:
            self._file_path(stored_name).unlink(missing_ok=True)
        return int(rows[0]["deleted"])

    # -- revisions -----------------------------------------------------------------------

    def revisions(self, item_id: str) -> list[Revision]:
        """An article's previous versions, newest first."""
        self.get(item_id)
        rows = self.store.query(
            "MATCH (:ContextItem {id: $id})-[:HAS_REVISION]->(revision:Revision) "
            "RETURN properties(revision) AS revision ORDER BY revision.number DESC",
            {"id": item_id})
        return [Revision(id=r["id"], number=int(r["number"]), name=r["name"],
                         content=r.get("content") or "",
                         content_format=r.get("content_format") or "markdown",
                         written_at=r.get("written_at") or "",
                         written_by=r.get("written_by") or "",
                         replaced_at=r["replaced_at"])
                for r in (row["revision"] for row in rows)]

    def restore(self, item_id: str, revision_id: str, *, by: str,
                allow_read_only: bool = False) -> Item:
        """Bring back a revision's content and format (the name stays); what it replaces
        becomes a revision in turn."""
        chosen = next((rev for rev in self.revisions(item_id) if rev.id == revision_id), None)
        if chosen is None:
            raise NotFound(f"no revision {revision_id!r} of {item_id!r}", "revision_id")
        return self.update(item_id, by=by, content=chosen.content,
                           content_format=chosen.content_format,
                           allow_read_only=allow_read_only)

    # -- files ---------------------------------------------------------------------------

    def _file_path(self, stored_name: str) -> Path:
        path = self.files_dir / stored_name
        if path.parent != self.files_dir or not _stored_name_ok(stored_name):
            raise KnowledgeError(f"not a stored file name: {stored_name!r}")
        return path

    def attach_file(self, item_id: str, original_filename: str, data: bytes, *, by: str,
                    content_type: str = "application/octet-stream",
                    allow_read_only: bool = False) -> StoredFile:
        """Store ``data`` under a fresh name and link it to the item. Size and type limits
        are the API's business; the original name is kept for downloads."""
        item = self.get(item_id)
        if item.read_only and not allow_read_only:
            raise ReadOnly(f"{item.name!r} is generated by the sync and cannot be changed",
                           "id")
        original = clean_name(original_filename, "filename")
        file_id = str(uuid.uuid4())
        extension = _EXTENSION.search(original)
        stored_name = file_id + (extension.group(0).lower() if extension else "")
        path = self._file_path(stored_name)
        self.files_dir.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(path.name + ".part")
        temporary.write_bytes(data)
        temporary.replace(path)
        stamp = now()
        try:
            rows = self.store.write(
                "MATCH (item:ContextItem {id: $id}) WHERE $allow OR NOT item.read_only "
                "CREATE (item)-[:HAS_FILE]->(file:File) SET file = $props "
                "RETURN properties(file) AS file",
                {"id": item_id, "allow": allow_read_only,
                 "props": {"id": file_id, "original_filename": original,
                           "stored_name": stored_name, "content_type": content_type,
                           "size": len(data), "created_at": stamp, "created_by": by}})
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        if not rows:
            path.unlink(missing_ok=True)
            self.get(item_id)
            raise ReadOnly(f"{item.name!r} is generated by the sync and cannot be changed",
                           "id")
        return _stored_file(rows[0]["file"], item_id)

    def files(self, item_id: str) -> list[StoredFile]:
        self.get(item_id)
        rows = self.store.query(
            "MATCH (:ContextItem {id: $id})-[:HAS_FILE]->(file:File) "
            "RETURN properties(file) AS file ORDER BY file.created_at", {"id": item_id})
        return [_stored_file(row["file"], item_id) for row in rows]

    def file(self, file_id: str) -> tuple[StoredFile, Path]:
        rows = self.store.query(
            "MATCH (item:ContextItem)-[:HAS_FILE]->(file:File {id: $id}) "
            "RETURN properties(file) AS file, item.id AS item_id", {"id": file_id})
        if not rows:
            raise NotFound(f"no file {file_id!r}", "file_id")
        stored = _stored_file(rows[0]["file"], rows[0]["item_id"])
        return stored, self._file_path(stored.stored_name)

    def delete_file(self, file_id: str, *, by: str, allow_read_only: bool = False) -> None:
        stored, path = self.file(file_id)
        item = self.get(stored.item_id)
        if item.read_only and not allow_read_only:
            raise ReadOnly(f"{item.name!r} is generated by the sync and cannot be changed",
                           "file_id")
        self.store.write("MATCH (file:File {id: $id}) DETACH DELETE file", {"id": file_id})
        path.unlink(missing_ok=True)

    def sweep_files(self) -> int:
        """Remove bytes no File node refers to (left by a crash mid-delete); their count."""
        if not self.files_dir.is_dir():
            return 0
        known = {row["name"] for row in self.store.query(
            "MATCH (file:File) RETURN file.stored_name AS name")}
        removed = 0
        for path in self.files_dir.iterdir():
            if path.is_file() and path.name not in known:
                path.unlink(missing_ok=True)
                removed += 1
        return removed

    # -- search --------------------------------------------------------------------------

    def search(self, query: str, *, start_id: str = ROOT_ID, offset: int = 0,
               limit: int = 20, use_index: bool = True) -> SearchPage:
        """Items under ``start_id`` whose name or content hold every word of ``query`` (the
        last as a prefix), best first: an exact title first, then the full-text score, in
        which a title counts four times a body.

        The search index answers when it is ready (ties in its document order); otherwise,
        or with ``use_index=False``, the graph's full-text call does (ties in the database's
        node order). Either way the page's items are then read from the graph.
        """
        if offset < 0:
            raise KnowledgeError("offset must not be negative", "offset")
        if not 1 <= limit <= SEARCH_LIMIT_MAX:
            raise KnowledgeError(f"limit must be between 1 and {SEARCH_LIMIT_MAX}", "limit")
        if start_id != ROOT_ID:  # root is there from ensure_ready() on
            self.get(start_id, "start")
        terms = search_terms(query)
        if not terms:
            return SearchPage(total=0, offset=offset, limit=limit, hits=[])
        if use_index and self.search_index is not None:
            indexed = self._search_index(self.search_index, query, terms, start_id=start_id,
                                         offset=offset, limit=limit)
            if indexed is not None:
                return indexed
        return self._search_graph(query, terms, start_id=start_id, offset=offset, limit=limit)

    def _search_index(self, index: SearchIndex, query: str, terms: list[str], *,
                      start_id: str, offset: int, limit: int) -> SearchPage | None:
        """The page from the search index, or None when it cannot answer (a rebuild is
        then due)."""
        try:
            found = index.search(index.words(" ".join(terms)),
                                 exact_key=name_key(" ".join(query.split())),
                                 start_id=None if start_id == ROOT_ID else start_id,
                                 offset=offset, limit=limit)
        except SearchIndexError as exc:
            log.info("searching the graph: %s", exc)
            if self.rebuild_due is not None:
                self.rebuild_due()
            return None
        ids = [item_id for item_id, _ in found.hits]
        # The page's items and the folders above each, walked up, in one query.
        rows = {row["id"]: row for row in self.store.query(
            "MATCH (node:ContextItem) WHERE node.id IN $ids "
            "OPTIONAL MATCH path = (node)<-[:PARENT_OF*1..]-(up:ContextItem) "
            "WITH node, collect([length(path), up.id, up.name]) AS ups "
            f"RETURN {_columns('node')}, ups", {"ids": ids})} if ids else {}
        # An id the graph no longer has (deleted by a write whose index update is not
        # committed yet) is left out.
        page = [(rows[item_id], score) for item_id, score in found.hits if item_id in rows]
        total = found.total - (len(found.hits) - len(page))
        paths = {item_id: [Crumb(id=up, name=name) for _, up, name in
                           sorted((level for level in row["ups"] if level[1] is not None),
                                  key=lambda level: -int(level[0]))]
                 for item_id, row in rows.items()}
        return self._page(page, terms, total=total, offset=offset, limit=limit, paths=paths)

    def _page(self, page: list[tuple[Row, float]], terms: list[str], *, total: int,
              offset: int, limit: int,
              paths: dict[str, list[Crumb]] | None = None) -> SearchPage:
        """Rows and scores made hits: parents and paths walked up (unless given), snippets
        cut."""
        if paths is None:
            paths = self._paths([item["id"] for item, _ in page])
        found = []
        for row, score in page:
            path = paths.get(row["id"], [])
            item = _item(row, path[-1].id if path else None)
            text, spans = snippet(plain_text(item.content, item.content_format), terms)
            found.append(SearchHit(item=item, score=score, snippet=text, highlights=spans,
                                   path=path))
        return SearchPage(total=total, offset=offset, limit=limit, hits=found)

    def _search_graph(self, query: str, terms: list[str], *, start_id: str, offset: int,
                      limit: int) -> SearchPage:
        """The graph's full-text call (no index, or the index not ready)."""
        # A broad word matches most of the tree: every clause below that runs once per hit
        # reads no property (a property read per hit doubles the cost), and everything
        # else (content, parents, paths) is read for the page's hits only.
        key = self.store.node_key("node")
        params: dict[str, Any] = {
            "fulltext": self.store.fulltext_query(ITEM_SCHEMA, terms), "start": start_id,
            "exact": name_key(" ".join(query.split())), "most": SCOPE_LIST_MAX + 1}
        hits = f"{self.store.fulltext_call(ITEM_SCHEMA)} WITH node, score "
        if start_id != ROOT_ID:
            # A small subtree (a company's folder, what every client user searches) is
            # matched by its nodes' keys; a large one by walking up from each hit, which
            # costs a few ancestors per hit instead of a list as long as the subtree.
            inside = self.store.query(
                "MATCH (:ContextItem {id: $start})-[:PARENT_OF*0..]->(node:ContextItem) "
                f"RETURN {key} AS ref LIMIT $most", params)
            if len(inside) <= SCOPE_LIST_MAX:
                params["scope"] = [row["ref"] for row in inside]
                hits += f"WITH node, score WHERE {key} IN $scope "
            else:
                hits += "MATCH (:ContextItem {id: $start})-[:PARENT_OF*0..]->(node) "
        # Titles equal to the query, by the name_key index; they rank first if they are hits.
        titled = {row["ref"]: row for row in self.store.query(
            f"MATCH (node:ContextItem {{name_key: $exact}}) "
            f"RETURN {key} AS ref, {_columns('node')}", params)}
        params["titled"] = list(titled)
        exact: list[tuple[float, Any]] = []
        total: int | None = None
        if titled:
            counted = self.store.query(
                f"{hits}RETURN count(node) AS total, "
                f"collect(CASE WHEN {key} IN $titled THEN [{key}, score] END) AS exact",
                params)
            total = int(counted[0]["total"]) if counted else 0
            exact = sorted(((float(score), node) for node, score in
                            (counted[0]["exact"] or [] if counted else [])),
                           key=lambda pair: (-pair[0], pair[1]))
        page: list[tuple[Row, float]] = [(titled[node], score + EXACT_TITLE_BONUS)
                                         for score, node in exact[offset:offset + limit]]
        wanted = limit - len(page)
        rows: list[Row] = []
        if wanted > 0 and (total is None or total > len(exact)):
            params.update(exact_keys=[node for _, node in exact],
                          skip=max(0, offset - len(exact)), limit=wanted)
            rows = self.store.query(
                f"{hits}" + (f"WITH node, score WHERE NOT {key} IN $exact_keys "
                             if exact else "")
                + f"WITH node, score ORDER BY score DESC, {key} SKIP $skip LIMIT $limit "
                f"RETURN {_columns('node')}, score", params)
            page.extend((row, float(row["score"])) for row in rows)
        if total is None:
            # A short page that is not past the end is the last one: the total is known
            # without counting (most narrow searches: a title, a ticket, a client's folder).
            if len(rows) < limit and (rows or offset == 0):
                total = offset + len(rows)
            else:
                counted = self.store.query(f"{hits}RETURN count(node) AS total", params)
                total = int(counted[0]["total"]) if counted else 0
        return self._page(page, terms, total=total, offset=offset, limit=limit)

    # -- the search index ----------------------------------------------------------------

    def _pending(self) -> _Pending:
        pending: _Pending | None = getattr(self._local, "pending", None)
        if pending is None:
            pending = self._local.pending = _Pending()
        return pending

    @contextmanager
    def search_batch(self) -> Iterator[None]:
        """Gather this thread's index updates and commit them once at the end (imports, a
        company's sync, a wipe): one commit instead of one per write. Nests."""
        pending = self._pending()
        if pending.depth == 0:
            pending.flushed = time.monotonic()
        pending.depth += 1
        try:
            yield
        finally:
            pending.depth -= 1
            if pending.depth == 0:
                self._flush_pending(pending)

    def search_flush(self, *, every: float = 0.0) -> None:
        """Inside :meth:`search_batch`: commit what was gathered so far, if the last commit
        is ``every`` seconds old or more. A long run (the Codex sync) calls it after each
        unit of work: searches lag at most that long, and the commits (each a few fsyncs)
        stay few."""
        pending = self._pending()
        if pending.depth and time.monotonic() - pending.flushed >= every:
            self._flush_pending(pending)

    def _flush_pending(self, pending: _Pending) -> None:
        items, subtrees, gone = pending.items, pending.subtrees, pending.gone
        pending.items, pending.subtrees, pending.gone = set(), set(), set()
        pending.flushed = time.monotonic()
        self._write_index(items, subtrees, gone)

    def _reindex(self, *, items: Sequence[str] = (), subtrees: Sequence[str] = (),
                 gone: Sequence[str] = ()) -> None:
        """After a graph write: the items to read again, the subtrees to read again (a
        move changes every ancestor list below), the subtrees that went."""
        if self.search_index is None:
            return
        pending = self._pending()
        pending.items.update(items)
        pending.subtrees.update(subtrees)
        pending.gone.update(gone)
        if pending.depth == 0:
            items_now, subtrees_now, gone_now = pending.items, pending.subtrees, pending.gone
            pending.items, pending.subtrees, pending.gone = set(), set(), set()
            self._write_index(items_now, subtrees_now, gone_now)

    def _write_index(self, items: set[str], subtrees: set[str], gone: set[str]) -> None:
        index = self.search_index
        if index is None or not (items or subtrees or gone):
            return
        try:
            index.write(lambda: self._index_changes(items, subtrees, gone))
        except Exception as exc:  # the graph write stands; the index is marked stale
            log.warning("the search index could not be updated (%s); searches use the graph "
                        "until it is rebuilt", exc)
            if self.rebuild_due is not None:
                self.rebuild_due()

    def _index_changes(self, items: set[str], subtrees: set[str], gone: set[str]) -> Changes:
        """Read from the graph, now, what the index must hold for these items: called while
        the index's writer lock is held, so the last writer always writes the latest state."""
        deletes = [("id", item_id) for item_id in sorted(items | subtrees | gone)]
        deletes += [("ancestors", item_id) for item_id in sorted(subtrees | gone)]
        docs: dict[str, IndexDoc] = {}
        tops = sorted(subtrees - gone)
        singles = sorted(items - gone - subtrees)
        paths = self._paths([*tops, *singles])

        def above(item_id: str) -> tuple[str, ...] | None:
            if item_id == ROOT_ID:
                return ()
            path = paths.get(item_id)
            return tuple(crumb.id for crumb in path) if path else None

        if singles:
            for row in self.store.query(
                    "MATCH (node:ContextItem) WHERE node.id IN $ids "
                    "RETURN node.id AS id, node.name AS name, node.name_key AS name_key, "
                    "node.content AS content, node.content_format AS content_format",
                    {"ids": singles}):
                ancestors = above(row["id"])
                if ancestors is not None:
                    docs[row["id"]] = _index_doc(row, ancestors)
        bases = {top: base for top in tops if (base := above(top)) is not None}
        if bases:  # the others went meanwhile (or were never reached from root)
            for row in self.store.query(
                    "MATCH (top:ContextItem) WHERE top.id IN $ids "
                    "MATCH chain = (top)-[:PARENT_OF*0..]->(node:ContextItem) "
                    "RETURN node.id AS id, node.name AS name, node.name_key AS name_key, "
                    "node.content AS content, node.content_format AS content_format, "
                    "[step IN nodes(chain) | step.id] AS chain", {"ids": sorted(bases)}):
                chain = row["chain"]
                docs[row["id"]] = _index_doc(row, bases[chain[0]] + tuple(chain[:-1]))
        return Changes(deletes=deletes, docs=list(docs.values()))

    def search_documents(self, batch: int = 5_000) -> Iterator[IndexDoc]:
        """Every item reachable from root as the index holds it: the tree's edges first
        (ancestors worked out here), then the items in pages by id."""
        parents = {row["child"]: row["parent"] for row in self.store.query(
            "MATCH (up:ContextItem)-[:PARENT_OF]->(down:ContextItem) "
            "RETURN up.id AS parent, down.id AS child")}
        known: dict[str, tuple[str, ...] | None] = {ROOT_ID: ()}

        def ancestors(item_id: str) -> tuple[str, ...] | None:
            """Ids from root down to the parent; None for an item root does not reach."""
            walked: list[str] = []
            at = item_id
            while at not in known:
                walked.append(at)
                up = parents.get(at)
                if up is None or up in walked:
                    for node in walked:
                        known[node] = None
                    return None
                at = up
            for node in reversed(walked):  # top down: each parent is known already
                parent = parents[node]
                above = known[parent]
                known[node] = None if above is None else (*above, parent)
            return known[item_id]

        after = ""
        while True:
            rows = self.store.query(
                "MATCH (node:ContextItem) WHERE node.id > $after "
                "RETURN node.id AS id, node.name AS name, node.name_key AS name_key, "
                "node.content AS content, node.content_format AS content_format "
                "ORDER BY node.id LIMIT $batch", {"after": after, "batch": batch})
            for row in rows:
                found = ancestors(row["id"])
                if found is not None:
                    yield _index_doc(row, found)
            if len(rows) < batch:
                return
            after = rows[-1]["id"]

    def rebuild_search_index(self, *, only_if_needed: bool = False,
                             skip_if: Callable[[], bool] | None = None) -> int | None:
        """Build the search index from the graph (every document replaced in one commit);
        how many items it holds, or None when skipped (see :meth:`SearchIndex.rebuild`)."""
        if self.search_index is None:
            raise KnowledgeError("no search index is configured")
        return self.search_index.rebuild(self.search_documents, only_if_needed=only_if_needed,
                                         skip_if=skip_if)

    def _paths(self, item_ids: list[str]) -> dict[str, list[Crumb]]:
        """For each item, the folders from root down to its parent, in one query walking up
        from the items (one parent per level), never down from root over the whole tree."""
        if not item_ids:
            return {}
        rows = self.store.query(
            "MATCH (item:ContextItem) WHERE item.id IN $ids "
            "MATCH path = (item)<-[:PARENT_OF*1..]-(up:ContextItem) "
            "RETURN item.id AS item, up.id AS id, up.name AS name, length(path) AS depth",
            {"ids": sorted(set(item_ids))})
        levels: dict[str, list[tuple[int, Crumb]]] = {}
        for row in rows:
            levels.setdefault(row["item"], []).append(
                (int(row["depth"]), Crumb(id=row["id"], name=row["name"])))
        return {item: [crumb for _, crumb in sorted(found, key=lambda level: -level[0])]
                for item, found in levels.items()}

    # -- export and import ---------------------------------------------------------------

    def export_subtree(self, item_id: str = ROOT_ID) -> list[dict[str, Any]]:
        """The items under ``item_id``, nested (``children``), each level folders first and by
        name: what :meth:`import_items` takes back. Ids, dates and files are left out."""
        self.get(item_id)
        rows = self.store.query(
            "MATCH (:ContextItem {id: $id})-[:PARENT_OF*1..]->(node:ContextItem) "
            "MATCH (parent:ContextItem)-[:PARENT_OF]->(node) "
            "RETURN parent.id AS parent_id, properties(node) AS item", {"id": item_id})
        by_parent: dict[str, list[Item]] = {}
        for row in rows:
            item = _item(row["item"], row["parent_id"])
            by_parent.setdefault(row["parent_id"], []).append(item)

        def level(parent_id: str) -> list[dict[str, Any]]:
            items = sorted(by_parent.get(parent_id, []),
                           key=lambda item: (not item.is_folder, name_key(item.name)))
            return [{"name": item.name, "type": item.type, "content": item.content,
                     "content_format": item.content_format, "is_attached": item.is_attached,
                     "read_only": item.read_only, "source": item.source,
                     "account_number": item.account_number, "metadata": item.metadata,
                     "children": level(item.id)} for item in items]

        return level(item_id)

    def import_items(self, parent_id: str, entries: object, *, by: str,
                     allow_read_only: bool = False) -> int:
        """Create a nested list of items (the shape :meth:`export_subtree` gives) under the
        folder ``parent_id``, all of them or none; returns how many.

        Every name is checked as on create, names are unique within each imported folder, and
        a top-level name already used under ``parent_id`` refuses the whole import
        (:class:`NameTaken` naming the entry). Only the sync may import read-only items.
        """
        stamp = now()
        nodes: list[dict[str, Any]] = []
        edges: list[dict[str, str]] = []
        top_keys = self._flatten(parent_id, entries, "items", by, stamp, nodes, edges,
                                 allow_read_only)
        if not nodes:
            return 0
        try:
            rows = self.store.write(
                _LOCK_TREE
                + "MATCH (parent:ContextItem {id: $parent_id}) WHERE parent.type <> 'article' "
                "OPTIONAL MATCH (parent)-[:PARENT_OF]->(twin:ContextItem) "
                "WHERE twin.name_key IN $top_keys "
                "WITH parent, count(twin) AS twins WHERE twins = 0 "
                "UNWIND $nodes AS row CREATE (node:ContextItem) SET node = row "
                "WITH count(node) AS created "
                "UNWIND $edges AS edge "
                "MATCH (up:ContextItem {id: edge.parent}), (down:ContextItem {id: edge.child}) "
                "CREATE (up)-[:PARENT_OF]->(down) "
                "RETURN count(*) AS linked",
                {"root": ROOT_ID, "parent_id": parent_id, "top_keys": list(top_keys),
                 "nodes": nodes, "edges": edges})
        except ConstraintViolation:
            rows = []
        # Refused by the guard, the aggregations still answer one row: nothing was linked
        # (nor created). Let through, every created node was linked in the same statement.
        if not rows or not rows[0]["linked"]:
            parent = self.find(parent_id)
            if parent is None:
                raise NotFound(f"the parent {parent_id!r} does not exist", "parent_id")
            if not parent.is_folder:
                raise KnowledgeError("an article cannot hold other items", "parent_id")
            taken = self.store.query(
                "MATCH (:ContextItem {id: $parent_id})-[:PARENT_OF]->(twin:ContextItem) "
                "WHERE twin.name_key IN $top_keys RETURN twin.id AS id, twin.name_key AS key",
                {"parent_id": parent_id, "top_keys": list(top_keys)})
            if not taken:
                raise NameTaken(f"{parent.name!r} changed during the import; try again")
            clash = next(i for i, key in enumerate(top_keys) if key == taken[0]["key"])
            error = NameTaken(f"{parent.name!r} already holds an item named "
                              f"{top_keys[clash]!r}", taken[0]["id"])
            error.field = f"items[{clash}].name"
            raise error
        self._reindex(subtrees=[edge["child"] for edge in edges
                                if edge["parent"] == parent_id])
        return len(nodes)

    def _flatten(self, parent_id: str, entries: object, where: str, by: str, stamp: str,
                 nodes: list[dict[str, Any]], edges: list[dict[str, str]],
                 allow_read_only: bool) -> list[str]:
        """Check one imported level and append its items; the level's folded names."""
        if not isinstance(entries, list):
            raise KnowledgeError("must be a list of items", where)
        keys: list[str] = []
        for index, entry in enumerate(entries):
            at = f"{where}[{index}]"
            if not isinstance(entry, Mapping):
                raise KnowledgeError("must be an object", at)
            name = clean_name(entry.get("name"), f"{at}.name")
            key = name_key(name)
            if key in keys:
                twice = NameTaken(f"{name!r} appears twice in one folder of the import")
                twice.field = f"{at}.name"
                raise twice
            keys.append(key)
            kind = _choice(entry.get("type", "article"), ("folder", "article"), f"{at}.type")
            content = entry.get("content", "")
            if not isinstance(content, str):
                raise KnowledgeError("the content must be text", f"{at}.content")
            content_format = _choice(entry.get("content_format", "markdown"), FORMATS,
                                     f"{at}.content_format")
            source = _choice(entry.get("source", "manual"), SOURCES, f"{at}.source")
            attached = entry.get("is_attached", False) is True
            if attached and kind != "folder":
                raise KnowledgeError("only a folder can be attached", f"{at}.is_attached")
            read_only = entry.get("read_only", False) is True
            if read_only and not allow_read_only:
                raise ReadOnly("read-only items are written by the sync only",
                               f"{at}.read_only")
            metadata = entry.get("metadata") or {}
            if not isinstance(metadata, Mapping):
                raise KnowledgeError("must be an object", f"{at}.metadata")
            account = entry.get("account_number")
            if account is not None and not isinstance(account, str):
                raise KnowledgeError("must be text", f"{at}.account_number")
            item_id = str(uuid.uuid4())
            node = {"id": item_id, "name": name, "name_key": key,
                    "sibling_key": f"{parent_id}/{key}", "type": kind, "content": content,
                    "content_format": content_format, "is_attached": attached,
                    "read_only": read_only, "source": source,
                    "metadata": json.dumps(dict(metadata), sort_keys=True),
                    "created_at": stamp, "created_by": by, "updated_at": stamp,
                    "updated_by": by}
            if account is not None:
                node["account_number"] = account
            nodes.append(node)
            edges.append({"parent": parent_id, "child": item_id})
            children = entry.get("children", [])
            if children and kind != "folder":
                raise KnowledgeError("an article cannot hold other items", f"{at}.children")
            self._flatten(item_id, children, f"{at}.children", by, stamp, nodes, edges,
                          allow_read_only)
        return keys

    # -- counts ----------------------------------------------------------------------------

    def item_count(self) -> int:
        """Every item, root included: what a complete search index holds."""
        rows = self.store.query("MATCH (item:ContextItem) RETURN count(item) AS n")
        return int(rows[0]["n"]) if rows else 0

    def counts(self) -> dict[str, int]:
        rows = self.store.query(
            "MATCH (item:ContextItem) RETURN item.type AS type, count(item) AS n")
        counted = {row["type"]: int(row["n"]) for row in rows}
        files = self.store.query("MATCH (file:File) RETURN count(file) AS n")
        return {"folders": counted.get("folder", 0), "articles": counted.get("article", 0),
                "files": int(files[0]["n"]) if files else 0}


def _index_text(content: str, content_format: str) -> str:
    """What the index reads of the content: the same words as :func:`plain_text` (tags
    stripped from HTML), without collapsing whitespace, which the tokenizer ignores anyway
    and which costs most of a rebuild's Python time."""
    return html.unescape(_TAG.sub(" ", content)) if content_format == "html" else content


def _index_doc(row: Row, ancestors: tuple[str, ...]) -> IndexDoc:
    return IndexDoc(id=row["id"], name=row.get("name") or "",
                    name_key=row.get("name_key") or "",
                    content=_index_text(row.get("content") or "",
                                        row.get("content_format") or "markdown"),
                    ancestors=ancestors)


def _stored_name_ok(name: str) -> bool:
    stem, _, extension = name.partition(".")
    try:
        uuid.UUID(stem)
    except ValueError:
        return False
    return not extension or extension.isalnum()


def _stored_file(row: Row, item_id: str) -> StoredFile:
    return StoredFile(id=row["id"], item_id=item_id,
                      original_filename=row["original_filename"],
                      stored_name=row["stored_name"],
                      content_type=row.get("content_type") or "application/octet-stream",
                      size=int(row.get("size") or 0), created_at=row.get("created_at") or "",
                      created_by=row.get("created_by") or "")
