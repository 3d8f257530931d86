"""The Codex sync against a real Codex (Ledger's fixture: Codex's app served over HTTP, its
companies created through its API) and the real FalkorDB of the storage tests.

Codex is changed the way people and its own syncs change it: companies, assets and their
removal through its API; tickets and their conversations straight into its database, as its
PSA sync writes them (its API has no way to create a ticket).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from flask.testing import FlaskClient
from markdown_it import MarkdownIt
from sqlalchemy import select

from hivematrix.codex.models import Conversation, Ticket
from hivematrix.common.service_client import ServiceClient
from hivematrix.common.testing import FakeCore
from hivematrix.knowledgetree import scheduler, sync
from hivematrix.knowledgetree.graph import FalkorDBStore, GraphStore
from hivematrix.knowledgetree.items import ROOT_ID, Item, KnowledgeTree
from hivematrix.knowledgetree.settings import parse_graph_url
from tests.codex import seeding
from tests.knowledgetree.conftest import FalkorDBServer, indexed
from tests.knowledgetree.test_search_index import agrees
from tests.ledger.conftest import Codex, codex  # noqa: F401 - the shared real-Codex fixture

SECRET = "knowledgetree-test-secret"
Headers = Callable[..., dict[str, str]]


@pytest.fixture
def reader(codex: Codex, fake_core: FakeCore, hm_home: Path) -> sync.HttpCodexReader:  # noqa: F811
    fake_core.secrets["knowledgetree"] = SECRET
    client = ServiceClient(service_name="knowledgetree", secret=SECRET, core_url=fake_core.url,
                           services_file=str(hm_home / "services.json"))
    # A small page so the company list is read over several pages.
    return sync.HttpCodexReader(client, page_size=2)


@pytest.fixture
def api(codex: Codex) -> FlaskClient:  # noqa: F811
    return codex.app.test_client()


@pytest.fixture
def admin(as_user: Headers) -> dict[str, str]:
    return as_user("admin")


def child(tree: KnowledgeTree, parent_id: str, name: str) -> Item:
    found = [item for item in tree.children(parent_id) if item.name == name]
    assert len(found) == 1, [item.name for item in tree.children(parent_id)]
    return found[0]


def path(tree: KnowledgeTree, *names: str) -> Item:
    item = tree.get(ROOT_ID)
    for name in names:
        item = child(tree, item.id, name)
    return item


def snapshot(tree: KnowledgeTree) -> dict[str, Any]:
    """Every item's stored properties and parent, and every revision id: what a write changes."""
    items = {row["item"]["id"]: (row["parent"], row["item"]) for row in tree.store.query(
        "MATCH (item:ContextItem) OPTIONAL MATCH (parent:ContextItem)-[:PARENT_OF]->(item) "
        "RETURN properties(item) AS item, parent.id AS parent")}
    revisions = sorted(row["id"] for row in tree.store.query(
        "MATCH (revision:Revision) RETURN revision.id AS id"))
    return {"items": items, "revisions": revisions}


def acme(tree: KnowledgeTree) -> Item:
    return path(tree, "Companies", "Acme Dental")


def test_first_sync_writes_the_layout(tree: KnowledgeTree,
                                      reader: sync.HttpCodexReader) -> None:
    seen: list[tuple[int, int, str]] = []
    result = sync.run(tree, reader, progress=lambda *step: seen.append(step))
    assert result.errors == 0, result.messages
    assert result.updated == 0 and result.archived == 0 and result.created > 10

    companies = path(tree, "Companies")
    assert companies.read_only and companies.source == "codex"
    folders = {item.name: item for item in tree.children(companies.id)}
    assert set(folders) == {"Acme Dental", "Beta Law", "Gamma Shop"}
    assert {f.account_number for f in folders.values()} == {"620547", "620548", "620549"}

    company = folders["Acme Dental"]
    names = {item.name: item for item in tree.children(company.id)}
    assert set(names) == {"Overview", "Contacts", "Assets", "Tickets"}
    for item in (company, *names.values()):
        assert item.read_only and item.source == "codex"
    assert "620547" in names["Overview"].content
    contacts = names["Contacts"].content
    assert "## Dana" in contacts and "dana@acme\\.example" in contacts and "## Eli" in contacts
    assert "primary" in contacts
    assets = {item.name for item in tree.children(names["Assets"].id)}
    assert assets == {"SRV1", "PC1"}
    ticket = child(tree, names["Tickets"].id, "#101 Server slow")
    assert ticket.type == "article" and ticket.read_only
    for expected in ("Server slow", "**Status:** closed", "**Priority:** high",
                     "**Hours:** 2\\.00", "**Billable hours logged:** 2\\.00"):
        assert expected in ticket.content
    assert ticket.metadata == {"codex_kind": "ticket", "codex_id": ticket.metadata["codex_id"]}

    # Progress: one step per company (by account number), then done.
    assert seen == [(0, 3, "Acme Dental"), (1, 3, "Beta Law"), (2, 3, "Gamma Shop"),
                    (3, 3, "")]


