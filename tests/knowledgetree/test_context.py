"""Context assembly (plain Python over a real FalkorDB): upstream's export shape, exclusions,
the character budget with its ``truncated`` flag, the client floor, and a company's context."""

from __future__ import annotations

import pytest

from hivematrix.knowledgetree import context
from hivematrix.knowledgetree.items import ROOT_ID, KnowledgeError, KnowledgeTree, NotFound

BY = "alice"


def layout(tree: KnowledgeTree) -> dict[str, str]:
    """root
    ├── Policies (attached) ── Passwords, Deep/Retention
    ├── Welcome
    └── Clients
        ├── Procedures (attached) ── Onboarding
        ├── Overview
        └── Acme ── Printers, Wifi (html)
    """
    policies = tree.create(ROOT_ID, "Policies", "folder", by=BY, is_attached=True)
    passwords = tree.create(policies.id, "Passwords", "article", by=BY,
                            content="Rotate every 90 days.")
    deep = tree.create(policies.id, "Deep", "folder", by=BY)
    retention = tree.create(deep.id, "Retention", "article", by=BY, content="Keep 7 years.")
    welcome = tree.create(ROOT_ID, "Welcome", "article", by=BY, content="")
    clients = tree.create(ROOT_ID, "Clients", "folder", by=BY)
    procedures = tree.create(clients.id, "Procedures", "folder", by=BY, is_attached=True)
    onboarding = tree.create(procedures.id, "Onboarding", "article", by=BY,
                             content="Create the accounts.")
    overview = tree.create(clients.id, "Overview", "article", by=BY, content="All clients.")
    acme = tree.create(clients.id, "Acme", "folder", by=BY, account_number="620547")
    printers = tree.create(acme.id, "Printers", "article", by=BY, content="# Jams\nOpen tray 2.")
    wifi = tree.create(acme.id, "Wifi", "article", by=BY, content_format="html",
                       content="<p>SSID <b>acme</b></p>")
    return {"policies": policies.id, "passwords": passwords.id, "retention": retention.id,
            "welcome": welcome.id, "clients": clients.id, "procedures": procedures.id,
            "onboarding": onboarding.id, "overview": overview.id, "acme": acme.id,
            "printers": printers.id, "wifi": wifi.id, "deep": deep.id}


def test_item_context_gathers_levels_and_attached_folders(tree: KnowledgeTree) -> None:
    ids = layout(tree)
    tree.attach_file(ids["printers"], "tray diagram.pdf", b"%PDF", by=BY)
    built = context.item_context(tree, ids["printers"], budget=100_000)
    text = built.markdown
    assert not built.truncated
    # One heading per level, root first, deeper levels with more #.
    root_at = text.index("# Context: KnowledgeTree")
    clients_at = text.index("## Context: Clients")
    acme_at = text.index("### Context: Acme")
    assert root_at < clients_at < acme_at
    assert "File: Passwords (from attached folder: Policies)" in text
    assert "File: Retention (from attached folder: Policies)" in text  # any depth
    assert "File: Onboarding (from attached folder: Procedures)" in text
    assert "File: Welcome [id: " in text and "> No content." in text
    assert "File: Overview [id: " in text
    # The item counts as a sibling; HTML is read as plain text.
    assert "File: Printers" in text and "# Jams\nOpen tray 2." in text
    assert "SSID acme" in text and "<b>" not in text
    assert text.rstrip().endswith("## Attached Files for Printers\n\n- tray diagram.pdf")
    assert {s.id for s in built.sources} == {ids[k] for k in (
        "passwords", "retention", "welcome", "onboarding", "overview", "printers", "wifi")}
    assert [f.name for f in built.attached_folders] == ["Policies", "Procedures"]
    assert len(text) <= built.budget


def test_excluded_folders_and_articles_are_left_out(tree: KnowledgeTree) -> None:
    ids = layout(tree)
    built = context.item_context(tree, ids["acme"], budget=100_000,
                                 excluded_ids=[ids["policies"], ids["overview"]])
    assert "Passwords" not in built.markdown and "Retention" not in built.markdown
    assert "Overview" not in built.markdown
    assert "Onboarding" in built.markdown and "Printers" in built.markdown
    # Still offered, so a caller can include it again.
    assert ids["policies"] in {f.id for f in built.attached_folders}


def test_budget_keeps_the_nearest_levels_and_flags_truncation(tree: KnowledgeTree) -> None:
    ids = layout(tree)
    tree.update(ids["passwords"], by=BY, content="x" * 5000)
    whole = context.item_context(tree, ids["printers"], budget=100_000)
    budget = len(whole.markdown) - 2000
    cut = context.item_context(tree, ids["printers"], budget=budget)
    assert cut.truncated and len(cut.markdown) <= budget
    # Acme's and Clients' levels are whole; the root level's long article is what was cut.
    assert "Open tray 2." in cut.markdown and "Create the accounts." in cut.markdown
    cut_sources = [s for s in cut.sources if s.cut]
    assert [s.id for s in cut_sources] == [ids["passwords"]]
    assert "…[truncated]" in cut.markdown
    tiny = context.item_context(tree, ids["printers"], budget=60)
    assert tiny.truncated and len(tiny.markdown) <= 60 and tiny.sources == []
    exact = context.item_context(tree, ids["printers"], budget=len(whole.markdown))
    assert not exact.truncated and exact.markdown == whole.markdown


