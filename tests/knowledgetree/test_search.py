"""Ranked full-text search over names and content, with snippets, paths and pages: on the
graph's full-text call and on the search index alike."""

from __future__ import annotations

from pathlib import Path

import pytest

from hivematrix.knowledgetree.graph import GraphStore
from hivematrix.knowledgetree.items import (
    EXACT_TITLE_BONUS,
    ROOT_ID,
    SCOPE_LIST_MAX,
    KnowledgeError,
    KnowledgeTree,
    NotFound,
)
from tests.knowledgetree.conftest import indexed

BY = "alice"


@pytest.fixture(params=["graph", "index"])
def tree(request: pytest.FixtureRequest, store: GraphStore, tmp_path: Path) -> KnowledgeTree:
    """Every test here twice: the graph's full-text call, and the search index (which must
    answer every search itself: a fallback fails the test)."""
    if request.param == "index":
        return indexed(store, tmp_path)
    knowledge = KnowledgeTree(store, tmp_path / "files")
    knowledge.ensure_ready()
    return knowledge


def test_exact_title_outranks_body_mentions(tree: KnowledgeTree) -> None:
    docs = tree.create(ROOT_ID, "Docs", "folder", by=BY)
    howto = tree.create(docs.id, "Howtos", "folder", by=BY)
    tree.create(howto.id, "Office move", "article", by=BY,
                content="Bring the printer. The printer must be packed. Printer cables too.")
    tree.create(docs.id, "Printer setup", "article", by=BY, content="Steps")
    exact = tree.create(ROOT_ID, "Printer", "article", by=BY, content="Model list")
    tree.create(ROOT_ID, "Unrelated", "article", by=BY, content="nothing here")
    page = tree.search("printer")
    assert page.total == 3
    names = [hit.item.name for hit in page.hits]
    assert names[0] == "Printer" and page.hits[0].item.id == exact.id
    assert names == ["Printer", "Printer setup", "Office move"]  # a title beats a body
    assert page.hits[0].score > page.hits[1].score > page.hits[2].score
    body = page.hits[2]
    assert [crumb.name for crumb in body.path][1:] == ["Docs", "Howtos"]
    assert body.path[0].id == ROOT_ID
    assert body.snippet.startswith("Bring the printer")
    assert [body.snippet[start:end].lower() for start, end in body.highlights] == [
        "printer"] * 3


def test_every_word_must_match_and_the_last_is_a_prefix(tree: KnowledgeTree) -> None:
    tree.create(ROOT_ID, "VPN", "article", by=BY, content="Reset the firewall password")
    tree.create(ROOT_ID, "Wifi", "article", by=BY, content="Reset the router")
    assert [h.item.name for h in tree.search("reset firew").hits] == ["VPN"]
    assert {h.item.name for h in tree.search("reset").hits} == {"VPN", "Wifi"}
    assert tree.search("reset printer").total == 0


def test_punctuation_and_empty_queries_are_harmless(tree: KnowledgeTree) -> None:
    tree.create(ROOT_ID, "Quote's", "article", by=BY, content="it's (a) [test] | -x @y")
    for query in ("", "   ", "'\")(", "|*~@{}"):
        assert tree.search(query).total == 0
    assert tree.search("test) | (x").total == 1
    assert tree.search("\")--").hits == []


def test_html_content_snippet_is_plain_text(tree: KnowledgeTree) -> None:
    tree.create(ROOT_ID, "Page", "article", by=BY, content_format="html",
                content="<p>Use <b>ticket</b> &amp; escalate</p><script>bad()</script>")
    hit = tree.search("ticket").hits[0]
    assert "<" not in hit.snippet and "&amp;" not in hit.snippet
    assert hit.snippet.startswith("Use ticket & escalate")


def test_pages_and_scope(tree: KnowledgeTree) -> None:
    inside = tree.create(ROOT_ID, "Inside", "folder", by=BY)
    outside = tree.create(ROOT_ID, "Outside", "folder", by=BY)
    for number in range(7):
        tree.create(inside.id, f"Backup {number}", "article", by=BY, content="backup job")
    tree.create(outside.id, "Backup elsewhere", "article", by=BY, content="backup")
    everything = tree.search("backup", limit=100)
    assert everything.total == 8 == len(everything.hits)
    first, second = tree.search("backup", limit=5), tree.search("backup", offset=5, limit=5)
    assert first.total == second.total == 8 and len(first.hits) == 5 and len(second.hits) == 3
    # A full page is counted, a short one is the end, past the end is counted again.
    assert tree.search("backup", offset=8).total == tree.search("backup", offset=50).total == 8
    assert tree.search("backup", offset=7, limit=1).total == 8
    assert ({h.item.id for h in first.hits} | {h.item.id for h in second.hits}
            == {h.item.id for h in everything.hits})
    scoped = tree.search("backup", start_id=inside.id)
    assert scoped.total == 7 and all(h.item.parent_id == inside.id for h in scoped.hits)
    with pytest.raises(NotFound) as unknown:
        tree.search("backup", start_id="gone")
    assert unknown.value.field == "start"
    for bad in ({"offset": -1}, {"limit": 0}, {"limit": 101}):
        with pytest.raises(KnowledgeError):
            tree.search("backup", **bad)


def test_search_follows_renames_edits_and_deletes(tree: KnowledgeTree) -> None:
    note = tree.create(ROOT_ID, "Draft", "article", by=BY, content="alpha")
    tree.update(note.id, by=BY, name="Zebra", content="omega")
    assert tree.search("alpha").total == 0 and tree.search("draft").total == 0
    assert tree.search("zebra").hits[0].item.id == note.id
    assert tree.search("omega").total == 1
    tree.delete(note.id, by=BY)
    assert tree.search("zebra").total == 0