def test_a_rerun_writes_nothing(tree: KnowledgeTree, reader: sync.HttpCodexReader) -> None:
    sync.run(tree, reader)
    before = snapshot(tree)
    again = sync.run(tree, reader)
    assert (again.created, again.updated, again.archived, again.errors) == (0, 0, 0, 0)
    assert again.unchanged > 10
    assert snapshot(tree) == before  # not even updated_at moved, and no revision


def test_a_renamed_company_renames_its_folder(tree: KnowledgeTree,
                                              reader: sync.HttpCodexReader,
                                              api: FlaskClient,
                                              admin: dict[str, str]) -> None:
    sync.run(tree, reader)
    folder = acme(tree)
    seeding.ok(api.patch("/api/companies/620547", headers=admin,
                         json={"name": "Acme Dental Group"}))
    result = sync.run(tree, reader)
    assert result.errors == 0
    renamed = path(tree, "Companies", "Acme Dental Group")
    assert renamed.id == folder.id and renamed.account_number == "620547"
    assert len(tree.children(path(tree, "Companies").id)) == 3  # no duplicate
    # The overview and contacts name the company, so they changed; their ids did not.
    overview = child(tree, renamed.id, "Overview")
    assert "Acme Dental Group" in overview.content
    assert len(tree.revisions(overview.id)) == 1
    assert sync.run(tree, reader).updated == 0


def test_two_companies_swapping_names_keep_their_folders(tree: KnowledgeTree,
                                                         reader: sync.HttpCodexReader,
                                                         api: FlaskClient,
                                                         admin: dict[str, str]) -> None:
    sync.run(tree, reader)
    beta, gamma = path(tree, "Companies", "Beta Law"), path(tree, "Companies", "Gamma Shop")
    seeding.ok(api.patch("/api/companies/620548", headers=admin, json={"name": "Gamma Shop"}))
    seeding.ok(api.patch("/api/companies/620549", headers=admin, json={"name": "Beta Law"}))
    result = sync.run(tree, reader)
    assert result.errors == 0, result.messages
    assert path(tree, "Companies", "Gamma Shop").id == beta.id
    assert path(tree, "Companies", "Beta Law").id == gamma.id


def test_same_names_are_told_apart(tree: KnowledgeTree, reader: sync.HttpCodexReader,
                                   api: FlaskClient, admin: dict[str, str]) -> None:
    sync.run(tree, reader)
    first = acme(tree)
    companies = path(tree, "Companies")
    # A person's folder already holds the name a new company would get.
    notes = tree.create(companies.id, "Delta Co", "folder", by="alice")
    seeding.company(api, admin, "620550", "Acme Dental")
    seeding.company(api, admin, "620551", "Delta Co")
    result = sync.run(tree, reader)
    assert result.errors == 0, result.messages
    names = {item.name: item for item in tree.children(companies.id)}
    assert names["Acme Dental (620547)"].id == first.id
    assert names["Acme Dental (620550)"].account_number == "620550"
    assert names["Delta Co (620551)"].account_number == "620551"
    assert names["Delta Co"] == notes  # untouched
    assert sync.run(tree, reader).updated == 0


