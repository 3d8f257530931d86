"""KnowledgeTree's pages in a real Chromium: stored XSS in names and content stays inert,
search as you type shows ranked results, the grid/list choice persists (in a real Codex's
settings; through Nexus, with no Codex there, for the browser session), the context dialog
works. Most tests serve the app directly (over the real FalkorDB of ``conftest``), a small
WSGI wrapper adding the signed-in user's bearer token as Nexus does for every proxied request;
the last signs in through a real Nexus (identity, Core, KnowledgeTree and Nexus as processes)
and writes through the pages' forms there."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from playwright.sync_api import expect

from hivematrix.common.testing import (
    TokenFactory,
    serve_wsgi,
    watched_page,
)
from hivematrix.knowledgetree.graph import FalkorDBStore
from hivematrix.knowledgetree.items import ROOT_ID, KnowledgeTree
from hivematrix.knowledgetree.testing import FalkorDBServer
from tests.knowledgetree.apiapp import kt_app_fixture, kt_fixture  # noqa: F401 - the fixtures
from tests.knowledgetree.codexsite import CodexSite, codex_site_fixture  # noqa: F401
from tests.nexus.conftest import running_platform, sign_in

pytestmark = [pytest.mark.browser]
WAIT_MS = 15_000
#: Each payload would set the flag (and open a dialog) if it ever ran.
IMG = '<img src=x onerror="window.__xss=1;alert(1)">'
SCRIPT = "<script>window.__xss=2;alert(2)</script>"
LINK = "[click me](javascript:window.__xss=3;alert(3))"
SVG = '<svg onload="window.__xss=4;alert(4)"></svg>'
#: Names cannot hold "/", so no closing tags there.
NAME_SVG = '<svg onload="window.__xss=5;alert(5)">'
NAME_SCRIPT = "<script>window.__xss=6;alert(6)"


def signed_in(app: Flask, token: str) -> Callable[..., Any]:
    def wsgi(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        if environ.get("PATH_INFO") == "/favicon.ico":  # Nexus's business, not the service's
            start_response("204 No Content", [])
            return [b""]
        environ["HTTP_AUTHORIZATION"] = f"Bearer {token}"
        return app.wsgi_app(environ, start_response)

    return wsgi


@dataclass
class Site:
    url: str
    kt: KnowledgeTree


@pytest.fixture
def site(kt_app: Flask, kt: KnowledgeTree, tokens: TokenFactory) -> Iterator[Site]:
    token = tokens.user("technician", sub="tech-browser")
    with serve_wsgi(signed_in(kt_app, token)) as url:
        yield Site(url, kt)


def without_broken_images(problems: list[str], missing: list[str]) -> list[str]:
    """The problems but the console's notes about the harmless relative ``<img src="x">``
    the sanitiser keeps (its request answers 404); every 404 seen must be that image."""
    assert all(url.endswith("/x") for url in missing), missing
    notes = [p for p in problems if p.startswith("Failed to load resource")]
    assert len(notes) <= len(missing), problems
    return [p for p in problems if not p.startswith("Failed to load resource")]


def inert(page: Any, problems: list[str]) -> None:
    """Nothing injected ran, and none of it is live markup in the page."""
    assert page.evaluate("window.__xss") == 0
    assert not [p for p in problems if p.startswith("dialog")], problems
    # Inside the service's own part of the page (Nexus's chrome has its icons and script).
    main = page.locator("main.page")
    assert main.count() == 1
    assert main.locator("img[onerror], svg, script:not([src])").count() == 0
    assert main.locator("a[href^='javascript']").count() == 0


def test_stored_xss_in_names_and_content_is_inert(browser: Any, site: Site) -> None:
    kt = site.kt
    folder = kt.create(ROOT_ID, f"Folder {IMG}", "folder", by="mallory", is_attached=True)
    article = kt.create(folder.id, f"Article {IMG}{NAME_SVG}", "article", by="mallory",
                        content=f"Intro {IMG}\n\n{SCRIPT}\n\n{LINK}\n\n{SVG}\n\nunique-zebra")
    html = kt.create(folder.id, f"Html {NAME_SCRIPT}", "article", by="mallory",
                     content_format="html", content=f"<p>html body {IMG}{SCRIPT}</p>")
    context, page, problems = watched_page(browser)
    page.add_init_script("window.__xss = 0;")
    missing: list[str] = []
    page.on("response", lambda answer: missing.append(answer.url) if answer.status == 404
            else None)
    try:
        for path in ("/", f"/items/{folder.id}", f"/items/{article.id}", f"/items/{html.id}",
                     f"/items/{article.id}/context", "/search?query=zebra"):
            page.goto(f"{site.url}{path}")
            page.wait_for_load_state("load")
            inert(page, problems)
        page.goto(f"{site.url}/items/{article.id}")
        # The names are shown as text, exactly as typed.
        assert page.get_by_test_id("item-name").inner_text() == f"Article {IMG}{NAME_SVG}"
        content = page.get_by_test_id("article-content")
        assert "Intro" in content.inner_text() and "unique-zebra" in content.inner_text()
        # The javascript: link is plain text, not a link.
        assert content.locator("a").count() == 0
        # Search as you type writes names and snippets with textContent.
        page.fill("#kt-search", "zebra")
        suggestion = page.get_by_test_id("suggestion").first
        suggestion.wait_for(timeout=WAIT_MS)
        assert suggestion.locator("a").inner_text() == f"Article {IMG}{NAME_SVG}"
        inert(page, problems)
        # The context dialog shows the raw markdown as text.
        page.get_by_test_id("context-link").click()
        output = page.get_by_test_id("context-output")
        expect(output).to_contain_text("unique-zebra", timeout=WAIT_MS)
        assert SCRIPT in output.inner_text()
        inert(page, problems)
        assert without_broken_images(problems, missing) == []
    finally:
        context.close()


def test_search_as_you_type_shows_ranked_results(browser: Any, site: Site) -> None:
    kt = site.kt
    it = kt.create(ROOT_ID, "IT", "folder", by="alice")
    kt.create(it.id, "Office", "article", by="alice",
              content="the printer is on the second floor, next to the kitchen")
    kt.create(it.id, "Printer", "article", by="alice", content="toner and paper")
    kt.create(it.id, "Coffee", "article", by="alice", content="nothing relevant here")
    context, page, problems = watched_page(browser)
    try:
        page.goto(f"{site.url}/")
        page.locator("#kt-search").press_sequentially("printe", delay=30)
        suggestions = page.get_by_test_id("suggestion")
        suggestions.first.wait_for(timeout=WAIT_MS)
        expect(suggestions).to_have_count(2, timeout=WAIT_MS)
        names = suggestions.locator("a").all_inner_texts()
        assert names == ["Printer", "Office"]  # the title match first
        assert "IT" in suggestions.first.inner_text()  # the folder path
        marks = page.locator("[data-testid=suggestion] mark").all_inner_texts()
        assert marks and all(mark.lower().startswith("printe") for mark in marks)
        # Fewer than two characters: the list goes away.
        page.fill("#kt-search", "p")
        expect(page.locator("[data-search-results]")).to_have_class(re.compile(r"\bu-hidden\b"),
                                                                    timeout=WAIT_MS)
        # A result opens the item.
        page.fill("#kt-search", "toner")
        page.get_by_test_id("suggestion").first.wait_for(timeout=WAIT_MS)
        page.get_by_test_id("suggestion").first.locator("a").click()
        page.wait_for_url("**/items/*")
        assert page.get_by_test_id("item-name").inner_text() == "Printer"
        # Without the script, Enter submits the same search to the results page.
        page.fill("#kt-search", "printer")
        page.press("#kt-search", "Enter")
        page.wait_for_url("**/search?query=printer")
        assert page.get_by_test_id("result").count() == 2
        assert problems == [], problems
    finally:
        context.close()


def test_grid_or_list_persists(browser: Any, site: Site, codex_site: CodexSite) -> None:
    """Kept in the user's Codex settings (a real Codex over HTTP, asked with their token)."""
    kt = site.kt
    docs = kt.create(ROOT_ID, "Docs", "folder", by="alice")
    kt.create(docs.id, "Backups", "article", by="alice", content="nightly")
    context, page, problems = watched_page(browser)
    try:
        page.goto(f"{site.url}/items/{docs.id}")
        assert page.locator("[data-view=grid]").count() == 1
        page.get_by_test_id("view-list").click()
        page.wait_for_url(f"**/items/{docs.id}")
        assert page.locator("[data-view=list]").count() == 1
        assert page.get_by_test_id("view-list").get_attribute("aria-pressed") == "true"
        assert page.get_by_test_id("view-unsaved").count() == 0
        assert codex_site.view_of("tech-browser") == "tree"
        page.reload()
        assert page.locator("[data-view=list]").count() == 1
        assert problems == [], problems
    finally:
        context.close()
    # A new browser session (another device) for the same user: still the list.
    other, second, more = watched_page(browser)
    try:
        second.goto(f"{site.url}/")
        assert second.locator("[data-view=list]").count() == 1
        second.get_by_test_id("view-grid").click()
        second.wait_for_url(f"{site.url}/items/{ROOT_ID}")
        assert second.locator("[data-view=grid]").count() == 1
        assert codex_site.view_of("tech-browser") == "grid"
        assert more == [], more
    finally:
        other.close()