def test_floor_keeps_a_client_inside_their_folder(tree: KnowledgeTree) -> None:
    ids = layout(tree)
    built = context.item_context(tree, ids["printers"], budget=100_000,
                                 floor_ids={ids["acme"]})
    assert "Printers" in built.markdown and "SSID acme" in built.markdown
    for outside in ("Passwords", "Onboarding", "Overview", "Welcome", "Context: Clients"):
        assert outside not in built.markdown
    assert built.attached_folders == []
    with pytest.raises(NotFound):
        context.item_context(tree, ids["overview"], budget=1000, floor_ids={ids["acme"]})


def test_company_context_is_the_whole_subtree_in_tree_order(tree: KnowledgeTree) -> None:
    ids = layout(tree)
    contacts = tree.create(ids["acme"], "Contacts", "folder", by="sync", read_only=True,
                           source="codex", allow_read_only=True)
    tree.create(contacts.id, "Jane Doe", "article", by="sync", read_only=True, source="codex",
                content="- Email: jane@acme.test", allow_read_only=True)
    built = context.company_context(tree, "620547", budget=100_000)
    text = built.markdown
    assert text.startswith(f"# Company: Acme (account 620547) [id: {ids['acme']}]")
    # The folder's own articles first (by name), then its subfolders.
    assert text.index("## Printers") < text.index("## Wifi") < text.index("## Contacts / Jane")
    assert "Onboarding" not in text and "Passwords" not in text
    assert [s.name for s in built.sources] == ["Printers", "Wifi", "Jane Doe"]
    assert built.sources[2].path == "Acme / Contacts"
    assert [f.id for f in built.folders] == [ids["acme"]] and not built.truncated
    without = context.company_context(tree, "620547", budget=100_000,
                                      excluded_ids=[contacts.id])
    assert "Jane" not in without.markdown
    short = context.company_context(tree, "620547", budget=len(text) - 10)
    assert short.truncated and len(short.markdown) <= len(text) - 10
    with pytest.raises(NotFound) as missing:
        context.company_context(tree, "999999", budget=1000)
    assert missing.value.field == "account_number"


def test_company_context_leaves_archived_items_out(tree: KnowledgeTree) -> None:
    ids = layout(tree)
    sync = {"by": "codex-sync", "read_only": True, "source": "codex", "allow_read_only": True}
    tickets = tree.create(ids["acme"], "Tickets", "folder", **sync,
                          metadata={"codex_kind": "tickets", "codex_id": ""})
    tree.create(tickets.id, "#102 Printer offline", "article", **sync,
                content="Status: open", metadata={"codex_kind": "ticket", "codex_id": "102"})
    # As the sync files them: its Archived folder is found by its marker, and here had to
    # take another name because a person's folder already holds "Archived".
    archive = tree.create(ids["acme"], "Archived (Codex)", "folder", **sync,
                          metadata={"codex_kind": "archive", "codex_id": ""})
    tree.create(archive.id, "#101 Server slow", "article", **sync, content="Status: closed",
                metadata={"codex_kind": "ticket", "codex_id": "101"})
    old_assets = tree.create(archive.id, "Assets", "folder", by=BY)
    tree.create(old_assets.id, "Old server", "article", by=BY, content="Retired in 2019.")
    mine = tree.create(ids["acme"], "Archived", "folder", by=BY)
    tree.create(mine.id, "Old VPN", "article", by=BY, content="Replaced by WireGuard.")
    # A folder merely mentioning the word is not an archive.
    notes = tree.create(ids["acme"], "Archived notes 2024", "folder", by=BY)
    tree.create(notes.id, "Kept", "article", by=BY, content="Still true.")

    built = context.company_context(tree, "620547", budget=100_000)
    for stale in ("Server slow", "Status: closed", "Old server", "Retired", "Old VPN",
                  "WireGuard"):
        assert stale not in built.markdown
    assert "## Tickets / #102 Printer offline" in built.markdown
    assert "## Archived notes 2024 / Kept" in built.markdown
    assert [s.name for s in built.sources] == [
        "Printers", "Wifi", "Kept", "#102 Printer offline"]
    assert not built.truncated
    # The item context around an archived ticket is a different export: still reachable.
    around = context.item_context(tree, archive.id, budget=100_000)
    assert around.markdown.count("#101 Server slow") == 1


@pytest.mark.parametrize("budget", [0, -1, "10", True, 10**9])
def test_bad_budgets_are_named(budget: object) -> None:
    with pytest.raises(KnowledgeError) as refused:
        context.check_budget(budget, 400_000)
    assert refused.value.field == "max_chars"


def test_ancestry_walks_up_to_the_same_path_as_breadcrumbs(tree: KnowledgeTree) -> None:
    ids = layout(tree)
    for item_id in (ROOT_ID, ids["clients"], ids["printers"], ids["retention"]):
        assert context.ancestry(tree, item_id) == tree.breadcrumbs(item_id)
    with pytest.raises(NotFound) as missing:
        context.ancestry(tree, "nope")
    assert missing.value.field == "id"
