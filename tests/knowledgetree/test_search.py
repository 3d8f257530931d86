"""Ranked full-text search over names and content, with snippets, paths and pages."""

from __future__ import annotations

import pytest

from hivematrix.knowledgetree.items import ROOT_ID, KnowledgeError, KnowledgeTree, NotFound

BY = "alice"


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