def test_a_removed_asset_is_archived(tree: KnowledgeTree, reader: sync.HttpCodexReader,
                                     api: FlaskClient, admin: dict[str, str]) -> None:
    added = seeding.ok(api.post("/api/assets", headers=admin, json={
        "account_number": "620548", "hostname": "FRONT-DESK", "device_category": "Desktop"}),
        201)
    sync.run(tree, reader)
    beta = path(tree, "Companies", "Beta Law")
    article = path(tree, "Companies", "Beta Law", "Assets", "FRONT-DESK")
    seeding.ok(api.delete(f"/api/assets/{added['id']}", headers=admin))

    result = sync.run(tree, reader)
    assert result.archived == 1 and result.errors == 0
    archived = path(tree, "Companies", "Beta Law", "Archived", "FRONT-DESK")
    assert archived.id == article.id and archived.content == article.content
    assert archived.read_only and archived.source == "codex"
    assert {i.name for i in tree.children(child(tree, beta.id, "Assets").id)} == {"BPC"}
    final = sync.run(tree, reader)
    assert (final.archived, final.created, final.updated, final.errors) == (0, 0, 0, 0)


def test_manual_items_beside_generated_ones_are_untouched(
        tree: KnowledgeTree, reader: sync.HttpCodexReader, api: FlaskClient,
        admin: dict[str, str], codex: Codex) -> None:  # noqa: F811
    sync.run(tree, reader)
    company = acme(tree)
    assets = child(tree, company.id, "Assets")
    note = tree.create(company.id, "Door codes", "article", by="alice", content="# 1234")
    beside = tree.create(assets.id, "SRV1 quirks", "article", by="bob", content="reboot twice")
    tree.update(note.id, by="alice", content="# 4321")  # a revision of a person's own
    mine = [tree.get(note.id), tree.get(beside.id)]
    revisions = tree.revisions(note.id)

    # Everything around them changes: the company's name, an asset, the ticket.
    seeding.ok(api.patch("/api/companies/620547", headers=admin, json={"name": "Acme Two"}))
    seeding.ok(api.delete(f"/api/assets/{codex.ids['pc']}", headers=admin))
    with seeding.database(codex.app) as session:
        ticket = session.scalar(select(Ticket).where(Ticket.number == "101"))
        assert ticket is not None
        ticket.status = "open"
    result = sync.run(tree, reader)
    assert result.errors == 0 and result.archived == 1 and result.updated >= 3

    assert [tree.get(note.id), tree.get(beside.id)] == mine
    assert tree.revisions(note.id) == revisions and tree.revisions(beside.id) == []
    assert tree.get(note.id).parent_id == company.id
    assert {i.name for i in tree.children(assets.id)} == {"SRV1", "SRV1 quirks"}
    assert "**Status:** open" in path(tree, "Companies", "Acme Two", "Tickets",
                                      "#101 Server slow").content


def test_generated_names_give_way_to_a_persons(tree: KnowledgeTree,
                                               reader: sync.HttpCodexReader,
                                               api: FlaskClient,
                                               admin: dict[str, str]) -> None:
    sync.run(tree, reader, tickets=False)
    assets = path(tree, "Companies", "Beta Law", "Assets")
    mine = tree.create(assets.id, "NEW-PC", "article", by="alice", content="ordered")
    seeding.ok(api.post("/api/assets", headers=admin, json={
        "account_number": "620548", "hostname": "NEW-PC"}), 201)
    result = sync.run(tree, reader, tickets=False)
    assert result.errors == 0 and result.created == 1
    names = {item.name: item for item in tree.children(assets.id)}
    assert names["NEW-PC"] == mine
    generated = next(item for name, item in names.items() if name.startswith("NEW-PC (id "))
    assert generated.source == "codex" and generated.read_only


