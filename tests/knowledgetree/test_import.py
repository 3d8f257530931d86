"""Export and import of a subtree: all or nothing, names checked as on create."""

from __future__ import annotations

import pytest

from hivematrix.knowledgetree.items import (
    ROOT_ID,
    KnowledgeError,
    KnowledgeTree,
    NameTaken,
    NotFound,
    ReadOnly,
)

BY = "alice"

TREE = [
    {"name": "Runbooks", "type": "folder", "is_attached": True, "children": [
        {"name": "Backups", "type": "article", "content": "<p>nightly</p>",
         "content_format": "html"},
        {"name": "Printers", "type": "article", "content": "# jams", "metadata": {"t": 1}},
    ]},
    {"name": "Empty", "type": "folder"},
    {"name": "Welcome", "type": "article", "content": "hi"},
]


def test_export_wipe_import_round_trip(tree: KnowledgeTree) -> None:
    assert tree.import_items(ROOT_ID, TREE, by=BY) == 5
    exported = tree.export_subtree()
    assert [entry["name"] for entry in exported] == ["Empty", "Runbooks", "Welcome"]
    runbooks = exported[1]
    assert runbooks["is_attached"] is True
    assert [(c["name"], c["content_format"]) for c in runbooks["children"]] == [
        ("Backups", "html"), ("Printers", "markdown")]
    for entry in tree.children(ROOT_ID):
        tree.delete(entry.id, by=BY)
    assert tree.export_subtree() == []
    assert tree.import_items(ROOT_ID, exported, by=BY) == 5
    assert tree.export_subtree() == exported
    printers = next(i for i in tree.children(tree.children(ROOT_ID)[1].id)
                    if i.name == "Printers")
    assert printers.metadata == {"t": 1} and printers.created_by == BY
    assert tree.search("nightly").hits[0].item.name == "Backups"  # indexed like any item


def test_import_clashing_with_a_sibling_writes_nothing(tree: KnowledgeTree) -> None:
    existing = tree.create(ROOT_ID, "welcome", "folder", by=BY)
    with pytest.raises(NameTaken) as taken:
        tree.import_items(ROOT_ID, TREE, by=BY)
    assert taken.value.field == "items[2].name" and taken.value.existing_id == existing.id
    assert [item.name for item in tree.children(ROOT_ID)] == ["welcome"]
    assert tree.counts() == {"folders": 1, "articles": 0, "files": 0}


@pytest.mark.parametrize(("entries", "field"), [
    ([{"name": "a/b"}], "items[0].name"),
    ([{"name": "F", "type": "folder", "children": [{"name": ""}]}], "items[0].children[0].name"),
    ([{"name": "A", "children": [{"name": "x"}]}], "items[0].children"),
    ([{"name": "A", "type": "root"}], "items[0].type"),
    ([{"name": "A", "content": 3}], "items[0].content"),
    ([{"name": "A", "is_attached": True}], "items[0].is_attached"),
    ([{"name": "A", "metadata": [1]}], "items[0].metadata"),
    (["not an object"], "items[0]"),
    ({"name": "not a list"}, "items"),
])
def test_import_refuses_bad_entries_naming_them(tree: KnowledgeTree, entries: object,
                                                field: str) -> None:
    with pytest.raises(KnowledgeError) as refused:
        tree.import_items(ROOT_ID, entries, by=BY)
    assert refused.value.field == field
    assert tree.children(ROOT_ID) == []


def test_import_duplicates_within_a_folder_and_bad_parents(tree: KnowledgeTree) -> None:
    with pytest.raises(NameTaken) as twice:
        tree.import_items(ROOT_ID, [{"name": "Same"}, {"name": "SAME"}], by=BY)
    assert twice.value.field == "items[1].name"
    with pytest.raises(NotFound):
        tree.import_items("gone", [{"name": "A"}], by=BY)
    note = tree.create(ROOT_ID, "Note", "article", by=BY)
    with pytest.raises(KnowledgeError) as under_article:
        tree.import_items(note.id, [{"name": "A"}], by=BY)
    assert under_article.value.field == "parent_id"
    with pytest.raises(ReadOnly):
        tree.import_items(ROOT_ID, [{"name": "A", "read_only": True}], by=BY)
    assert tree.import_items(ROOT_ID, [{"name": "A", "read_only": True}], by="sync",
                             allow_read_only=True) == 1
    assert tree.import_items(ROOT_ID, [], by=BY) == 0
    assert [item.name for item in tree.children(ROOT_ID)] == ["A", "Note"]