# ---------- through Nexus ----------

@dataclass
class Platform:
    nexus: str
    kt: KnowledgeTree


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory,
             falkordb_server: FalkorDBServer) -> Iterator[Platform]:
    home = tmp_path_factory.mktemp("kt-platform")
    graph = f"kt-nexus-{uuid.uuid4().hex}"
    env = {"knowledgetree": {
        "KT_GRAPH_URL": f"falkordb://127.0.0.1:{falkordb_server.port}/{graph}",
        "KT_SCHEDULER": "false", "KT_FILES_DIR": str(home / "kt-files")}}
    store = FalkorDBStore(port=falkordb_server.port, graph=graph)
    try:
        # The graph with its root first: KnowledgeTree's health check fails on a graph that
        # does not exist yet (FalkorDB: "empty key"), and the process is started only once
        # healthy.
        tree = KnowledgeTree(store, Path(home / "kt-files"))
        tree.ensure_ready()
        with running_platform(home, ("knowledgetree",), env=env,
                              visible=("knowledgetree",)) as running:
            yield Platform(running.nexus, tree)
    finally:
        store.drop_all()
        store.close()


def test_writing_through_nexus(browser: Any, platform: Platform) -> None:
    nexus = f"{platform.nexus}/knowledgetree"
    kt = platform.kt
    kt.create(ROOT_ID, f"Evil {IMG}", "folder", by="mallory")
    context, page, problems = watched_page(browser)
    page.add_init_script("window.__xss = 0;")
    try:
        sign_in(page, platform.nexus, "/knowledgetree/", "tom")
        # Composed by Nexus: its navigation around the page, the script loaded under the prefix.
        assert page.locator("nav.side-nav").is_visible()
        assert page.get_by_test_id("folder-tree").get_by_text(f"Evil {IMG}").count() == 1
        inert(page, problems)
        # A new folder and an article in it, through the forms (CSRF tokens and all).
        page.get_by_role("link", name="New folder").click()
        page.fill("#name", "Runbooks")
        page.get_by_role("button", name="Save").click()
        page.wait_for_url(f"{nexus}/items/*")
        assert page.get_by_test_id("item-name").inner_text() == "Runbooks"
        page.get_by_role("link", name="New article").click()
        page.fill("#name", "Firewall")
        page.fill("#content", "# Rules\n\n| port | use |\n|---|---|\n| 443 | web |\n\n"
                               "```sh\nufw allow 443\n```\n\n" + SCRIPT)
        page.get_by_test_id("preview-button").click()
        preview = page.get_by_test_id("preview")
        assert preview.locator("h1").inner_text() == "Rules"
        assert preview.locator("td").first.inner_text() == "443"
        page.get_by_role("button", name="Save").click()
        page.wait_for_url(f"{nexus}/items/*")
        content = page.get_by_test_id("article-content")
        assert content.locator("pre.code code.language-bash").inner_text().strip() == \
            "ufw allow 443"
        inert(page, problems)
        # Search as you type through Nexus.
        page.fill("#kt-search", "firew")
        page.get_by_test_id("suggestion").first.wait_for(timeout=WAIT_MS)
        assert page.get_by_test_id("suggestion").first.locator("a").inner_text() == "Firewall"
        # The view choice, through Nexus: there is no Codex on this platform, so it is kept
        # for this browser session, and the page says so.
        page.goto(f"{nexus}/")
        page.get_by_test_id("view-list").click()
        page.wait_for_url(f"{nexus}/items/root?view=unsaved")
        expect(page.get_by_test_id("view-unsaved")).to_be_visible()
        page.goto(f"{nexus}/")
        assert page.locator("[data-view=list]").count() == 1
        assert page.get_by_test_id("view-unsaved").count() == 0
        assert problems == [], problems
    finally:
        context.close()
    runbooks = next(child for child in kt.children(ROOT_ID) if child.name == "Runbooks")
    [firewall] = kt.children(runbooks.id)
    assert firewall.name == "Firewall" and firewall.created_by == "tom"