def test_a_removed_company_is_archived_and_comes_back(tree: KnowledgeTree,
                                                      reader: sync.HttpCodexReader,
                                                      api: FlaskClient,
                                                      admin: dict[str, str]) -> None:
    sync.run(tree, reader)
    gamma = path(tree, "Companies", "Gamma Shop")
    note = tree.create(gamma.id, "Handover", "article", by="alice", content="keys returned")
    seeding.ok(api.post("/api/companies/620549/archive", headers=admin))

    result = sync.run(tree, reader)
    assert result.archived == 1 and result.errors == 0
    archived = path(tree, "Archived", "Gamma Shop")
    assert archived.id == gamma.id
    assert tree.get(note.id).parent_id == gamma.id  # a person's note travels with it
    assert {i.name for i in tree.children(path(tree, "Companies").id)} == {
        "Acme Dental", "Beta Law"}
    again = sync.run(tree, reader)
    assert (again.archived, again.created, again.updated) == (0, 0, 0)

    seeding.ok(api.post("/api/companies/620549/unarchive", headers=admin))
    back = sync.run(tree, reader)
    assert back.errors == 0 and back.created == 0
    assert path(tree, "Companies", "Gamma Shop").id == gamma.id
    assert tree.children(path(tree, "Archived").id) == []


def test_the_sync_keeps_the_search_index_right(store: GraphStore, tmp_path: Path,
                                              reader: sync.HttpCodexReader,
                                              api: FlaskClient,
                                              admin: dict[str, str]) -> None:
    """What the sync writes (one index commit per company), archives and brings back is
    found by the index exactly as by the graph's own search, in every company's folder."""
    tree = indexed(store, tmp_path)
    queries = ["acme", "server", "slow", "dana", "gamma", "620547", "ser", "handover"]

    def check() -> None:
        scopes = [ROOT_ID, *(row["id"] for row in tree.store.query(
            "MATCH (folder:ContextItem) WHERE folder.type = 'folder' RETURN folder.id AS id"))]
        agrees(tree, queries, scopes)

    sync.run(tree, reader)
    assert tree.search("slow").total >= 1
    check()
    gamma = path(tree, "Companies", "Gamma Shop")
    tree.create(gamma.id, "Handover", "article", by="alice", content="keys returned")
    seeding.ok(api.post("/api/companies/620549/archive", headers=admin))
    sync.run(tree, reader)
    archived = path(tree, "Archived")
    assert [hit.item.name for hit in tree.search("handover", start_id=archived.id).hits] == [
        "Handover"]
    check()
    seeding.ok(api.post("/api/companies/620549/unarchive", headers=admin))
    sync.run(tree, reader)
    assert tree.search("handover", start_id=archived.id).total == 0
    assert tree.search("handover", start_id=path(tree, "Companies").id).total == 1
    check()


def test_companies_only_and_tickets_only(tree: KnowledgeTree,
                                         reader: sync.HttpCodexReader) -> None:
    only = sync.run(tree, reader, companies=False)
    assert only.errors == 0
    assert {i.name for i in tree.children(acme(tree).id)} == {"Tickets"}
    sync.run(tree, reader, tickets=False)
    assert {i.name for i in tree.children(acme(tree).id)} == {
        "Overview", "Contacts", "Assets", "Tickets"}
    # The tickets-only run left the tickets alone in the companies-only one, and back.
    assert sync.run(tree, reader).counts()["created"] == 0


def _hostile_ticket(codex: Codex) -> int:  # noqa: F811
    with seeding.database(codex.app) as session:
        acme_id = seeding.company_id(session, "620547")
        ticket = Ticket(
            source="freshservice", external_id="66", number="102", company_id=acme_id,
            subject="<script>alert(1)</script> [click](javascript:alert(1)) **bold**",
            description_text="# Not a heading\n<img src=x onerror=alert(1)>\n\n| a | b |\n"
                             "|---|---|\n    indented code\n1. not a list\n---",
            status="open", priority="low", requester_name="Mal <mal@example.test>",
            created_at=datetime(2026, 3, 5, tzinfo=UTC), total_hours=Decimal("0"))
        session.add(ticket)
        session.flush()
        session.add_all([
            Conversation(ticket_id=ticket.id, external_id="c1", private=False, incoming=True,
                         author="Dana", body_text="Still <b>broken</b> ![x](http://x/)",
                         created_at=datetime(2026, 3, 5, 1, tzinfo=UTC)),
            Conversation(ticket_id=ticket.id, external_id="c2", private=True, incoming=False,
                         author="Tech", body_text="INTERNAL ONLY: admin password hint",
                         created_at=datetime(2026, 3, 5, 2, tzinfo=UTC))])
        return int(ticket.id)


