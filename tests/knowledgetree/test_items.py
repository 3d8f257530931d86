"""The tree's invariants against a real FalkorDB (and Neo4j when configured)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from hivematrix.knowledgetree.graph import ConstraintViolation, GraphStore
from hivematrix.knowledgetree.items import (
    MAX_REVISIONS,
    ROOT_ID,
    KnowledgeError,
    KnowledgeTree,
    MoveCycle,
    NameTaken,
    NotFound,
    ReadOnly,
    RootProtected,
)

BY = "alice"


def test_root_exists_once(tree: KnowledgeTree) -> None:
    tree.ensure_ready()  # idempotent
    root = tree.get(ROOT_ID)
    assert root.type == "root" and root.parent_id is None
    assert tree.children(ROOT_ID) == []
    assert tree.breadcrumbs(ROOT_ID)[0].id == ROOT_ID


def test_create_and_read_back(tree: KnowledgeTree) -> None:
    folder = tree.create(ROOT_ID, "  Runbooks ", "folder", by=BY, is_attached=True)
    article = tree.create(folder.id, "Printers", "article", by=BY, content="# Jams",
                          content_format="markdown", metadata={"tags": ["hw"]})
    got = tree.get(article.id)
    assert got == article
    assert got.name == "Printers" and got.parent_id == folder.id and got.content == "# Jams"
    assert got.metadata == {"tags": ["hw"]} and got.source == "manual"
    assert got.created_by == BY == got.updated_by and got.created_at == got.updated_at
    assert tree.get(folder.id).name == "Runbooks" and tree.get(folder.id).is_attached


@pytest.mark.parametrize("name", ["", "   ", "a/b", "back\\slash", "tab\there", "x" * 256])
def test_bad_names_refused(tree: KnowledgeTree, name: str) -> None:
    with pytest.raises(KnowledgeError) as refused:
        tree.create(ROOT_ID, name, "folder", by=BY)
    assert refused.value.field == "name"
    assert tree.children(ROOT_ID) == []


def test_bad_choices_refused(tree: KnowledgeTree) -> None:
    for kwargs, field in (({"type": "root"}, "type"), ({"content_format": "rtf"},
                          "content_format"), ({"source": "psa"}, "source")):
        arguments = {"type": "article", **kwargs}
        with pytest.raises(KnowledgeError) as refused:
            tree.create(ROOT_ID, "x", by=BY, **arguments)  # type: ignore[arg-type]
        assert refused.value.field == field
    with pytest.raises(KnowledgeError) as refused:
        tree.create(ROOT_ID, "x", "article", by=BY, is_attached=True)
    assert refused.value.field == "is_attached"
    assert tree.children(ROOT_ID) == []


def test_parent_must_exist_and_be_a_folder(tree: KnowledgeTree) -> None:
    with pytest.raises(NotFound) as missing:
        tree.create("no-such-id", "x", "article", by=BY)
    assert missing.value.field == "parent_id"
    article = tree.create(ROOT_ID, "Note", "article", by=BY)
    with pytest.raises(KnowledgeError) as under_article:
        tree.create(article.id, "Child", "article", by=BY)
    assert under_article.value.field == "parent_id"
    assert tree.children(article.id) == []
    assert tree.counts() == {"folders": 0, "articles": 1, "files": 0}


def test_sibling_names_unique_on_create(tree: KnowledgeTree) -> None:
    first = tree.create(ROOT_ID, "Acme", "folder", by=BY)
    for name in ("Acme", "acme", " ACME "):
        with pytest.raises(NameTaken) as taken:
            tree.create(ROOT_ID, name, "article", by=BY)
        assert taken.value.existing_id == first.id and taken.value.field == "name"
    other = tree.create(ROOT_ID, "Other", "folder", by=BY)
    tree.create(other.id, "Acme", "folder", by=BY)  # the same name elsewhere is fine
    assert [item.name for item in tree.children(ROOT_ID)] == ["Acme", "Other"]


def test_sibling_names_unique_on_rename(tree: KnowledgeTree) -> None:
    tree.create(ROOT_ID, "Alpha", "article", by=BY)
    beta = tree.create(ROOT_ID, "Beta", "article", by=BY, content="b")
    with pytest.raises(NameTaken):
        tree.update(beta.id, by=BY, name="ALPHA")
    assert tree.get(beta.id).name == "Beta"
    assert tree.update(beta.id, by=BY, name="beta").name == "beta"  # its own name, re-cased
    renamed = tree.update(beta.id, by="bob", name="Gamma")
    assert renamed.name == "Gamma" and renamed.updated_by == "bob"
    tree.create(ROOT_ID, "Beta", "article", by=BY)  # the old name is free again


def test_sibling_names_unique_on_move(tree: KnowledgeTree) -> None:
    left = tree.create(ROOT_ID, "Left", "folder", by=BY)
    right = tree.create(ROOT_ID, "Right", "folder", by=BY)
    tree.create(right.id, "Doc", "article", by=BY)
    doc = tree.create(left.id, "doc", "article", by=BY)
    with pytest.raises(NameTaken) as taken:
        tree.move(doc.id, right.id, by=BY)
    assert taken.value.existing_id != doc.id
    assert tree.get(doc.id).parent_id == left.id
    # Once moved, the name is taken at the new place and free at the old one.
    tree.update(doc.id, by=BY, name="Doc 2")
    moved = tree.move(doc.id, right.id, by=BY)
    assert moved.parent_id == right.id
    tree.create(left.id, "Doc 2", "article", by=BY)
    with pytest.raises(NameTaken):
        tree.create(right.id, "doc 2", "article", by=BY)


def test_concurrent_creates_of_one_name_leave_one(tree: KnowledgeTree) -> None:
    folder = tree.create(ROOT_ID, "Shared", "folder", by=BY)
    outcomes: list[str] = []
    lock = threading.Lock()
    start = threading.Barrier(8)

    def create(index: int) -> None:
        start.wait()
        for round_ in range(10):
            try:
                tree.create(folder.id, f"Same {round_}", "article", by=f"user{index}")
                result = "created"
            except NameTaken:
                result = "taken"
            with lock:
                outcomes.append(result)

    threads = [threading.Thread(target=create, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert outcomes.count("created") == 10 and outcomes.count("taken") == 70
    names = [item.name for item in tree.children(folder.id)]
    assert sorted(names) == sorted(f"Same {i}" for i in range(10))


def test_concurrent_moves_cannot_build_a_cycle(tree: KnowledgeTree) -> None:
    for _ in range(5):
        a = tree.create(ROOT_ID, "A", "folder", by=BY)
        b = tree.create(ROOT_ID, "B", "folder", by=BY)
        start = threading.Barrier(2)
        errors: list[Exception] = []

        def move(item: str, target: str, start: threading.Barrier,
                 errors: list[Exception]) -> None:
            start.wait()
            try:
                tree.move(item, target, by=BY)
            except MoveCycle as exc:
                errors.append(exc)

        threads = [threading.Thread(target=move, args=(a.id, b.id, start, errors)),
                   threading.Thread(target=move, args=(b.id, a.id, start, errors))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len(errors) == 1
        # Both still hang from root, one inside the other.
        assert {crumb.id for crumb in tree.breadcrumbs(a.id)} | {
            crumb.id for crumb in tree.breadcrumbs(b.id)} == {ROOT_ID, a.id, b.id}
        top = a if tree.get(a.id).parent_id == ROOT_ID else b
        tree.delete(top.id, by=BY)
    assert tree.children(ROOT_ID) == []


def test_root_cannot_be_deleted_moved_or_renamed(tree: KnowledgeTree) -> None:
    folder = tree.create(ROOT_ID, "F", "folder", by=BY)
    with pytest.raises(RootProtected):
        tree.delete(ROOT_ID, by=BY)
    with pytest.raises(RootProtected):
        tree.move(ROOT_ID, folder.id, by=BY)
    with pytest.raises(RootProtected):
        tree.update(ROOT_ID, by=BY, name="Mine")
    assert tree.get(ROOT_ID).parent_id is None
    assert tree.update(ROOT_ID, by=BY, content="Welcome").content == "Welcome"


def test_move_refuses_cycles_and_bad_targets(tree: KnowledgeTree) -> None:
    top = tree.create(ROOT_ID, "Top", "folder", by=BY)
    middle = tree.create(top.id, "Middle", "folder", by=BY)
    bottom = tree.create(middle.id, "Bottom", "folder", by=BY)
    article = tree.create(ROOT_ID, "Note", "article", by=BY)
    for target in (top.id, middle.id, bottom.id):
        with pytest.raises(MoveCycle) as refused:
            tree.move(top.id, target, by=BY)
        assert refused.value.field == "new_parent_id"
    with pytest.raises(KnowledgeError) as into_article:
        tree.move(middle.id, article.id, by=BY)
    assert into_article.value.field == "new_parent_id"
    with pytest.raises(NotFound):
        tree.move(middle.id, "gone", by=BY)
    with pytest.raises(NotFound):
        tree.move("gone", top.id, by=BY)
    assert [c.name for c in tree.breadcrumbs(bottom.id)] == [
        tree.get(ROOT_ID).name, "Top", "Middle", "Bottom"]
    # A legal move takes the subtree along.
    tree.move(middle.id, ROOT_ID, by=BY)
    assert [c.id for c in tree.breadcrumbs(bottom.id)] == [ROOT_ID, middle.id, bottom.id]
    assert tree.children(top.id) == []


def test_children_order_breadcrumbs_and_folder_tree(tree: KnowledgeTree) -> None:
    b = tree.create(ROOT_ID, "beta", "folder", by=BY)
    tree.create(ROOT_ID, "Zeta note", "article", by=BY)
    tree.create(ROOT_ID, "alpha note", "article", by=BY)
    a = tree.create(ROOT_ID, "Alpha", "folder", by=BY, is_attached=True)
    deep = tree.create(b.id, "Deep", "folder", by=BY)
    tree.create(deep.id, "leaf", "article", by=BY)
    assert [item.name for item in tree.children(ROOT_ID)] == [
        "Alpha", "beta", "alpha note", "Zeta note"]
    assert [(c.id, c.name) for c in tree.breadcrumbs(deep.id)][1:] == [
        (b.id, "beta"), (deep.id, "Deep")]
    folders = tree.folder_tree()
    assert folders.id == ROOT_ID
    assert [(f.name, f.is_attached) for f in folders.children] == [
        ("Alpha", True), ("beta", False)]
    assert [f.name for f in folders.children[1].children] == ["Deep"]
    assert folders.children[1].children[0].children == []  # articles are not folders
    with pytest.raises(NotFound):
        tree.breadcrumbs("gone")
    with pytest.raises(NotFound):
        tree.children("gone")
    assert a.is_folder


def test_read_only_items_change_only_through_the_sync(tree: KnowledgeTree) -> None:
    with pytest.raises(ReadOnly):
        tree.create(ROOT_ID, "Generated", "folder", by=BY, read_only=True)
    company = tree.create(ROOT_ID, "Acme", "folder", by="sync", read_only=True,
                          source="codex", account_number="A-1", allow_read_only=True)
    contact = tree.create(company.id, "Contact", "article", by="sync", read_only=True,
                          source="codex", content="generated", allow_read_only=True)
    elsewhere = tree.create(ROOT_ID, "Elsewhere", "folder", by=BY)
    with pytest.raises(ReadOnly):
        tree.update(contact.id, by=BY, content="mine")
    with pytest.raises(ReadOnly):
        tree.update(contact.id, by=BY, name="Renamed")
    with pytest.raises(ReadOnly):
        tree.move(contact.id, elsewhere.id, by=BY)
    with pytest.raises(ReadOnly):
        tree.delete(contact.id, by=BY)
    with pytest.raises(ReadOnly):
        tree.attach_file(contact.id, "x.txt", b"x", by=BY)
    # A person may write beside generated content, but not delete the generated folder.
    note = tree.create(company.id, "My note", "article", by=BY, content="mine")
    with pytest.raises(ReadOnly):
        tree.delete(company.id, by=BY)
    # A manual folder holding a generated item cannot be deleted by a person either.
    tree.move(note.id, elsewhere.id, by=BY)
    tree.create(elsewhere.id, "Synced", "article", by="sync", read_only=True,
                allow_read_only=True)
    with pytest.raises(ReadOnly):
        tree.delete(elsewhere.id, by=BY)
    assert tree.get(contact.id).content == "generated"
    assert tree.get(company.id).account_number == "A-1"
    # The sync itself may.
    assert tree.update(contact.id, by="sync", content="new", allow_read_only=True).content == "new"
    assert tree.delete(company.id, by="sync", allow_read_only=True) == 2
    assert tree.find(contact.id) is None


def test_subtree_delete_removes_items_revisions_and_files(tree: KnowledgeTree) -> None:
    top = tree.create(ROOT_ID, "Top", "folder", by=BY)
    sub = tree.create(top.id, "Sub", "folder", by=BY)
    article = tree.create(sub.id, "Doc", "article", by=BY, content="v1")
    tree.update(article.id, by=BY, content="v2")
    kept = tree.create(ROOT_ID, "Kept", "article", by=BY)
    files = [tree.attach_file(top.id, "top.pdf", b"%PDF", by=BY, content_type="application/pdf"),
             tree.attach_file(article.id, "notes.txt", b"hello", by=BY),
             tree.attach_file(article.id, "no extension", b"raw", by=BY)]
    other = tree.attach_file(kept.id, "kept.txt", b"stay", by=BY)
    paths = [tree.file(f.id)[1] for f in files]
    assert all(path.read_bytes() for path in paths)
    assert tree.files(article.id)[0].original_filename == "notes.txt"
    assert tree.delete(top.id, by=BY) == 3
    assert not any(path.exists() for path in paths)
    for gone in (top.id, sub.id, article.id):
        assert tree.find(gone) is None
    with pytest.raises(NotFound):
        tree.file(files[0].id)
    assert tree.file(other.id)[1].read_bytes() == b"stay"
    assert tree.counts() == {"folders": 0, "articles": 1, "files": 1}
    assert tree.store.query("MATCH (r:Revision) RETURN count(r) AS n")[0]["n"] == 0
    with pytest.raises(NotFound):
        tree.delete(top.id, by=BY)


def test_file_delete_and_sweep(tree: KnowledgeTree) -> None:
    note = tree.create(ROOT_ID, "Note", "article", by=BY)
    stored = tree.attach_file(note.id, "Report.PDF", b"%PDF-1", by=BY)
    assert stored.stored_name.endswith(".pdf") and stored.size == 6
    _, path = tree.file(stored.id)
    stray = tree.files_dir / "00000000-0000-0000-0000-000000000000.txt"
    stray.write_bytes(b"left behind")
    assert tree.sweep_files() == 1
    assert path.exists() and not stray.exists()
    tree.delete_file(stored.id, by=BY)
    assert not path.exists() and tree.files(note.id) == []


def test_revisions_pruned_to_twenty_and_restorable(tree: KnowledgeTree) -> None:
    article = tree.create(ROOT_ID, "Doc", "article", by=BY, content="version 0")
    for number in range(1, 26):
        tree.update(article.id, by=f"user{number}", content=f"version {number}")
    tree.update(article.id, by=BY, content="version 25")  # unchanged: no revision
    revisions = tree.revisions(article.id)
    assert len(revisions) == MAX_REVISIONS
    assert [rev.content for rev in revisions] == [f"version {n}" for n in range(24, 4, -1)]
    assert revisions[0].written_by == "user24" and revisions[0].number == 25
    restored = tree.restore(article.id, revisions[-1].id, by="bob")
    assert restored.content == "version 5" and restored.updated_by == "bob"
    after = tree.revisions(article.id)
    assert len(after) == MAX_REVISIONS and after[0].content == "version 25"
    # A rename is a revision too; folders keep none.
    tree.update(article.id, by=BY, name="Doc renamed")
    assert tree.revisions(article.id)[0].name == "Doc"
    folder = tree.create(ROOT_ID, "F", "folder", by=BY)
    tree.update(folder.id, by=BY, name="G")
    assert tree.revisions(folder.id) == []
    with pytest.raises(NotFound) as unknown:
        tree.restore(article.id, "gone", by=BY)
    assert unknown.value.field == "revision_id"


def test_update_fields(tree: KnowledgeTree) -> None:
    folder = tree.create(ROOT_ID, "F", "folder", by=BY)
    article = tree.create(folder.id, "A", "article", by=BY, content="<p>x</p>",
                          content_format="html")
    changed = tree.update(article.id, by=BY, content="# x", content_format="markdown",
                          metadata={"k": 1})
    assert (changed.content, changed.content_format, changed.metadata) == (
        "# x", "markdown", {"k": 1})
    assert changed.parent_id == folder.id and changed.name == "A"
    assert tree.update(folder.id, by=BY, is_attached=True).is_attached
    with pytest.raises(KnowledgeError) as refused:
        tree.update(article.id, by=BY, is_attached=True)
    assert refused.value.field == "is_attached"
    with pytest.raises(KnowledgeError):
        tree.update(article.id, by=BY, content_format="rtf")
    with pytest.raises(NotFound):
        tree.update("gone", by=BY, content="x")


def test_the_database_itself_refuses_a_duplicate_sibling(tree: KnowledgeTree) -> None:
    """The unique constraint holds even for a write that skips the model's own check."""
    tree.create(ROOT_ID, "Acme", "folder", by=BY)
    with pytest.raises(ConstraintViolation):
        tree.store.write("MATCH (root:ContextItem {id: $root}) "
                         "CREATE (root)-[:PARENT_OF]->(:ContextItem {id: 'x', name: 'acme', "
                         "name_key: 'acme', sibling_key: $key, type: 'folder'})",
                         {"root": ROOT_ID, "key": f"{ROOT_ID}/acme"})
    assert len(tree.children(ROOT_ID)) == 1


def test_workers_starting_together_set_up_once(store: GraphStore, tmp_path: Path) -> None:
    """Several web workers run ensure_ready at once on a fresh graph: no error, one root."""
    graph = store
    trees = [KnowledgeTree(graph, tmp_path / "files") for _ in range(4)]
    start = threading.Barrier(len(trees))
    failures: list[BaseException] = []

    def ready(tree: KnowledgeTree) -> None:
        start.wait()
        try:
            tree.ensure_ready()
        except BaseException as exc:  # collected for the assertion below
            failures.append(exc)

    threads = [threading.Thread(target=ready, args=(tree,)) for tree in trees]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    assert graph.query("MATCH (root:ContextItem {type: 'root'}) RETURN count(root) AS n") == [
        {"n": 1}]
    trees[0].create(ROOT_ID, "Works", "folder", by=BY)