def test_admin_page_through_nexus(browser: Any, platform: Platform) -> None:
    """Counts, a sync started from the page whose outcome the script shows (there is no Codex
    on this platform, so it ends in an error), and wipe only with WIPE typed."""
    nexus = f"{platform.nexus}/knowledgetree"
    kt = platform.kt
    kt.create(ROOT_ID, "To be wiped", "article", by="alice", content="bye")
    before = kt.counts()
    context, page, problems = watched_page(browser)
    try:
        sign_in(page, platform.nexus, "/knowledgetree/admin", "alice")
        counts = page.get_by_test_id("counts")
        assert counts.locator("[data-count=articles]").inner_text() == str(before["articles"])
        page.get_by_role("button", name="Sync from Codex now").click()
        page.wait_for_url(f"{nexus}/admin?started=1")
        expect(page.locator("[data-sync-result]")).to_contain_text("error", timeout=WAIT_MS)
        expect(page.locator("[data-sync-button]")).to_be_enabled(timeout=WAIT_MS)
        expect(page.locator("[data-sync-state]")).to_contain_text("Last finished",
                                                                 timeout=WAIT_MS)
        page.fill("#confirm", "wipe")
        page.get_by_role("button", name="Wipe everything").click()
        assert "Type WIPE to confirm." in page.locator("#confirm-error").inner_text()
        assert kt.counts() == before
        page.fill("#confirm", "WIPE")
        page.get_by_role("button", name="Wipe everything").click()
        expect(page.get_by_test_id("wiped")).to_be_visible(timeout=WAIT_MS)
        assert kt.counts() == {"folders": 0, "articles": 0, "files": 0}
        # A 400 page is an answer the console reports; nothing else went wrong.
        assert [p for p in problems if "400" not in p] == [], problems
    finally:
        context.close()
    # Technicians have no admin page.
    other, second, _ = watched_page(browser)
    try:
        sign_in(second, platform.nexus, "/knowledgetree/", "tom")
        assert second.get_by_role("link", name="Admin").count() == 0
        answer = second.goto(f"{nexus}/admin")
        assert answer is not None and answer.status == 403
    finally:
        other.close()