def test_codex_strings_cannot_add_structure(tree: KnowledgeTree,
                                            reader: sync.HttpCodexReader,
                                            codex: Codex) -> None:  # noqa: F811
    _hostile_ticket(codex)
    sync.run(tree, reader)
    tickets = path(tree, "Companies", "Acme Dental", "Tickets")
    article = next(item for item in tree.children(tickets.id) if item.name.startswith("#102"))
    assert "INTERNAL ONLY" not in article.content  # private notes stay in Codex
    assert "Still" in article.content
    rendered = MarkdownIt("commonmark").enable("table").render(article.content)
    for forbidden in ("<script", "<img", "<a ", "<b>", "<table", "<pre", "<ol", "<hr"):
        assert forbidden not in rendered, forbidden
    # The headings and emphasis are the sync's own, and nothing else.
    assert rendered.count("<h1>") == 1 and rendered.count("<h2>") == 2
    assert "&lt;script&gt;" in rendered and "**bold**" in rendered
    assert rendered.count("<strong>") == article.content.count("- **")


def test_a_changed_ticket_is_updated_in_place(tree: KnowledgeTree,
                                              reader: sync.HttpCodexReader,
                                              codex: Codex) -> None:  # noqa: F811
    sync.run(tree, reader)
    article = path(tree, "Companies", "Acme Dental", "Tickets", "#101 Server slow")
    with seeding.database(codex.app) as session:
        ticket = session.scalar(select(Ticket).where(Ticket.number == "101"))
        assert ticket is not None
        ticket.subject = "Server very slow"
        ticket.total_hours = Decimal("3.5")
        session.add(Conversation(ticket_id=ticket.id, external_id="m1", private=False,
                                 incoming=True, author="Dana", body_text="Any news?",
                                 created_at=datetime(2026, 3, 3, tzinfo=UTC)))
    result = sync.run(tree, reader, companies=False)
    assert (result.updated, result.created, result.errors) == (1, 0, 0)
    now = path(tree, "Companies", "Acme Dental", "Tickets", "#101 Server very slow")
    assert now.id == article.id
    assert "**Hours:** 3\\.50" in now.content and "Any news?" in now.content
    assert [revision.content for revision in tree.revisions(now.id)] == [article.content]


def test_unreadable_codex_changes_nothing(tree: KnowledgeTree, reader: sync.HttpCodexReader,
                                          hm_home: Path) -> None:
    sync.run(tree, reader)
    before = snapshot(tree)
    (hm_home / "services.json").write_text('{"codex": {"url": "http://127.0.0.1:9", '
                                           '"port": 9}}')
    with pytest.raises(sync.CodexError):
        sync.run(tree, reader)
    assert snapshot(tree) == before


def test_bad_service_secret_is_an_error_not_an_empty_codex(
        tree: KnowledgeTree, reader: sync.HttpCodexReader) -> None:
    sync.run(tree, reader)
    before = snapshot(tree)
    reader.client.secret = "wrong"
    reader.client.forget_token("codex")
    with pytest.raises(sync.CodexError):
        sync.run(tree, reader)
    assert snapshot(tree) == before


# -- markdown helpers ---------------------------------------------------------------------

@pytest.mark.parametrize("value", ["# h", "<b>x</b>", "[a](b)", "![i](j)", "`c`", "a|b",
                                   "1. x", "- y", "+ z", "> q", "***", "&amp;", "a\nb",
                                   "~~~", "x\n===", "_e_"])
def test_md_inline_renders_as_plain_text(value: str) -> None:
    rendered = MarkdownIt("commonmark").enable("table").render(sync.md_inline(value))
    assert rendered.startswith("<p>") and rendered.count("<") == 2, rendered


