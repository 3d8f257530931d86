"""The tantivy search index beside the graph: ranking, prefixes, scope, pages, every write
kept in step (in one process, across instances, across processes), the stale marker and the
fallback to the graph, the rebuild, and a client user's confinement through the API."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import tantivy
from click.testing import CliRunner
from flask import Flask
from flask.testing import FlaskClient

from hivematrix.common.testing import HTML, submit_form
from hivematrix.knowledgetree import admin, create_app
from hivematrix.knowledgetree.graph import FalkorDBStore, GraphStore
from hivematrix.knowledgetree.items import EXACT_TITLE_BONUS, ROOT_ID, KnowledgeTree
from hivematrix.knowledgetree.search_index import (
    PREFIX_BODY_SCORE,
    PREFIX_NAME_SCORE,
    STALE_MARKER,
    VERSION_FILE,
    SearchIndex,
)
from hivematrix.knowledgetree.settings import TreeHolder
from tests.knowledgetree.apiapp import (  # noqa: F401 - the fixtures
    ACME,
    client_fixture,
    company_tree,
    kt_app_fixture,
    kt_fixture,
    ok,
)
from tests.knowledgetree.conftest import FalkorDBServer, FallbackSeen, indexed

BY = "alice"
REPO = Path(__file__).resolve().parents[2]


def hits(tree: KnowledgeTree, query: str, **options: Any) -> list[str]:
    return [hit.item.id for hit in tree.search(query, limit=100, **options).hits]


def ranked(page: Any) -> list[tuple[float, str, str, list[Any]]]:
    """A page as ``(-score, id, snippet, highlights)``, best first and, among equal scores,
    by id: the index orders ties by where documents sit in it, which a rebuild changes."""
    found = [(-hit.score, hit.item.id, hit.snippet, hit.highlights) for hit in page.hits]
    scores = [score for score, *_ in found]
    assert scores == sorted(scores)
    return sorted(found)


def agrees(tree: KnowledgeTree, queries: list[str], scopes: list[str]) -> None:
    """The index answers exactly what the graph's full-text call answers: the same hits
    (ties may be ordered differently), totals, parents and paths."""
    for scope in scopes:
        for query in queries:
            indexed_page = tree.search(query, start_id=scope, limit=100)
            graph_page = tree.search(query, start_id=scope, limit=100, use_index=False)
            assert indexed_page.total == graph_page.total, (query, scope)

            def seen(page: Any) -> set[tuple[str, str | None, tuple[str, ...]]]:
                return {(hit.item.id, hit.item.parent_id,
                         tuple(crumb.id for crumb in hit.path)) for hit in page.hits}

            assert seen(indexed_page) == seen(graph_page), (query, scope)


def test_an_exact_title_first_and_a_title_weighs_four_bodies(indexed_tree: KnowledgeTree,
                                                            ) -> None:
    tree = indexed_tree
    # Two articles mirroring each other, so both fields have the same statistics: the word
    # once in a two-word title against once in a two-word body.
    titled = tree.create(ROOT_ID, "Quasar zeta", "article", by=BY, content="omega theta")
    bodied = tree.create(ROOT_ID, "Omega theta", "article", by=BY, content="quasar zeta")
    exact = tree.create(ROOT_ID, "Quasar", "article", by=BY,
                        content="quasar quasar quasar quasar")
    page = tree.search("quasar")
    assert [hit.item.id for hit in page.hits] == [exact.id, titled.id, bodied.id]
    assert page.hits[0].score > EXACT_TITLE_BONUS > page.hits[1].score
    title = page.hits[1].score - PREFIX_NAME_SCORE
    body = page.hits[2].score - PREFIX_BODY_SCORE
    assert 3.5 < title / body < 4.5
    # A body that says it five times still ranks below the one title.
    shouty = tree.create(ROOT_ID, "Notes", "article", by=BY, content="zeta " * 5)
    assert hits(tree, "zeta")[:2] == [titled.id, shouty.id]


def test_every_word_must_match_the_last_as_a_prefix(indexed_tree: KnowledgeTree) -> None:
    tree = indexed_tree
    vpn = tree.create(ROOT_ID, "VPN", "article", by=BY, content="Reset the firewall password")
    wifi = tree.create(ROOT_ID, "Wifi", "article", by=BY, content="Reset the router")
    assert hits(tree, "reset firew") == [vpn.id]
    assert hits(tree, "firewall res") == [vpn.id]
    assert set(hits(tree, "res")) == {vpn.id, wifi.id}
    assert hits(tree, "firew password") == []  # only the last word is a prefix
    assert hits(tree, "r") == []  # one letter is a word, not a prefix
    # A whole word outranks a word it is only the beginning of.
    whole = tree.create(ROOT_ID, "Fire drill", "article", by=BY, content="fire exits")
    assert hits(tree, "fire")[0] == whole.id
    assert set(hits(tree, "fire")) == {whole.id, vpn.id}


def test_scope_pages_and_totals(indexed_tree: KnowledgeTree) -> None:
    tree = indexed_tree
    inside = tree.create(ROOT_ID, "Inside", "folder", by=BY)
    deeper = tree.create(inside.id, "Deeper", "folder", by=BY)
    outside = tree.create(ROOT_ID, "Outside", "folder", by=BY)
    made = {tree.create(deeper.id if n % 2 else inside.id, f"Note {n}", "article", by=BY,
                        content="kestrel " * (n % 5 + 1)).id for n in range(37)}
    tree.create(outside.id, "Kestrel", "article", by=BY, content="elsewhere")
    scoped = tree.search("kestrel", start_id=inside.id, limit=100)
    assert scoped.total == 37 and {hit.item.id for hit in scoped.hits} == made
    assert all(hit.score < EXACT_TITLE_BONUS for hit in scoped.hits)
    assert tree.search("kestrel", start_id=deeper.id).total == 18
    # The start folder itself is part of its subtree, as in the graph's search.
    assert hits(tree, "deeper", start_id=deeper.id) == [deeper.id]
    everything = tree.search("kestrel", limit=100)
    assert everything.total == 38 and everything.hits[0].score > EXACT_TITLE_BONUS
    for size in (1, 5, 7, 20):
        laid = [hit.item.id for offset in range(0, 40, size)
                for hit in tree.search("kestrel", offset=offset, limit=size).hits]
        assert laid == [hit.item.id for hit in everything.hits], size
        assert tree.search("kestrel", offset=size, limit=size).total == 38
    assert tree.search("kestrel", offset=38).hits == []
    assert tree.search("kestrel", offset=38).total == 38
    agrees(tree, ["kestrel", "note", "kes", "elsewhere"],
           [ROOT_ID, inside.id, deeper.id, outside.id])


def test_moves_renames_edits_deletes_imports_and_wipes_keep_it_right(
        indexed_tree: KnowledgeTree) -> None:
    tree = indexed_tree
    queries = ["falcon", "heron", "osprey", "plover", "pelican", "fal", "site"]
    sites = [tree.create(ROOT_ID, f"Site {n}", "folder", by=BY) for n in range(2)]
    shelf = tree.create(sites[0].id, "Shelf", "folder", by=BY)
    box = tree.create(shelf.id, "Box", "folder", by=BY)
    deep = tree.create(box.id, "Falcon", "article", by=BY, content="heron nest")
    tree.create(shelf.id, "Heron", "article", by=BY, content="falcon osprey")
    tree.create(sites[1].id, "Plover", "article", by=BY, content="falcon")

    def check() -> None:
        folders = [ROOT_ID, *(site.id for site in sites), shelf.id, box.id]
        agrees(tree, queries, [folder for folder in folders if tree.find(folder)])

    check()
    tree.move(shelf.id, sites[1].id, by=BY)  # the subtree's ancestors all change
    assert hits(tree, "falcon", start_id=sites[0].id) == []
    assert deep.id in hits(tree, "heron", start_id=sites[1].id)
    check()
    tree.update(deep.id, by=BY, name="Osprey", content="plover ground")
    assert deep.id not in hits(tree, "heron") and deep.id in hits(tree, "plover")
    assert hits(tree, "osprey")[0] == deep.id  # now an exact title
    check()
    revision = tree.revisions(deep.id)[0]
    tree.restore(deep.id, revision.id, by=BY)
    assert deep.id in hits(tree, "heron") and deep.id not in hits(tree, "plover")
    check()
    created = tree.import_items(sites[0].id, [{"name": "Imported", "type": "folder",
                                               "children": [
        {"name": f"Pelican {n}", "content": "falcon" if n % 2 else "heron"}
        for n in range(12)]}], by=BY)
    assert created == 13
    assert tree.search("pelican", start_id=sites[0].id).total == 12
    check()
    assert tree.delete(shelf.id, by=BY) == 4
    assert tree.search("osprey").total == 0 and tree.search("heron").total == 6
    check()
    admin.wipe(tree, by=BY)
    assert tree.search_index is not None and tree.search_index.count() == 1  # root
    for query in queries:
        assert tree.search(query).total == tree.search(query, use_index=False).total == 0


def test_a_write_in_one_instance_is_seen_by_the_next_search_in_another(
        store: GraphStore, tmp_path: Path) -> None:
    first = indexed(store, tmp_path)
    second = KnowledgeTree(store, tmp_path / "files", SearchIndex(tmp_path / "search"))
    assert hits(second, "lantern") == []  # its reader is open, on the old commit
    note = first.create(ROOT_ID, "Lantern", "article", by=BY, content="battery")
    assert hits(second, "lantern") == [note.id]
    second.update(note.id, by=BY, content="candle")
    assert hits(first, "candle") == [note.id] and hits(first, "battery") == []
    first.delete(note.id, by=BY)
    assert hits(second, "lantern") == []


WRITER = textwrap.dedent("""
    import sys
    from pathlib import Path
    from hivematrix.knowledgetree.graph import FalkorDBStore
    from hivematrix.knowledgetree.items import ROOT_ID, KnowledgeTree
    from hivematrix.knowledgetree.search_index import SearchIndex

    port, graph, folder, tag, count, parent = sys.argv[1:7]
    tree = KnowledgeTree(FalkorDBStore(port=int(port), graph=graph), Path(folder) / "files",
                         SearchIndex(Path(folder) / "search"))
    for number in range(int(count)):
        tree.create(parent, f"{tag} {number}", "article", by=tag, content="albatross")
    print("done")
