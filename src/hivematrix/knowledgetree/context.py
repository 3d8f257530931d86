"""Context for the assistant: articles gathered around an item, or everything filed under one
company, as markdown within a character budget.

Around an item (:func:`item_context`), as upstream's context export: for every folder on the
path from root to the item, its own articles and every article at any depth inside its
*attached* child folders (those not in ``excluded_ids``), under one heading per level, then the
item's attachments by their original names. Unlike upstream the result fits a budget: the
levels nearest the item are kept first (they matter most), and what does not fit is cut and
flagged ``truncated``.

For a company (:func:`company_context`): every article under the folder(s) whose
``account_number`` is that company's — its synced contacts, assets and tickets and what people
filed beside them — in tree order (a folder's own articles before its subfolders), each with
its path and source id. Archived folders are left out with everything in them (the sync's
``Archived`` folder of assets and tickets gone from Codex, whatever its name, and any folder
called ``Archived``), so the assistant is not fed what is no longer true.

Plain Python over :class:`~hivematrix.knowledgetree.items.KnowledgeTree`; no Flask.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from typing import Any

from hivematrix.knowledgetree.graph import Schema
from hivematrix.knowledgetree.items import (
    ROOT_ID,
    Crumb,
    Item,
    KnowledgeError,
    KnowledgeTree,
    NotFound,
    _item,
    name_key,
    plain_text,
)
from hivematrix.knowledgetree.sync import ARCHIVED, marker_of

#: Company folders are found by account number (every client user's request does): indexed.
ACCOUNT_SCHEMA = Schema(label="ContextItem", indexed=("account_number",))
#: A block is cut rather than dropped when at least this much room is left.
MIN_CUT = 80
CUT_MARK = "\n…[truncated]"
NO_CONTENT = "> No content."


@dataclass(frozen=True)
class Source:
    """An item whose content went into the context (``cut`` when only its start did)."""

    id: str
    name: str
    path: str
    cut: bool = False


@dataclass
class Context:
    markdown: str
    sources: list[Source]
    truncated: bool
    budget: int
    #: Around an item: the attached folders in scope, for the caller to exclude some.
    attached_folders: list[Crumb] = field(default_factory=list)
    #: For a company: the folders filed under its account number.
    folders: list[Crumb] = field(default_factory=list)


def check_budget(budget: object, maximum: int) -> int:
    if not isinstance(budget, int) or isinstance(budget, bool):
        raise KnowledgeError("max_chars must be an integer", "max_chars")
    if not 1 <= budget <= maximum:
        raise KnowledgeError(f"max_chars must be between 1 and {maximum}", "max_chars")
    return budget


def article_text(item: Item) -> str:
    """What the assistant reads of an article: markdown as written, HTML as plain text."""
    text = (item.content if item.content_format == "markdown"
            else plain_text(item.content, item.content_format))
    return text.strip() or NO_CONTENT


class _Budget:
    """Hands out characters until the budget is spent; the first refusal marks truncation."""

    def __init__(self, budget: int) -> None:
        self.left = budget
        self.truncated = False

    def take(self, text: str, *, cuttable: bool = True) -> str | None:
        """``text`` whole, its start (cut), or ``None`` when nothing more fits."""
        if self.truncated:
            return None
        if len(text) <= self.left:
            self.left -= len(text)
            return text
        self.truncated = True
        if not cuttable or self.left < MIN_CUT:
            return None
        cut = text[:self.left - len(CUT_MARK)] + CUT_MARK
        self.left -= len(cut)
        return cut


# -- around an item ----------------------------------------------------------------------------

@dataclass
class _Block:
    level: int
    item: Item
    folder: str | None

    def text(self) -> str:
        origin = f" (from attached folder: {self.folder})" if self.folder else ""
        return f"File: {self.item.name}{origin} [id: {self.item.id}]\n\n{article_text(self.item)}"


def ancestry(tree: KnowledgeTree, item_id: str) -> list[Crumb]:
    """Root first, the item last: the same as ``breadcrumbs``, but walked up from the item, so
    the query never fans out from root over the whole tree (well under a millisecond where
    the walk down from root takes ten or more on a large tree)."""
    rows = tree.store.query(
        "MATCH path = (item:ContextItem {id: $id})<-[:PARENT_OF*0..]-(up:ContextItem) "
        "RETURN up.id AS id, up.name AS name, length(path) AS depth ORDER BY depth DESC",
        {"id": item_id})
    if not rows or rows[0]["id"] != ROOT_ID:
        raise NotFound(f"no item {item_id!r}", "id")
    return [Crumb(id=row["id"], name=row["name"]) for row in rows]


def _children_of(tree: KnowledgeTree, parent_ids: list[str]) -> dict[str, list[Item]]:
    """Each level's articles and attached folders (other folders are not needed). One query
    per level: matching each id directly uses the index, which an UNWIND over them does not."""
    found: dict[str, list[Item]] = {}
    for parent_id in parent_ids:
        rows = tree.store.query(
            "MATCH (:ContextItem {id: $id})-[:PARENT_OF]->(child:ContextItem) "
            "WHERE child.type = 'article' OR child.is_attached = true "
            "RETURN properties(child) AS item", {"id": parent_id})
        found[parent_id] = sorted((_item(row["item"], parent_id) for row in rows),
                                  key=lambda item: name_key(item.name))
    return found


def _articles_under(tree: KnowledgeTree, folder_ids: list[str]) -> dict[str, list[Item]]:
    """Every article at any depth inside each folder, by name (one query per folder, as
    above; the articles' own parents are not needed here)."""
    found: dict[str, list[Item]] = {}
    for folder_id in folder_ids:
        rows = tree.store.query(
            "MATCH (:ContextItem {id: $id})-[:PARENT_OF*1..]->(article:ContextItem) "
            "WHERE article.type = 'article' RETURN properties(article) AS item",
            {"id": folder_id})
        found[folder_id] = sorted((_item(row["item"], None) for row in rows),
                                  key=lambda item: (name_key(item.name), item.id))
    return found


def _gather(tree: KnowledgeTree, path: list[Crumb],
            excluded: set[str]) -> tuple[list[_Block], list[Item]]:
    """Every level's own articles and attached folders' articles; and the attached folders."""
    children = _children_of(tree, [crumb.id for crumb in path])
    attached: list[tuple[int, Item]] = []
    blocks: list[_Block] = []
    for level, crumb in enumerate(path):
        for child in children.get(crumb.id, []):
            if child.type == "article" and child.id not in excluded:
                blocks.append(_Block(level, child, None))
            elif child.type == "folder" and child.is_attached:
                attached.append((level, child))
    in_scope = [(level, folder) for level, folder in attached if folder.id not in excluded]
    inside = _articles_under(tree, [folder.id for _, folder in in_scope])
    for level, folder in in_scope:
        blocks.extend(_Block(level, article, folder.name)
                      for article in inside.get(folder.id, []) if article.id not in excluded)
    return blocks, [folder for _, folder in attached]


def item_context(tree: KnowledgeTree, item_id: str, *, budget: int,
                 excluded_ids: Collection[str] = (),
                 floor_ids: Collection[str] | None = None) -> Context:
    """The context export around ``item_id`` (see the module docstring).

    :param excluded_ids: attached folders (or single articles) to leave out.
    :param floor_ids: when given, levels above the first of these folders on the path are
        left out (a client user's context stays inside their company's folder).
    """
    target = tree.get(item_id)
    path = ancestry(tree, item_id)
    if floor_ids is not None:
        start = next((i for i, crumb in enumerate(path) if crumb.id in floor_ids), None)
        if start is None:
            raise NotFound(f"no item {item_id!r}", "id")
        path = path[start:]
    blocks, attached = _gather(tree, path, set(excluded_ids))
    files = tree.files(item_id)
    tail = ""
    if files:
        names = "\n".join(f"- {stored.original_filename}" for stored in files)
        tail = f"## Attached Files for {target.name}\n\n{names}"
    allowance = _Budget(budget)
    kept_tail = allowance.take(tail + "\n", cuttable=False) if tail else None
    # Nearest level first; within a level, the folder's own articles before attached ones.
    order = sorted(range(len(blocks)), key=lambda i: (-blocks[i].level,
                                                       blocks[i].folder is not None, i))
    kept: dict[int, str] = {}
    headed: set[int] = set()
    for index in order:
        block = blocks[index]
        if block.level not in headed:
            if allowance.take(_heading(block.level, path[block.level]),
                              cuttable=False) is None:
                break
            headed.add(block.level)
        text = allowance.take(block.text() + "\n\n")
        if text is None:
            break
        kept[index] = text
    out: list[str] = []
    sources: list[Source] = []
    current: int | None = None
    # Shown root level first, each level's heading before its first kept block.
    for index in sorted(kept, key=lambda i: (blocks[i].level, i)):
        block = blocks[index]
        if block.level != current:
            out.append(_heading(block.level, path[block.level]))
            current = block.level
        out.append(kept[index])
        sources.append(Source(id=block.item.id, name=block.item.name,
                              path=" / ".join(c.name for c in path[:block.level + 1]),
                              cut=kept[index].endswith(CUT_MARK)))
    markdown = "".join(out) + (kept_tail or "")
    return Context(markdown=markdown, sources=sources, truncated=allowance.truncated,
                   budget=budget,
                   attached_folders=[Crumb(id=f.id, name=f.name) for f in attached])


def _heading(level: int, crumb: Crumb) -> str:
    return f"{'#' * min(level + 1, 6)} Context: {crumb.name}\n\n"


# -- for a company -----------------------------------------------------------------------------

def company_folders(tree: KnowledgeTree, account_number: str) -> list[Item]:
    """The folders filed under one account number (normally one), oldest first."""
    rows = tree.store.query(
        "MATCH (folder:ContextItem) WHERE folder.account_number = $account "
        "AND folder.type = 'folder' "
        "OPTIONAL MATCH (parent:ContextItem)-[:PARENT_OF]->(folder) "
        "RETURN properties(folder) AS item, parent.id AS parent_id "
        "ORDER BY folder.created_at, folder.id", {"account": account_number})
    return [_item(row["item"], row["parent_id"]) for row in rows]


def _subtree(tree: KnowledgeTree, top_id: str) -> dict[str, list[Item]]:
    rows = tree.store.query(
        "MATCH (:ContextItem {id: $id})-[:PARENT_OF*1..]->(node:ContextItem) "
        "MATCH (parent:ContextItem)-[:PARENT_OF]->(node) "
        "RETURN parent.id AS parent_id, properties(node) AS item", {"id": top_id})
    by_parent: dict[str, list[Item]] = {}
    for row in rows:
        by_parent.setdefault(row["parent_id"], []).append(_item(row["item"], row["parent_id"]))
    for items in by_parent.values():
        items.sort(key=lambda item: (item.is_folder, name_key(item.name), item.id))
    return by_parent


#: The sync's marker (``codex_kind``) of a company's folder of things gone from Codex.
ARCHIVE_KIND = "archive"


def is_archived(item: Item) -> bool:
    """An archive folder: the sync's (found by its marker, as it may have had to take another
    name) or one a person named ``Archived``."""
    if not item.is_folder:
        return False
    marker = marker_of(item)
    return (marker is not None and marker[0] == ARCHIVE_KIND) or (
        name_key(item.name) == name_key(ARCHIVED))


def _walk(by_parent: dict[str, list[Item]], folder_id: str, trail: list[str],
          excluded: set[str]) -> Iterable[tuple[list[str], Item]]:
    """Articles in tree order: a folder's own articles (by name), then each subfolder; archive
    folders are not entered."""
    for child in by_parent.get(folder_id, []):
        if child.id in excluded or is_archived(child):
            continue
        if child.type == "article":
            yield trail, child
        else:
            yield from _walk(by_parent, child.id, [*trail, child.name], excluded)


def company_context(tree: KnowledgeTree, account_number: str, *, budget: int,
                    excluded_ids: Collection[str] = ()) -> Context:
    """Everything filed under the company's folder(s), as markdown within ``budget``.

    :raises NotFound: naming ``account_number`` when no folder carries it.
    """
    folders = company_folders(tree, account_number)
    if not folders:
        raise NotFound(f"no folder is filed under account number {account_number!r}",
                       "account_number")
    excluded = set(excluded_ids)
    allowance = _Budget(budget)
    parts: list[str] = []
    sources: list[Source] = []
    for folder in folders:
        header = allowance.take(f"# Company: {folder.name} (account {account_number}) "
                                f"[id: {folder.id}]\n\n", cuttable=False)
        if header is None:
            break
        parts.append(header)
        for trail, article in _walk(_subtree(tree, folder.id), folder.id, [], excluded):
            where = " / ".join([*trail, article.name])
            text = allowance.take(f"## {where} [id: {article.id}]\n\n"
                                  f"{article_text(article)}\n\n")
            if text is None:
                break
            parts.append(text)
            sources.append(Source(id=article.id, name=article.name,
                                  path=" / ".join([folder.name, *trail]),
                                  cut=text.endswith(CUT_MARK)))
        if allowance.truncated:
            break
    return Context(markdown="".join(parts), sources=sources, truncated=allowance.truncated,
                   budget=budget, folders=[Crumb(id=f.id, name=f.name) for f in folders])


def to_dict(context: Context) -> dict[str, Any]:
    return {
        "context": context.markdown,
        "chars": len(context.markdown),
        "budget": context.budget,
        "truncated": context.truncated,
        "sources": [{"id": s.id, "name": s.name, "path": s.path, "cut": s.cut}
                    for s in context.sources],
        "attached_folders": [{"id": c.id, "name": c.name} for c in context.attached_folders],
        "folders": [{"id": c.id, "name": c.name} for c in context.folders],
    }