def test_md_block_keeps_lines_and_paragraphs() -> None:
    rendered = MarkdownIt("commonmark").render(sync.md_block("one\ntwo\n\n\nthree <i>"))
    assert rendered == "<p>one<br />\ntwo</p>\n<p>three &lt;i&gt;</p>\n"


def test_unique_names() -> None:
    names = sync.unique_names({"1": ("A", "1"), "2": ("a", "2"), "3": ("B", "3"),
                               "4": ("C", "4")}, {"c"})
    assert names == {"1": "A (1)", "2": "a (2)", "3": "B", "4": "C (4)"}
    assert sync.safe_name(" a/b\\c\td ", "x") == "a-b-c-d" and sync.safe_name("  ", "x") == "x"
    long = sync.unique_names({"1": ("x" * 300, "1"), "2": ("x" * 300, "2")}, set())
    assert all(len(name) <= 255 for name in long.values()) and len(set(long.values())) == 2


# -- the lease and the schedule -------------------------------------------------------------

def test_lease_is_held_by_one_at_a_time(tree: KnowledgeTree) -> None:
    first = scheduler.Lease(tree.store, "test", "a", seconds=60)
    second = scheduler.Lease(tree.store, "test", "b", seconds=60)
    assert first.acquire() and not second.acquire()
    assert first.holder() == "a"
    first.progress(1, 2, "Acme")
    state = scheduler.status(tree.store, "test")
    assert state["running"] and (state["done"], state["total"], state["current"]) == (
        1, 2, "Acme")
    first.release(sync.SyncResult(created=3))
    assert second.acquire()
    assert scheduler.status(tree.store, "test")["last_result"]["created"] == 3


def test_an_expired_lease_can_be_taken(tree: KnowledgeTree) -> None:
    stale = scheduler.Lease(tree.store, "test", "crashed", seconds=-1)
    assert stale.acquire()
    assert scheduler.Lease(tree.store, "test", "next", seconds=60).acquire()