def test_short_common_words_are_searchable(tree: KnowledgeTree) -> None:
    """Stop words are indexed: an article titled "IT" is found, and first."""
    tree.create(ROOT_ID, "How it works", "article", by=BY, content="the basics")
    exact = tree.create(ROOT_ID, "IT", "article", by=BY, content="department")
    page = tree.search("it")
    assert page.hits[0].item.id == exact.id and page.total == 2
    assert [hit.item.name for hit in tree.search("the").hits] == ["How it works"]


def test_pages_across_exact_titles_are_one_ranking(tree: KnowledgeTree) -> None:
    """Exact titles come first on whichever page they fall; pages of any size, laid end to
    end, are the single ranking: no hit twice, none lost, scores never rising."""
    folders = [tree.create(ROOT_ID, f"Site {n}", "folder", by=BY) for n in range(3)]
    exact = {tree.create(folder.id, "Toner", "article", by=BY, content=f"model {n}").id
             for n, folder in enumerate(folders)}
    for number in range(9):
        tree.create(folders[number % 3].id, f"Order {number}", "article", by=BY,
                    content="toner " * (number + 1) + "for the front desk")
    tree.create(ROOT_ID, "Toner cartridges", "article", by=BY, content="see orders")
    whole = tree.search("Toner", limit=100)
    assert whole.total == 13 == len(whole.hits)
    assert {hit.item.id for hit in whole.hits[:3]} == exact
    assert all(hit.item.id not in exact for hit in whole.hits[3:])
    scores = [hit.score for hit in whole.hits]
    assert scores == sorted(scores, reverse=True)
    for size in (1, 2, 4, 5):
        laid = [hit.item.id for offset in range(0, 14, size)
                for hit in tree.search("toner", offset=offset, limit=size).hits]
        assert laid == [hit.item.id for hit in whole.hits], size
    assert tree.search("toner", offset=13).hits == []


def test_exact_titles_outside_the_scope_do_not_count(tree: KnowledgeTree) -> None:
    inside = tree.create(ROOT_ID, "Inside", "folder", by=BY)
    tree.create(ROOT_ID, "Firewall", "article", by=BY, content="rules")
    tree.create(inside.id, "Firewall rules", "article", by=BY, content="ports")
    tree.create(inside.id, "Router", "article", by=BY, content="behind the firewall")
    page = tree.search("firewall", start_id=inside.id)
    assert page.total == 2
    assert [hit.item.name for hit in page.hits] == ["Firewall rules", "Router"]
    assert all(hit.score < 1000 for hit in page.hits)
    assert tree.search("firewall").hits[0].item.name == "Firewall"


def test_paths_and_parents_are_walked_up_from_each_hit(tree: KnowledgeTree) -> None:
    parent = ROOT_ID
    names = []
    for depth in range(6):
        names.append(f"Level {depth}")
        parent = tree.create(parent, names[-1], "folder", by=BY).id
    deep = tree.create(parent, "Deep note", "article", by=BY, content="quasar")
    top = tree.create(ROOT_ID, "Top note", "article", by=BY, content="quasar")
    hits = {hit.item.id: hit for hit in tree.search("quasar").hits}
    assert [crumb.name for crumb in hits[deep.id].path] == ["KnowledgeTree", *names]
    assert hits[deep.id].item.parent_id == parent == hits[deep.id].path[-1].id
    assert [crumb.id for crumb in hits[top.id].path] == [ROOT_ID]
    assert hits[top.id].item.parent_id == ROOT_ID
    assert tree.breadcrumbs(deep.id)[:-1] == hits[deep.id].path
    assert [crumb.name for crumb in tree.breadcrumbs(deep.id)] == [
        "KnowledgeTree", *names, "Deep note"]
    with pytest.raises(NotFound):
        tree.breadcrumbs("missing")


def test_small_and_large_scopes_find_the_same_hits(tree: KnowledgeTree) -> None:
    """A subtree up to SCOPE_LIST_MAX nodes is matched by its keys, a larger one by walking
    up from each hit: both keep exactly the hits inside."""
    small = tree.create(ROOT_ID, "Small", "folder", by=BY)
    big = tree.create(ROOT_ID, "Big", "folder", by=BY)
    tree.import_items(small.id, [{"name": "Shelf", "type": "folder", "children": [
        {"name": f"Small {n}", "content": "alpha" if n % 2 else "beta"} for n in range(6)]}],
        by=BY)
    tree.import_items(big.id, [{"name": "Shelf", "type": "folder", "children": [
        {"name": f"Big {n}", "content": "alpha" if n % 2 else "beta"}
        for n in range(SCOPE_LIST_MAX + 20)]}], by=BY)
    tree.create(ROOT_ID, "Alpha", "article", by=BY, content="outside both")
    assert tree.search("alpha").total == 3 + (SCOPE_LIST_MAX + 20) // 2 + 1
    for folder, count, prefix in ((small, 3, "Small"), (big, (SCOPE_LIST_MAX + 20) // 2, "Big")):
        page = tree.search("alpha", start_id=folder.id, limit=100)
        assert page.total == count
        assert all(hit.item.name.startswith(prefix) for hit in page.hits)
        assert all(hit.path[1].id == folder.id for hit in page.hits)
        exact = tree.search("alpha", start_id=folder.id, limit=1)
        assert exact.hits[0].score < EXACT_TITLE_BONUS  # "Alpha" at root is out of scope