""")


def test_writers_in_two_processes_serialise_and_every_write_lands(
        falkordb_server: FalkorDBServer, tmp_path: Path) -> None:
    graph = f"kt-{uuid.uuid4().hex}"
    store = FalkorDBStore(port=falkordb_server.port, graph=graph)
    try:
        tree = indexed(store, tmp_path)
        folder = tree.create(ROOT_ID, "Shared", "folder", by=BY)
        workers = [subprocess.Popen(
            [sys.executable, "-c", WRITER, str(falkordb_server.port), graph, str(tmp_path),
             tag, "15", folder.id], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True) for tag in ("east", "west")]
        for _ in range(10):  # this process writes meanwhile as well
            tree.create(folder.id, f"here {uuid.uuid4().hex[:6]}", "article", by=BY,
                        content="albatross")
        for worker in workers:
            out, err = worker.communicate(timeout=120)
            assert worker.returncode == 0 and out.strip() == "done", err
        page = tree.search("albatross", start_id=folder.id, limit=100)
        assert page.total == 40 == tree.search("albatross", use_index=False).total
        assert tree.search("east").total == 15 == tree.search("west").total
        assert tree.search_index is not None
        assert tree.search_index.state() == "ready"
    finally:
        store.drop_all()
        store.close()


def test_a_failed_update_marks_it_stale_the_graph_answers_and_a_rebuild_restores(
        store: GraphStore, tmp_path: Path) -> None:
    tree = indexed(store, tmp_path)
    index = tree.search_index
    assert index is not None
    folder = tree.create(ROOT_ID, "Birds", "folder", by=BY)
    for number in range(6):
        tree.create(folder.id, f"Gannet {number}", "article", by=BY, content="cliff colony")
    before = tree.search("gannet", limit=100)
    # Another writer holding tantivy's own lock (not ours): the update cannot be written.
    foreign = tantivy.Index(index.schema, path=str(tmp_path / "search"), reuse=True)
    holding = foreign.writer(15_000_000, 1)
    due: list[bool] = []
    tree.rebuild_due = lambda: due.append(True)
    late = tree.create(folder.id, "Gannet late", "article", by=BY, content="cliff")
    holding.wait_merging_threads()  # let go of tantivy's lock
    assert due and (tmp_path / "search" / STALE_MARKER).exists()
    assert index.state() == "stale"
    # Searches still answer, from the graph, the write included.
    fallback = tree.search("gannet", limit=100)
    assert fallback.total == 7 and late.id in {hit.item.id for hit in fallback.hits}
    assert tree.rebuild_search_index() == 9  # root, the folder, seven articles
    assert index.state() == "ready" and not (tmp_path / "search" / STALE_MARKER).exists()

    def refuse() -> None:
        raise FallbackSeen("the rebuilt index could not answer")

    tree.rebuild_due = refuse
    rebuilt = tree.search("gannet", limit=100)
    assert rebuilt.total == 7
    assert {h.item.id for h in rebuilt.hits} == {h.item.id for h in fallback.hits}
    assert {h.item.id for h in before.hits} | {late.id} == {h.item.id for h in rebuilt.hits}
    agrees(tree, ["gannet", "cliff", "colony", "gan"], [ROOT_ID, folder.id])


def test_a_stale_marker_falls_back_and_the_rebuild_gives_identical_results(
        store: GraphStore, tmp_path: Path) -> None:
    tree = indexed(store, tmp_path)
    index = tree.search_index
    assert index is not None
    top = tree.create(ROOT_ID, "Top", "folder", by=BY)
    for number in range(25):
        tree.create(top.id, f"Puffin {number}", "article", by=BY,
                    content="burrow " * (number % 4 + 1) + ("sea" if number % 3 else ""))
    queries = ["puffin", "burrow", "sea", "puffin 7", "bur"]
    ready = {query: ranked(tree.search(query, limit=100)) for query in queries}
    index.mark_stale("a test")
    due: list[bool] = []
    tree.rebuild_due = lambda: due.append(True)
    for query in queries:
        graph = tree.search(query, limit=100)
        assert {h.item.id for h in graph.hits} == {item for _, item, _, _ in ready[query]}
    assert due
    tree.rebuild_search_index()
    assert index.state() == "ready"
    for query in queries:
        assert ranked(tree.search(query, limit=100)) == ready[query], query


def test_missing_or_empty_index_falls_back_and_the_holder_rebuilds_it(
        falkordb_server: FalkorDBServer, tmp_path: Path) -> None:
    graph = f"kt-{uuid.uuid4().hex}"
    config = {"KT_GRAPH_URL": f"falkordb://127.0.0.1:{falkordb_server.port}/{graph}",
              "KT_GRAPH_TIMEOUT": 10.0, "KT_FILES_DIR": str(tmp_path / "files"),
              "KT_SEARCH_DIR": str(tmp_path / "search"), "HIVEMATRIX_HOME": str(tmp_path)}
    plain = KnowledgeTree(FalkorDBStore(port=falkordb_server.port, graph=graph),
                          tmp_path / "files")
    plain.ensure_ready()
    note = plain.create(ROOT_ID, "Cormorant", "article", by=BY, content="wings")
    holder = TreeHolder(config)
    try:
        assert holder.search_index is not None
        assert holder.search_index.state() == "missing"
        assert holder.search_health().status == "degraded"
        tree = holder.tree()  # first use: a rebuild starts in the background
        assert hits(tree, "cormorant") == [note.id]  # from the graph or the index
        holder.wait_for_rebuild(60)
        assert holder.search_index.state() == "ready"
        health = holder.search_health()
        assert health.status == "healthy" and health.details["documents"] == 2
        assert hits(tree, "cormorant") == [note.id]
    finally:
        holder.store.drop_all()
        holder.close()
        plain.store.close()


def test_disabled_index_searches_the_graph(falkordb_server: FalkorDBServer,
                                           tmp_path: Path) -> None:
    config = {"KT_GRAPH_URL": f"falkordb://127.0.0.1:{falkordb_server.port}/kt-{uuid.uuid4()}",
              "KT_GRAPH_TIMEOUT": 10.0, "HIVEMATRIX_HOME": str(tmp_path),
              "KT_SEARCH_INDEX": "false"}
    holder = TreeHolder(config)
    try:
        tree = holder.tree()
        assert holder.search_index is None and tree.search_index is None
        tree.create(ROOT_ID, "Grebe", "article", by=BY, content="lake")
        assert tree.search("lake").total == 1
        assert holder.search_health().details == {"search_index": "disabled"}
        assert not (tmp_path / "knowledgetree" / "search").exists()
    finally:
        holder.store.drop_all()
        holder.close()


# -- through the app ---------------------------------------------------------------------


def ready_app(app: Flask) -> KnowledgeTree:
    holder: TreeHolder = app.extensions["knowledgetree"]
    tree = holder.tree()
    holder.wait_for_rebuild(60)
    assert holder.search_index is not None
    if holder.search_index.state() != "ready":
        tree.rebuild_search_index()

    def refuse() -> None:
        raise FallbackSeen("the app's search went to the graph")

    tree.rebuild_due = refuse
    return tree


def test_a_client_user_searches_only_their_company_on_the_index(
        kt_app: Flask, client: FlaskClient, kt: KnowledgeTree, as_user: Any) -> None:
    ids = company_tree(kt)
    ready_app(kt_app)
    acme = as_user("client", account_number=ACME)
    assert ok(client.get("/api/search?query=beta", headers=acme))["total"] == 0
    assert ok(client.get("/api/search?query=engineer", headers=acme))["total"] == 0
    found = ok(client.get("/api/search?query=key", headers=acme))
    assert [hit["id"] for hit in found["results"]] == [ids["notes"]]
    staff = ok(client.get("/api/search?query=beta", headers=as_user("technician")))
    assert {hit["id"] for hit in staff["results"]} == {ids["beta"], ids["secret"]}
    health = ok(client.get("/health"))
    assert health["checks"]["search_index"]["status"] == "healthy"


@pytest.fixture
def two_apps(falkordb_server: FalkorDBServer, service_settings: dict[str, Any],
             tmp_path: Path) -> Iterator[tuple[Flask, Flask]]:
    graph = f"kt-api-{uuid.uuid4().hex}"
    shared = {**service_settings,
              "KT_GRAPH_URL": f"falkordb://127.0.0.1:{falkordb_server.port}/{graph}",
              "KT_FILES_DIR": str(tmp_path / "kt-files"),
              "KT_SEARCH_DIR": str(tmp_path / "shared-search")}
    apps = (create_app(shared), create_app(shared))
    yield apps
    apps[0].extensions["knowledgetree"].store.drop_all()
    for app in apps:
        app.extensions["knowledgetree"].close()


def test_two_apps_sharing_the_folder_see_each_others_writes(two_apps: tuple[Flask, Flask],
                                                            as_user: Any) -> None:
    writer_app, reader_app = two_apps
    for app in two_apps:
        ready_app(app)
    writer, reader = writer_app.test_client(), reader_app.test_client()
    staff = as_user("technician")
    made = ok(writer.post("/api/items", headers=staff, json={
        "parent_id": ROOT_ID, "name": "Kittiwake", "content": "ledge"}), 201)
    found = ok(reader.get("/api/search?query=kittiwake", headers=staff))
    assert [hit["id"] for hit in found["results"]] == [made["id"]]
    ok(writer.patch(f"/api/items/{made['id']}", headers=staff, json={"name": "Fulmar"}))
    assert ok(reader.get("/api/search?query=kittiwake", headers=staff))["total"] == 0
    assert ok(reader.get("/api/search?query=fulm", headers=staff))["total"] == 1
    ok(writer.delete(f"/api/items/{made['id']}", headers=staff))
    assert ok(reader.get("/api/search?query=fulmar", headers=staff))["total"] == 0


def test_the_admin_page_shows_the_index_and_rebuilds_it(kt_app: Flask, client: FlaskClient,
                                                        kt: KnowledgeTree,
                                                        as_user: Any) -> None:
    company_tree(kt)
    ready_app(kt_app)
    holder: TreeHolder = kt_app.extensions["knowledgetree"]
    admin_user, technician = as_user("admin"), as_user("technician")
    shown = client.get("/admin", headers={**admin_user, **HTML}).get_data(as_text=True)
    assert 'data-search-state="ready"' in shown and "10 items indexed" in shown
    assert holder.search_index is not None
    holder.search_index.mark_stale("a test")
    shown = client.get("/admin", headers={**admin_user, **HTML}).get_data(as_text=True)
    assert 'data-search-state="stale"' in shown
    refused = submit_form(client, technician, "/admin/search-index", {}, "/")
    assert refused.status_code == 403
    started = submit_form(client, admin_user, "/admin/search-index", {}, "/admin")
    assert started.status_code == 303 and started.headers["Location"].endswith("reindex=1")
    holder.wait_for_rebuild(60)
    shown = client.get("/admin?reindex=1", headers={**admin_user, **HTML}).get_data(True)
    card = shown[shown.index('data-testid="search-index"'):shown.index('data-testid="export"')]
    assert 'data-search-state="ready"' in card and "Last rebuild: 10 items" in card, card
    assert "The rebuild was started." in card
    without = client.post("/admin/search-index", headers={**admin_user, **HTML},
                          data={"go": "1"})
    assert without.status_code == 400 and "CSRF" in without.get_data(as_text=True)


def test_the_reindex_command(falkordb_server: FalkorDBServer, hm_home: Path,
                             monkeypatch: pytest.MonkeyPatch) -> None:
    from hivematrix.cli import main

    graph = f"kt-cli-{uuid.uuid4().hex}"
    monkeypatch.setenv("KNOWLEDGETREE_KT_GRAPH_URL",
                       f"falkordb://127.0.0.1:{falkordb_server.port}/{graph}")
    store = FalkorDBStore(port=falkordb_server.port, graph=graph)
    try:
        tree = KnowledgeTree(store, hm_home / "files")  # written with no index at all
        tree.ensure_ready()
        shelf = tree.create(ROOT_ID, "Shelf", "folder", by=BY)
        note = tree.create(shelf.id, "Sandpiper", "article", by=BY, content="shore")
        index = SearchIndex(hm_home / "knowledgetree" / "search")
        assert index.state() == "missing"
        done = CliRunner().invoke(main, ["knowledgetree", "reindex"])
        assert done.exit_code == 0, done.output
        assert "Search index rebuilt: 3 items" in " ".join(done.output.split())
        assert index.state() == "ready"
        found = index.search(index.words("shore"), start_id=shelf.id)
        assert found.total == 1 and found.hits[0][0] == note.id
        # As a process too, after a change the index did not see.
        store.write("MATCH (n:ContextItem {id: $id}) SET n.content = 'dune'", {"id": note.id})
        executable = shutil.which("hivematrix", path=str(Path(sys.executable).parent))
        assert executable is not None
        finished = subprocess.run([executable, "knowledgetree", "reindex"], capture_output=True,
                                  text=True, timeout=120, check=False)
        assert finished.returncode == 0, finished.stderr
        assert index.search(index.words("dune")).total == 1
        assert index.search(index.words("shore")).total == 0
        monkeypatch.setenv("KNOWLEDGETREE_KT_SEARCH_INDEX", "false")
        off = CliRunner().invoke(main, ["knowledgetree", "reindex"])
        assert off.exit_code == 1 and "turned off" in off.output
    finally:
        store.drop_all()
        store.close()


def test_the_search_answer_is_exactly_its_documented_schema(kt_app: Flask,
                                                            client: FlaskClient,
                                                            kt: KnowledgeTree,
                                                            as_user: Any) -> None:
    """The view writes its JSON itself (no marshmallow dump): it must be what the schema in
    the OpenAPI document says, field for field."""
    from hivematrix.knowledgetree.api.schemas import HitOut, SearchOut

    company_tree(kt)
    ready_app(kt_app)
    body = ok(client.get("/api/search?query=beta", headers=as_user("technician")))
    assert body["total"] == 2 and len(body["results"]) == 2
    assert SearchOut().dump(body) == body
    assert set(body) == set(SearchOut().fields)
    for hit in body["results"]:
        assert set(hit) == set(HitOut().fields)
        assert hit["path"][0] == {"id": ROOT_ID, "name": "KnowledgeTree"}


def test_during_a_rebuild_the_old_index_answers_without_waiting(tmp_path: Path) -> None:
    import threading

    from hivematrix.knowledgetree.search_index import IndexDoc

    index = SearchIndex(tmp_path / "search")
    index.rebuild(lambda: [IndexDoc("root", "KnowledgeTree", "knowledgetree", "", ()),
                           IndexDoc("old", "Curlew", "curlew", "marsh", ("root",))])
    release = threading.Event()

    def slow() -> Iterator[IndexDoc]:
        yield IndexDoc("root", "KnowledgeTree", "knowledgetree", "", ())
        release.wait(30)  # the graph being read, slowly
        yield IndexDoc("new", "Curlew", "curlew", "estuary", ("root",))

    rebuilding = threading.Thread(target=index.rebuild, args=(slow,))
    rebuilding.start()
    try:
        begun = time.monotonic()
        found = index.search(index.words("curlew"))
        assert time.monotonic() - begun < 1.0
        assert [item for item, _ in found.hits] == ["old"]
        assert index.state() == "ready"
    finally:
        release.set()
        rebuilding.join(30)
    assert [item for item, _ in index.search(index.words("curlew")).hits] == ["new"]
    assert index.search(index.words("marsh")).total == 0


def test_at_start_an_index_that_missed_writes_is_rebuilt(falkordb_server: FalkorDBServer,
                                                         tmp_path: Path) -> None:
    """A process that wrote the graph and died before updating the index: the next process
    to start finds other numbers of items in the two and rebuilds, the old index answering
    meanwhile."""
    graph = f"kt-{uuid.uuid4().hex}"
    config = {"KT_GRAPH_URL": f"falkordb://127.0.0.1:{falkordb_server.port}/{graph}",
              "KT_GRAPH_TIMEOUT": 10.0, "KT_FILES_DIR": str(tmp_path / "files"),
              "KT_SEARCH_DIR": str(tmp_path / "search"), "HIVEMATRIX_HOME": str(tmp_path)}
    store = FalkorDBStore(port=falkordb_server.port, graph=graph)
    try:
        tree = indexed(store, tmp_path)
        tree.create(ROOT_ID, "Skua", "article", by=BY, content="storm")
        # Written to the graph the way the model does, but the index never told.
        store.write("MATCH (root:ContextItem {id: $root}) "
                    "CREATE (root)-[:PARENT_OF]->(:ContextItem {id: 'lost', name: 'Tern', "
                    "name_key: 'tern', sibling_key: 'root/tern', type: 'article', "
                    "content: 'storm', content_format: 'markdown', metadata: '{}'})",
                    {"root": ROOT_ID})
        assert tree.search("storm").total == 1  # the index does not know it yet
        # Just rebuilt (by indexed()): a process starting now leaves it, as workers do that
        # start while a sync's batch is between its graph writes and its commit.
        soon = TreeHolder(config)
        try:
            soon.tree()
            soon.wait_for_rebuild(60)
            assert soon.last_rebuild is None and tree.search("storm").total == 1
        finally:
            soon.close()
        version = tmp_path / "search" / VERSION_FILE
        an_hour_ago = time.time() - 3600
        os.utime(version, (an_hour_ago, an_hour_ago))
        holder = TreeHolder(config)
        try:
            holder.tree()
            holder.wait_for_rebuild(60)
            assert holder.last_rebuild is not None and holder.last_rebuild["items"] == 3
            assert set(hits(tree, "storm")) == {"lost", *hits(tree, "skua")}
        finally:
            holder.close()
        # The next one to start finds the numbers equal: nothing to do.
        later = TreeHolder(config)
        try:
            later.tree()
            later.wait_for_rebuild(60)
            assert later.last_rebuild is None
        finally:
            later.close()
    finally:
        store.drop_all()
        store.close()


def test_a_rebuild_that_fails_degrades_health_and_search_keeps_the_graph(
        falkordb_server: FalkorDBServer, tmp_path: Path) -> None:
    graph = f"kt-{uuid.uuid4().hex}"
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the index should go", encoding="utf-8")
    config = {"KT_GRAPH_URL": f"falkordb://127.0.0.1:{falkordb_server.port}/{graph}",
              "KT_GRAPH_TIMEOUT": 10.0, "KT_FILES_DIR": str(tmp_path / "files"),
              "KT_SEARCH_DIR": str(blocked), "HIVEMATRIX_HOME": str(tmp_path)}
    holder = TreeHolder(config)
    try:
        tree = holder.tree()
        holder.wait_for_rebuild(60)
        note = tree.create(ROOT_ID, "Shearwater", "article", by=BY, content="ocean")
        assert hits(tree, "ocean") == [note.id]  # from the graph
        health = holder.search_health()
        assert health.status == "degraded"
        assert health.details["search_index"] == "missing"
        assert health.details["rebuilding"] is False
        assert "error" in health.details["last_rebuild"]
    finally:
        holder.store.drop_all()
        holder.close()


def test_a_batch_commits_once_at_its_end(indexed_tree: KnowledgeTree,
                                         tmp_path: Path) -> None:
    tree = indexed_tree
    other = SearchIndex(tmp_path / "search")  # as another process sees the folder
    meta = tmp_path / "search" / "meta.json"
    before = meta.read_bytes()
    with tree.search_batch():
        folder = tree.create(ROOT_ID, "Batch", "folder", by=BY)
        with tree.search_batch():  # nested: still one commit, at the outer end
            notes = [tree.create(folder.id, f"Wren {n}", "article", by=BY, content="hedge")
                     for n in range(5)]
        tree.update(notes[0].id, by=BY, name="Robin")
        tree.move(notes[1].id, ROOT_ID, by=BY)
        tree.delete(notes[2].id, by=BY)
        assert meta.read_bytes() == before  # nothing committed yet
        assert other.search(other.words("hedge")).total == 0
    assert meta.read_bytes() != before
    assert other.search(other.words("hedge")).total == 4
    assert other.search(other.words("hedge"), start_id=folder.id).total == 3
    assert [item for item, _ in other.search(other.words("robin")).hits] == [notes[0].id]
    agrees(tree, ["hedge", "wren", "robin", "batch"], [ROOT_ID, folder.id])


def test_an_index_of_another_version_is_stale_untouched_and_rebuilt(tmp_path: Path) -> None:
    from hivematrix.knowledgetree.search_index import Changes, IndexDoc, SearchIndexError

    folder = tmp_path / "search"
    index = SearchIndex(folder)
    first = [IndexDoc("root", "KnowledgeTree", "knowledgetree", "", ()),
             IndexDoc("a", "Dipper", "dipper", "stream", ("root",))]
    index.rebuild(lambda: first)
    (folder / VERSION_FILE).write_text("0\n", encoding="utf-8")  # an older release's index
    assert index.state() == "stale"
    with pytest.raises(SearchIndexError, match="stale"):
        index.search(index.words("dipper"))
    assert index.write(lambda: Changes(docs=first)) is False  # left for the rebuild
    assert index.rebuild(lambda: first[:1]) == 1
    assert index.state() == "ready" and index.count() == 1
    assert (folder / VERSION_FILE).read_text(encoding="utf-8").strip() != "0"


def test_a_long_batch_commits_when_its_last_commit_is_old_enough(
        indexed_tree: KnowledgeTree, tmp_path: Path) -> None:
    tree = indexed_tree
    other = SearchIndex(tmp_path / "search")
    with tree.search_batch():
        tree.create(ROOT_ID, "Nightjar", "article", by=BY, content="dusk")
        tree.search_flush(every=3600)  # the batch began just now: not yet
        assert other.search(other.words("dusk")).total == 0
        tree.search_flush()  # due
        assert other.search(other.words("dusk")).total == 1
        tree.create(ROOT_ID, "Owl", "article", by=BY, content="dusk")
        tree.search_flush(every=3600)
        assert other.search(other.words("dusk")).total == 1
    assert other.search(other.words("dusk")).total == 2
    tree.search_flush()  # outside a batch: nothing gathered, nothing to do