def test_a_slot_is_claimed_once_among_racing_processes(falkordb_server: FalkorDBServer,
                                                       tree: KnowledgeTree) -> None:
    graph = getattr(tree.store, "name", None)
    if graph is None:  # Neo4j: the same store object is shared, which is what we race on
        stores = [tree.store] * 4
    else:
        stores = [FalkorDBStore(port=falkordb_server.port, graph=graph) for _ in range(4)]
    tree.store.ensure_schema(scheduler.SCHEDULE_SCHEMA)
    due = scheduler.slot(datetime.now(UTC), timedelta(minutes=60))
    won: list[str] = []
    barrier = threading.Barrier(4)

    def race(index: int) -> None:
        barrier.wait()
        if scheduler.claim(stores[index], "race", due, f"p{index}"):
            won.append(f"p{index}")

    threads = [threading.Thread(target=race, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if graph is not None:
        for store in stores:
            store.close()
    assert len(won) == 1
    assert not scheduler.claim(tree.store, "race", due, "late")
    assert scheduler.claim(tree.store, "race", due + 3600, "next hour")


def test_tick_runs_the_sync_once_per_slot(tree: KnowledgeTree,
                                          reader: sync.HttpCodexReader) -> None:
    config = {"KT_SYNC_SCHEDULE_MINUTES": 60}
    now = datetime(2026, 12, 1, 10, 5, tzinfo=UTC)
    first = scheduler.tick(config, tree, lambda: reader, now, "worker-1")
    assert first is not None and first.created > 10
    assert scheduler.tick(config, tree, lambda: reader, now + timedelta(minutes=20),
                          "worker-2") is None
    later = scheduler.tick(config, tree, lambda: reader, now + timedelta(hours=1), "worker-2")
    assert later is not None and later.created == later.updated == 0
    assert scheduler.status(tree.store)["last_result"]["unchanged"] == later.unchanged
    assert scheduler.tick({"KT_SYNC_SCHEDULE_MINUTES": 0}, tree, lambda: reader,
                          now + timedelta(hours=5), "w") is None


def test_tick_skips_while_another_sync_runs(tree: KnowledgeTree,
                                            reader: sync.HttpCodexReader) -> None:
    holder = scheduler.Lease(tree.store, scheduler.SYNC_LEASE, "cli", seconds=60)
    assert holder.acquire()
    now = datetime(2026, 12, 1, 10, 5, tzinfo=UTC)
    assert scheduler.tick({"KT_SYNC_SCHEDULE_MINUTES": 60}, tree, lambda: reader, now,
                          "worker") is None
    assert tree.children(ROOT_ID) == []


# -- the command ----------------------------------------------------------------------------

@pytest.fixture
def cli_env(falkordb_server: FalkorDBServer, fake_core: FakeCore, hm_home: Path,
            codex: Codex, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:  # noqa: F811
    fake_core.secrets["knowledgetree"] = SECRET
    graph = f"kt-cli-{threading.get_ident()}-{id(hm_home)}"
    env = {"KNOWLEDGETREE_KT_GRAPH_URL": f"falkordb://127.0.0.1:{falkordb_server.port}/{graph}",
           "KNOWLEDGETREE_CORE_SERVICE_URL": fake_core.url,
           "KNOWLEDGETREE_SERVICE_SECRET": SECRET, "HIVEMATRIX_HOME": str(hm_home)}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    yield env
    FalkorDBStore(port=falkordb_server.port, graph=graph).drop_all()


def cli_tree(env: dict[str, str], tmp_path: Path) -> KnowledgeTree:
    target = parse_graph_url(env["KNOWLEDGETREE_KT_GRAPH_URL"])
    return KnowledgeTree(FalkorDBStore(port=target.port, graph=target.graph),
                         tmp_path / "files")


def test_cli_sync_end_to_end(cli_env: dict[str, str], tmp_path: Path) -> None:
    from hivematrix.cli import main

    runner = CliRunner()
    companies = runner.invoke(main, ["knowledgetree", "sync", "--companies"])
    assert companies.exit_code == 0, companies.output
    tree = cli_tree(cli_env, tmp_path)
    assert {i.name for i in tree.children(acme(tree).id)} == {"Overview", "Contacts", "Assets"}

    done = runner.invoke(main, ["knowledgetree", "sync"])
    assert done.exit_code == 0, done.output
    said = " ".join(done.output.split())
    assert "KnowledgeTree sync done: 4 created, 0 updated" in said and "0 errors" in said
    assert child(tree, acme(tree).id, "Tickets").type == "folder"
    assert scheduler.status(tree.store)["last_result"]["errors"] == 0

    # While another process holds the lease, the command refuses instead of doubling up.
    assert scheduler.Lease(tree.store, scheduler.SYNC_LEASE, "elsewhere").acquire()
    refused = runner.invoke(main, ["knowledgetree", "sync", "--tickets"])
    assert refused.exit_code == 1
    assert "another sync is running" in " ".join(refused.output.split())


def test_cli_as_a_process(cli_env: dict[str, str], tmp_path: Path) -> None:
    executable = shutil.which("hivematrix", path=str(Path(sys.executable).parent))
    assert executable is not None
    finished = subprocess.run([executable, "knowledgetree", "sync", "--tickets"],
                              capture_output=True, text=True, timeout=120, check=False)
    assert finished.returncode == 0, finished.stderr
    tree = cli_tree(cli_env, tmp_path)
    assert {i.name for i in tree.children(acme(tree).id)} == {"Tickets"}


def test_the_app_runs_the_scheduled_sync(falkordb_server: FalkorDBServer, fake_core: FakeCore,
                                         service_settings: dict[str, Any],
                                         codex: Codex, tmp_path: Path) -> None:  # noqa: F811
    from hivematrix.knowledgetree import create_app

    fake_core.secrets["knowledgetree"] = SECRET
    graph = f"kt-app-{id(tmp_path)}"
    url = f"falkordb://127.0.0.1:{falkordb_server.port}/{graph}"
    app = create_app({**service_settings, "TESTING": False, "KT_GRAPH_URL": url,
                      "SERVICE_SECRET": SECRET, "KT_SYNC_SCHEDULE_SECONDS": 3600.0,
                      "KT_SCHEDULER_TICK_SECONDS": 0.1, "KT_FILES_DIR": str(tmp_path / "f")})
    running = app.extensions["knowledgetree.scheduler"]
    try:
        tree = cli_tree({"KNOWLEDGETREE_KT_GRAPH_URL": url}, tmp_path)
        deadline = time.monotonic() + 30
        while scheduler.status(tree.store)["last_result"] is None:
            assert time.monotonic() < deadline, "the scheduled sync did not run"
            time.sleep(0.1)
        assert scheduler.status(tree.store)["last_result"]["errors"] == 0
        assert {i.name for i in tree.children(acme(tree).id)} == {
            "Overview", "Contacts", "Assets", "Tickets"}
    finally:
        running.stop()
        running.thread.join(30)
        FalkorDBStore(port=falkordb_server.port, graph=graph).drop_all()
    # Tests (TESTING on) never start one, nor does KT_SCHEDULER off (as text from a file).
    assert "knowledgetree.scheduler" not in create_app(
        {**service_settings, "KT_GRAPH_URL": url}).extensions
    assert "knowledgetree.scheduler" not in create_app(
        {**service_settings, "TESTING": False, "KT_SCHEDULER": "false",
         "KT_GRAPH_URL": url}).extensions


def test_a_ticket_moved_away_and_back_is_archived_then_restored(
        tree: KnowledgeTree, reader: sync.HttpCodexReader, codex: Codex) -> None:  # noqa: F811
    sync.run(tree, reader)
    article = path(tree, "Companies", "Acme Dental", "Tickets", "#101 Server slow")

    def move_ticket(account: str) -> None:
        with seeding.database(codex.app) as session:
            ticket = session.scalar(select(Ticket).where(Ticket.number == "101"))
            assert ticket is not None
            ticket.company_id = seeding.company_id(session, account)

    move_ticket("620548")  # filed under the wrong client in the PSA, say
    moved = sync.run(tree, reader, companies=False)
    # Created: Beta's article and Acme's Archived folder.
    assert (moved.archived, moved.created, moved.errors) == (1, 2, 0)
    assert path(tree, "Companies", "Acme Dental", "Archived", "#101 Server slow").id == \
        article.id
    elsewhere = path(tree, "Companies", "Beta Law", "Tickets", "#101 Server slow")

    move_ticket("620547")
    back = sync.run(tree, reader, companies=False)
    # Created: only Beta's Archived folder; Acme's article is the archived one, back.
    assert (back.archived, back.created, back.errors) == (1, 1, 0)
    restored = path(tree, "Companies", "Acme Dental", "Tickets", "#101 Server slow")
    assert restored.id == article.id and restored.content == article.content
    assert tree.children(path(tree, "Companies", "Acme Dental", "Archived").id) == []
    assert path(tree, "Companies", "Beta Law", "Archived", "#101 Server slow").id == \
        elsewhere.id
    assert tree.revisions(restored.id) == []  # moved twice, never rewritten


def test_one_company_failing_does_not_stop_the_run(tree: KnowledgeTree,
                                                   reader: sync.HttpCodexReader,
                                                   api: FlaskClient,
                                                   admin: dict[str, str]) -> None:
    def delete_gamma_meanwhile(done: int, total: int, current: str) -> None:
        if done == 0:  # listed a moment ago, gone when its turn comes
            seeding.ok(api.delete("/api/companies/620549", headers=admin))

    result = sync.run(tree, reader, progress=delete_gamma_meanwhile)
    assert result.errors == 1 and result.messages[0].startswith("620549: Codex answered 404")
    beta = path(tree, "Companies", "Beta Law")
    assert {i.name for i in tree.children(beta.id)} == {"Overview", "Contacts", "Assets",
                                                       "Tickets"}
    gamma = path(tree, "Companies", "Gamma Shop")
    assert tree.children(gamma.id) == []
    after = sync.run(tree, reader)
    assert (after.errors, after.archived) == (0, 1)
    assert path(tree, "Archived", "Gamma Shop").id == gamma.id
