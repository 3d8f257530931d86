"""Whole-tree operations for administrators: wipe, and an import checked without writing.

Plain Python over :class:`~hivematrix.knowledgetree.items.KnowledgeTree`; no Flask.
"""

from __future__ import annotations

from typing import Any

from hivematrix.knowledgetree.items import ROOT_ID, KnowledgeTree, NameTaken

#: What an administrator types to wipe the tree.
WIPE_PHRASE = "WIPE"
EXPORT_FORMAT = "hivematrix-knowledgetree"
EXPORT_VERSION = 1


def wipe(tree: KnowledgeTree, *, by: str) -> dict[str, int]:
    """Delete every item under root (synced ones too), their files and revisions; root stays.

    Item by item through :meth:`KnowledgeTree.delete`, so the schema (unique constraints,
    indexes) other workers rely on is never dropped, and files leave the disk with their nodes.
    """
    before = tree.counts()
    with tree.search_batch():  # one search-index commit for the whole wipe
        for child in tree.children(ROOT_ID):
            tree.delete(child.id, by=by, allow_read_only=True)
    for stored in tree.files(ROOT_ID):
        tree.delete_file(stored.id, by=by, allow_read_only=True)
    tree.sweep_files()
    return before


def export_document(tree: KnowledgeTree, item_id: str = ROOT_ID) -> dict[str, Any]:
    return {"format": EXPORT_FORMAT, "version": EXPORT_VERSION, "parent_id": item_id,
            "items": tree.export_subtree(item_id)}


def _count(entries: list[dict[str, Any]], counts: dict[str, int]) -> None:
    for entry in entries:
        kind = "folders" if entry.get("type") == "folder" else "articles"
        counts[kind] += 1
        children = entry.get("children") or []
        if isinstance(children, list):
            _count(children, counts)


def check_import(tree: KnowledgeTree, parent_id: str, entries: object, *, by: str,
                 allow_read_only: bool) -> dict[str, Any]:
    """What :meth:`KnowledgeTree.import_items` would do, without writing: every entry is
    checked the same way (the first fault raises, naming the entry), the parent must be a
    folder, and a top-level name already used there is refused as the import would."""
    parent = tree.get(parent_id, "parent_id")
    if not parent.is_folder:
        from hivematrix.knowledgetree.items import KnowledgeError

        raise KnowledgeError("an article cannot hold other items", "parent_id")
    # The import's own checks, run on a scratch list (nothing reaches the graph).
    top_keys = tree._flatten(parent_id, entries, "items", by, "", [], [], allow_read_only)
    taken = {child.name_key: child for child in _children_keys(tree, parent_id)}
    for index, key in enumerate(top_keys):
        if key in taken:
            error = NameTaken(f"{parent.name!r} already holds an item named "
                              f"{taken[key].name!r}", taken[key].id)
            error.field = f"items[{index}].name"
            raise error
    counts = {"folders": 0, "articles": 0}
    assert isinstance(entries, list)  # _flatten refused anything else
    _count(entries, counts)
    return {"parent_id": parent_id, **counts, "total": counts["folders"] + counts["articles"]}


class _Keyed:
    def __init__(self, item_id: str, name: str, key: str) -> None:
        self.id, self.name, self.name_key = item_id, name, key


def _children_keys(tree: KnowledgeTree, parent_id: str) -> list[_Keyed]:
    rows = tree.store.query(
        "MATCH (:ContextItem {id: $id})-[:PARENT_OF]->(child:ContextItem) "
        "RETURN child.id AS id, child.name AS name, child.name_key AS key", {"id": parent_id})
    return [_Keyed(row["id"], row["name"], row["key"]) for row in rows]
