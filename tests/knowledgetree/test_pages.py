"""KnowledgeTree's pages through Flask's client against the real FalkorDB: every page per role,
wrong roles refused, CSRF, read-only items without edit forms (and refused anyway), a client
user confined to their company, the editor, attachments, revisions, context, admin."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from hivematrix.common.testing import HTML, csrf_of, free_port, get_page, submit_form
from hivematrix.knowledgetree.items import ROOT_ID, KnowledgeTree
from hivematrix.knowledgetree.pages import logic
from tests.knowledgetree.apiapp import (  # noqa: F401 - the fixtures
    ACME,
    Headers,
    client_fixture,
    company_tree,
    kt_app_fixture,
    kt_fixture,
)
from tests.knowledgetree.codexsite import CodexSite, codex_site_fixture, name_codex  # noqa: F401

XSS = '<img src=x onerror="alert(1)">'


@pytest.fixture
def ids(kt: KnowledgeTree) -> dict[str, str]:
    return company_tree(kt)


@pytest.fixture
def page(client: FlaskClient, as_user: Headers) -> Any:
    """``page(level, path, **claims)``: the page as that user's browser gets it."""

    def get(level: str, path: str, **claims: Any) -> Any:
        return client.get(path, headers={**as_user(level, **claims), **HTML})

    return get


def csrf_token(client: FlaskClient, headers: dict[str, str], path: str = "/") -> str:
    """The token a page's form carries (the session that goes with it stays in the client)."""
    return csrf_of(get_page(client, headers, path))


def post(client: FlaskClient, headers: dict[str, str], path: str, data: dict[str, Any],
         token_from: str = "/") -> Any:
    return submit_form(client, headers, path, data, token_from)


def body(response: Any, status: int = 200) -> str:
    assert response.status_code == status, (response.status_code,
                                            response.get_data(as_text=True)[:3000])
    text: str = response.get_data(as_text=True)
    return text


# ---------- reading, per role ----------

@pytest.mark.parametrize("level", ["admin", "technician", "billing"])
def test_staff_see_the_explorer_and_articles(page: Any, ids: dict[str, str], level: str) -> None:
    home = body(page(level, "/"))
    assert "Companies" in home and "Internal" in home
    assert 'data-testid="folder-tree"' in home
    notes = body(page(level, f"/items/{ids['notes']}"))
    assert "The server room key is at reception." in notes
    assert 'data-testid="breadcrumb"' in notes
    for path in (f"/items/{ids['acme']}", f"/items/{ids['notes']}/context",
                 "/search?query=server"):
        body(page(level, path))


def test_billing_reads_but_gets_no_write_controls_and_cannot_write(
        client: FlaskClient, page: Any, as_user: Headers, ids: dict[str, str]) -> None:
    notes = body(page("billing", f"/items/{ids['notes']}"))
    assert 'data-testid="edit-link"' not in notes
    assert 'data-testid="upload-form"' not in notes
    folder = body(page("billing", f"/items/{ids['internal']}"))
    assert "New article" not in folder
    for path in (f"/items/{ids['notes']}/edit", f"/items/{ids['internal']}/new",
                 f"/items/{ids['notes']}/move", f"/items/{ids['notes']}/delete"):
        assert page("billing", path).status_code == 403, path
    billing = as_user("billing")
    refused = post(client, billing, f"/items/{ids['notes']}/edit",
                   {"name": "Notes", "content": "changed"})
    assert refused.status_code == 403


def test_technicians_see_write_controls(page: Any, ids: dict[str, str]) -> None:
    notes = body(page("technician", f"/items/{ids['notes']}"))
    assert 'data-testid="edit-link"' in notes and 'data-testid="upload-form"' in notes
    assert 'data-testid="rename-form"' in notes
    for path in (f"/items/{ids['notes']}/edit", f"/items/{ids['internal']}/new?type=folder",
                 f"/items/{ids['notes']}/move", f"/items/{ids['notes']}/delete"):
        body(page("technician", path))


def test_admin_page_is_for_admins_only(page: Any, ids: dict[str, str]) -> None:
    admin = body(page("admin", "/admin"))
    assert 'data-count="articles">4<' in admin
    assert 'data-testid="wipe-form"' in admin
    for level in ("technician", "billing"):
        assert page(level, "/admin").status_code == 403, level
    assert page("client", "/admin", account_number=ACME).status_code == 403
    assert 'href="/admin"' in body(page("admin", "/"))
    assert 'href="/admin"' not in body(page("technician", "/"))


def test_anonymous_is_refused(client: FlaskClient, ids: dict[str, str]) -> None:
    for path in ("/", f"/items/{ids['notes']}", "/search?query=x", "/admin"):
        assert client.get(path, headers=HTML).status_code == 401, path


# ---------- client users ----------

def test_a_client_sees_only_their_company(page: Any, ids: dict[str, str]) -> None:
    start = page("client", "/", account_number=ACME)
    assert start.status_code == 303
    assert start.headers["Location"].endswith(f"/items/{ids['acme']}")
    acme = body(page("client", f"/items/{ids['acme']}", account_number=ACME))
    assert "Contacts" in acme and "Notes" in acme
    # Their folder tree and breadcrumb hold nothing of anyone else's.
    assert "Beta Law" not in acme and "Internal" not in acme
    crumbs = acme.split('data-testid="breadcrumb"', 1)[1].split("</nav>", 1)[0]
    assert "Companies" not in crumbs
    assert 'data-testid="edit-link"' not in acme
    for other in (ids["beta"], ids["secret"], ids["internal"], ids["runbook"], ROOT_ID,
                  "no-such-item"):
        assert page("client", f"/items/{other}", account_number=ACME).status_code == 404
        assert page("client", f"/items/{other}/context",
                    account_number=ACME).status_code == 404
    results = body(page("client", "/search?query=beta", account_number=ACME))
    assert "Beta passwords" not in results
    found = body(page("client", "/search?query=server", account_number=ACME))
    assert "Notes" in found


def test_a_client_without_a_company_folder_sees_nothing(page: Any, ids: dict[str, str]) -> None:
    assert page("client", "/", account_number="999999").status_code == 404
    assert "Escalation" not in body(page("client", "/search?query=engineer",
                                         account_number="999999"))


def test_a_client_cannot_write(client: FlaskClient, as_user: Headers,
                               ids: dict[str, str]) -> None:
    headers = as_user("client", account_number=ACME)
    token = csrf_token(client, headers, f"/items/{ids['acme']}")
    for path, data in ((f"/items/{ids['acme']}/new", {"name": "x", "type": "article"}),
                       (f"/items/{ids['notes']}/edit", {"name": "x"}),
                       (f"/items/{ids['notes']}/delete", {})):
        answer = client.post(path, headers={**headers, **HTML},
                             data={**data, "csrf_token": token})
        assert answer.status_code == 403, path


# ---------- CSRF ----------

def test_forms_without_a_csrf_token_are_refused(client: FlaskClient, as_user: Headers,
                                                kt: KnowledgeTree, ids: dict[str, str]) -> None:
    headers = {**as_user("admin"), **HTML}
    cases = [(f"/items/{ids['internal']}/new", {"name": "Sneaky", "type": "article"}),
             (f"/items/{ids['notes']}/edit", {"name": "Notes", "content": "gone"}),
             (f"/items/{ids['notes']}/rename", {"name": "Renamed"}),
             # A form always has a body (a bodyless POST carrying Authorization is the kit's
             # script case, exempt by design: a browser sends that header only via Nexus).
             (f"/items/{ids['notes']}/delete", {"go": "1"}),
             (f"/items/{ids['notes']}/move", {"new_parent_id": ids["internal"]}),
             ("/view", {"view": "list", "item_id": ROOT_ID}),
             ("/admin/wipe", {"confirm": "WIPE"}),
             ("/admin/sync", {"go": "1"})]
    for path, data in cases:
        answer = client.post(path, headers=headers, data=data)
        assert answer.status_code == 400, path
        assert "CSRF" in answer.get_data(as_text=True), path
    assert kt.get(ids["notes"]).content == "The server room key is at reception."
    assert kt.counts()["articles"] == 4


# ---------- read-only (synced) items ----------

def test_a_read_only_item_has_no_edit_form_and_refuses_edits(
        client: FlaskClient, page: Any, as_user: Headers, kt: KnowledgeTree,
        ids: dict[str, str]) -> None:
    jane = body(page("admin", f"/items/{ids['jane']}"))
    assert 'data-testid="read-only"' in jane
    for marker in ('data-testid="edit-link"', 'data-testid="rename-form"',
                   'data-testid="upload-form"', "/delete"):
        assert marker not in jane, marker
    assert page("admin", f"/items/{ids['jane']}/edit").status_code == 400
    admin = as_user("admin")
    token = csrf_token(client, admin)
    for path, data in ((f"/items/{ids['jane']}/edit", {"name": "Jane", "content": "x"}),
                       (f"/items/{ids['jane']}/rename", {"name": "Jane"}),
                       (f"/items/{ids['jane']}/delete", {}),
                       (f"/items/{ids['jane']}/move", {"new_parent_id": ids["internal"]})):
        answer = client.post(path, headers={**admin, **HTML},
                             data={**data, "csrf_token": token})
        assert answer.status_code == 403, path
    upload = client.post(f"/items/{ids['jane']}/attachments", headers={**admin, **HTML},
                         data={"csrf_token": token, "file": (io.BytesIO(b"x"), "a.txt")},
                         content_type="multipart/form-data")
    assert upload.status_code == 403
    assert kt.get(ids["jane"]).name == "Jane Doe"
    assert kt.files(ids["jane"]) == []


# ---------- writing ----------

def test_create_preview_edit_rename_move_and_delete(client: FlaskClient, as_user: Headers,
                                                    kt: KnowledgeTree,
                                                    ids: dict[str, str]) -> None:
    tech = as_user("technician")
    preview = post(client, tech, f"/items/{ids['internal']}/new",
                   {"type": "article", "name": "VPN", "content": "# Setup\n<script>x()</script>",
                    "action": "preview"})
    shown = body(preview)
    assert "<h1>Setup</h1>" in shown and "<script>x()" not in shown
    assert [c.name for c in kt.children(ids["internal"])] == ["Escalation"]  # nothing saved

    created = post(client, tech, f"/items/{ids['internal']}/new",
                   {"type": "article", "name": "VPN", "content": "use the client"})
    assert created.status_code == 303
    vpn = next(c for c in kt.children(ids["internal"]) if c.name == "VPN")
    assert created.headers["Location"].endswith(f"/items/{vpn.id}")

    taken = post(client, tech, f"/items/{ids['internal']}/new",
                 {"type": "article", "name": "vpn", "content": ""})
    text = body(taken, 409)
    assert 'id="name-error"' in text and 'aria-invalid="true"' in text

    empty = post(client, tech, f"/items/{vpn.id}/edit", {"name": "  ", "content": "x"})
    assert 'id="name-error"' in body(empty, 400)

    saved = post(client, tech, f"/items/{vpn.id}/edit",
                 {"name": "VPN", "content": "use the new client", "content_format": "markdown"})
    assert saved.status_code == 303
    assert kt.get(vpn.id).content == "use the new client"
    assert len(kt.revisions(vpn.id)) == 1

    folder = post(client, tech, f"/items/{ids['internal']}/new",
                  {"type": "folder", "name": "Network", "is_attached": "1"})
    assert folder.status_code == 303
    network = next(c for c in kt.children(ids["internal"]) if c.name == "Network")
    assert network.is_attached

    assert post(client, tech, f"/items/{vpn.id}/rename", {"name": "VPN setup"}).status_code == 303
    assert kt.get(vpn.id).name == "VPN setup"
    moved = post(client, tech, f"/items/{vpn.id}/move", {"new_parent_id": network.id})
    assert moved.status_code == 303
    assert kt.get(vpn.id).parent_id == network.id
    cycle = post(client, tech, f"/items/{network.id}/move", {"new_parent_id": network.id})
    assert cycle.status_code == 400

    confirm = body(client.get(f"/items/{network.id}/delete", headers={**tech, **HTML}))
    assert "cannot be undone" in confirm
    deleted = post(client, tech, f"/items/{network.id}/delete", {})
    assert deleted.status_code == 303
    assert deleted.headers["Location"].endswith(f"/items/{ids['internal']}")
    assert kt.find(network.id) is None and kt.find(vpn.id) is None


def test_attachments_upload_list_download_and_delete(client: FlaskClient, as_user: Headers,
                                                     kt: KnowledgeTree,
                                                     ids: dict[str, str]) -> None:
    tech = as_user("technician")
    token = csrf_token(client, tech)

    def upload(name: str, data: bytes) -> Any:
        return client.post(f"/items/{ids['notes']}/attachments", headers={**tech, **HTML},
                           data={"csrf_token": token, "file": (io.BytesIO(data), name)},
                           content_type="multipart/form-data")

    assert upload("map.txt", b"the key hangs left").status_code == 303
    assert upload("evil.exe", b"MZ").status_code == 415
    assert upload("big.txt", b"x" * 5000).status_code == 413  # the test app's limit: 4096
    [stored] = kt.files(ids["notes"])
    article = body(client.get(f"/items/{ids['notes']}", headers={**tech, **HTML}))
    assert "map.txt" in article
    download = client.get(f"/api/items/{ids['notes']}/attachments/{stored.id}", headers=tech)
    assert download.data == b"the key hangs left"
    assert "attachment" in download.headers["Content-Disposition"]
    # Another item's path does not reach this file.
    wrong = client.post(f"/items/{ids['runbook']}/attachments/{stored.id}/delete",
                        headers={**tech, **HTML}, data={"csrf_token": token})
    assert wrong.status_code == 404
    gone = client.post(f"/items/{ids['notes']}/attachments/{stored.id}/delete",
                       headers={**tech, **HTML}, data={"csrf_token": token})
    assert gone.status_code == 303
    assert kt.files(ids["notes"]) == []


def test_revisions_view_and_restore(client: FlaskClient, as_user: Headers, kt: KnowledgeTree,
                                    ids: dict[str, str]) -> None:
    kt.update(ids["notes"], by="alice", content="The key moved to the safe.")
    [revision] = kt.revisions(ids["notes"])
    tech = as_user("technician")
    article = body(client.get(f"/items/{ids['notes']}", headers={**tech, **HTML}))
    assert f"/revisions/{revision.id}" in article
    shown = body(client.get(f"/items/{ids['notes']}/revisions/{revision.id}",
                            headers={**tech, **HTML}))
    assert "The server room key is at reception." in shown
    assert 'data-testid="restore-form"' in shown
    billing = body(client.get(f"/items/{ids['notes']}/revisions/{revision.id}",
                              headers={**as_user("billing"), **HTML}))
    assert 'data-testid="restore-form"' not in billing
    assert client.get(f"/items/{ids['notes']}/revisions/nope",
                      headers={**tech, **HTML}).status_code == 404
    restored = post(client, tech, f"/items/{ids['notes']}/revisions/{revision.id}/restore", {})
    assert restored.status_code == 303
    assert kt.get(ids["notes"]).content == "The server room key is at reception."


def test_context_page(client: FlaskClient, as_user: Headers, kt: KnowledgeTree,
                      ids: dict[str, str]) -> None:
    shared = kt.create(ids["internal"], "Shared", "folder", by="alice", is_attached=True)
    kt.create(shared.id, "Wifi", "article", by="alice", content="the wifi password is in vault")
    tech = {**as_user("technician"), **HTML}
    whole = body(client.get(f"/items/{ids['runbook']}/context", headers=tech))
    assert "the wifi password is in vault" in whole and "call the on-call engineer" in whole
    assert f'value="{shared.id}"' in whole
    left_out = body(client.get(f"/items/{ids['runbook']}/context?excluded_ids={shared.id}",
                               headers=tech))
    assert "the wifi password is in vault" not in left_out
    assert f'value="{shared.id}" checked' in left_out  # still offered, ticked as left out
    small = body(client.get(f"/items/{ids['runbook']}/context?max_chars=20", headers=tech))
    assert "something did not fit" in small
    bad = client.get(f"/items/{ids['runbook']}/context?max_chars=lots", headers=tech)
    assert bad.status_code == 400 and "max_chars" in bad.get_data(as_text=True)


# ---------- explorer view and search ----------

def test_grid_or_list_is_kept_in_codex_per_user(client: FlaskClient, kt_app: Flask,
                                                as_user: Headers, ids: dict[str, str],
                                                codex_site: CodexSite) -> None:
    alice = as_user("technician", sub="alice-sub", preferred_username="alice")
    bob = as_user("technician", sub="bob-sub", preferred_username="bob")
    assert 'data-view="grid"' in body(client.get("/", headers={**alice, **HTML}))
    saved = post(client, alice, "/view", {"view": "list", "item_id": ids["internal"]})
    assert saved.status_code == 303
    assert saved.headers["Location"].endswith(f"/items/{ids['internal']}")  # no notice
    # Codex holds it (KnowledgeTree's list is Codex's "tree"), so another browser sees it.
    assert codex_site.view_of("alice-sub") == "tree"
    fresh = kt_app.test_client()
    assert 'data-view="list"' in body(fresh.get("/", headers={**alice, **HTML}))
    assert 'data-view="grid"' in body(fresh.get("/", headers={**bob, **HTML}))
    # A choice made in Codex's settings page shows here; "hierarchy" is drawn as the list,
    # and choosing the list again leaves Codex's exact value alone.
    codex_site.set_view("alice-sub", "hierarchy")
    assert 'data-view="list"' in body(fresh.get("/", headers={**alice, **HTML}))
    assert post(fresh, alice, "/view", {"view": "list", "item_id": ROOT_ID}).status_code == 303
    assert codex_site.view_of("alice-sub") == "hierarchy"
    assert post(fresh, alice, "/view", {"view": "grid", "item_id": ROOT_ID}).status_code == 303
    assert codex_site.view_of("alice-sub") == "grid"
    assert 'data-view="grid"' in body(client.get("/", headers={**alice, **HTML}))
    bad = post(client, alice, "/view", {"view": "tiles", "item_id": ROOT_ID})
    assert bad.status_code == 400 and "view" in bad.get_data(as_text=True)
    assert codex_site.view_of("alice-sub") == "grid"
    assert codex_site.view_of("bob-sub") == "grid"  # bob's row, created by his read


@pytest.mark.parametrize("codex", ["not installed", "down"])
def test_without_codex_the_choice_lasts_the_session(client: FlaskClient, kt_app: Flask,
                                                    hm_home: Path, as_user: Headers,
                                                    ids: dict[str, str], codex: str) -> None:
    if codex == "down":
        name_codex(hm_home, f"http://127.0.0.1:{free_port()}")  # nothing listens there
    alice = as_user("technician", sub="alice-sub")
    saved = post(client, alice, "/view", {"view": "list", "item_id": ids["internal"]})
    assert saved.status_code == 303
    assert saved.headers["Location"].endswith(f"/items/{ids['internal']}?view=unsaved")
    shown = body(client.get(saved.headers["Location"], headers={**alice, **HTML}))
    assert 'data-testid="view-unsaved"' in shown and 'data-view="list"' in shown
    assert 'data-view="list"' in body(client.get("/", headers={**alice, **HTML}))
    assert 'data-testid="view-unsaved"' not in body(client.get("/", headers={**alice, **HTML}))
    # Another user in the same browser session does not inherit it; a new session is back
    # to the default.
    bob = as_user("technician", sub="bob-sub")
    assert 'data-view="grid"' in body(client.get("/", headers={**bob, **HTML}))
    assert 'data-view="grid"' in body(kt_app.test_client().get("/", headers={**alice, **HTML}))


def test_a_client_users_choice_is_this_browsers(client: FlaskClient, as_user: Headers,
                                                 ids: dict[str, str],
                                                 codex_site: CodexSite) -> None:
    """Client users are no Codex agents: Codex is not asked, and no notice is shown."""
    customer = as_user("client", sub="client-sub", account_number=ACME)
    start = f"/items/{ids['acme']}"
    assert 'data-view="grid"' in body(client.get(start, headers={**customer, **HTML}))
    saved = post(client, customer, "/view", {"view": "list", "item_id": ids["acme"]}, start)
    assert saved.status_code == 303 and saved.headers["Location"].endswith("?view=unsaved")
    shown = body(client.get(saved.headers["Location"], headers={**customer, **HTML}))
    assert 'data-view="list"' in shown and 'data-testid="view-unsaved"' not in shown
    assert codex_site.view_of("client-sub") is None


def test_search_page_ranks_and_highlights(page: Any, kt: KnowledgeTree,
                                          ids: dict[str, str]) -> None:
    kt.create(ids["internal"], "Printer", "article", by="alice", content="toner and paper")
    kt.create(ids["internal"], "Office", "article", by="alice",
              content="the printer is on the second floor")
    shown = body(page("technician", "/search?query=printer"))
    results = shown.split('data-testid="results"', 1)[1]
    assert results.index(">Printer<") < results.index(">Office<")
    assert "<mark>printer</mark>" in results
    assert "Internal" in results  # the folder path
    assert "Nothing matches" in body(page("technician", "/search?query=zebra"))
    assert page("technician", "/search?query=x&page=0").status_code == 400


def test_names_and_content_are_escaped_or_sanitised(page: Any, kt: KnowledgeTree,
                                                    ids: dict[str, str]) -> None:
    folder = kt.create(ids["internal"], f"F {XSS}", "folder", by="mallory")
    article = kt.create(folder.id, f"A {XSS}", "article", by="mallory",
                        content=f"{XSS}\n<script>alert(2)</script>\n[x](javascript:alert(3))")
    for path in ("/", f"/items/{folder.id}", f"/items/{article.id}",
                 f"/items/{article.id}/context", "/search?query=onerror"):
        text = body(page("admin", path))
        assert "<img src=x onerror" not in text, path
        assert "<script>alert" not in text, path
        assert 'href="javascript:' not in text, path
    shown = body(page("admin", f"/items/{article.id}"))
    assert "A &lt;img src=x onerror=&#34;alert(1)&#34;&gt;" in shown


def test_a_missing_item_is_a_404_page(page: Any, ids: dict[str, str]) -> None:
    missing = page("technician", "/items/does-not-exist")
    assert missing.status_code == 404 and missing.mimetype == "text/html"


# ---------- admin ----------

def test_admin_wipe_needs_the_typed_word(client: FlaskClient, as_user: Headers,
                                         kt: KnowledgeTree, ids: dict[str, str]) -> None:
    admin = as_user("admin")
    wrong = post(client, admin, "/admin/wipe", {"confirm": "wipe"}, "/admin")
    assert 'id="confirm-error"' in body(wrong, 400)
    assert kt.counts()["articles"] == 4
    technician = as_user("technician")
    token = csrf_token(client, technician)
    refused = client.post("/admin/wipe", headers={**technician, **HTML},
                          data={"confirm": "WIPE", "csrf_token": token})
    assert refused.status_code == 403
    done = post(client, admin, "/admin/wipe", {"confirm": "WIPE"}, "/admin")
    assert 'data-testid="wiped"' in body(done)
    assert kt.counts() == {"folders": 0, "articles": 0, "files": 0}


def test_admin_import_dry_run_then_confirm(client: FlaskClient, as_user: Headers,
                                           kt_app: Flask, kt: KnowledgeTree,
                                           tmp_path: Any) -> None:
    kt_app.config["KT_PENDING_IMPORTS_DIR"] = str(tmp_path / "pending")
    document = {"format": "hivematrix-knowledgetree", "version": 1, "items": [
        {"name": "Imported", "type": "folder", "children": [
            {"name": "How-to", "type": "article", "content": "steps"}]}]}
    admin = {**as_user("admin"), **HTML}
    token = csrf_token(client, as_user("admin"), "/admin")

    def send(data: bytes) -> Any:
        return client.post("/admin/import", headers=admin, content_type="multipart/form-data",
                           data={"csrf_token": token,
                                 "file": (io.BytesIO(data), "export.json")})

    assert 'id="file-error"' in body(send(b"not json"), 400)
    report = body(send(json.dumps(document).encode()))
    assert 'data-testid="import-report"' in report
    assert 'data-report="total">2<' in report
    assert [c.name for c in kt.children(ROOT_ID)] == []  # the dry run wrote nothing
    done = client.post("/admin/import/confirm", headers=admin, data={"csrf_token": token})
    assert 'data-testid="imported">Imported 2 items' in body(done).replace("\n", "")
    assert [c.name for c in kt.children(ROOT_ID)] == ["Imported"]
    again = client.post("/admin/import/confirm", headers=admin, data={"csrf_token": token})
    assert again.status_code == 409  # used once
    assert list((tmp_path / "pending").iterdir()) == []


def test_admin_sync_start_refused_while_one_runs(client: FlaskClient, as_user: Headers,
                                                 kt: KnowledgeTree) -> None:
    from hivematrix.knowledgetree import scheduler

    lease = scheduler.Lease(kt.store, scheduler.SYNC_LEASE, "elsewhere:1:cli", 60.0)
    assert lease.acquire()
    answer = post(client, as_user("admin"), "/admin/sync", {}, "/admin")
    assert "A Codex sync is running" in body(answer, 409)
    lease.release(error="stopped by the test")
    # The finished run's time and outcome on the page.
    finished = body(client.get("/admin", headers={**as_user("admin"), **HTML}))
    state = finished.split("data-sync-state>", 1)[1].split("</p>", 1)[0]
    assert re.search(r'Last finished <time datetime="\d{4}-\d\d-\d\dT[\d:]+\+00:00">', state)
    assert "stopped by the test" in finished


# ---------- helpers ----------

def test_marked_pieces() -> None:
    pieces = logic.marked("abc def ghi", [(4, 7), (0, 3), (5, 6), (20, 30)])
    assert [(p.text, p.marked) for p in pieces] == [("abc", True), (" ", False),
                                                    ("def", True), (" ghi", False)]
    assert logic.marked("", []) == []


def test_links_follow_nexus_prefix(client: FlaskClient, as_user: Headers,
                                   ids: dict[str, str]) -> None:
    """Behind Nexus every URL a page or its script uses starts with the service's prefix."""
    headers = {**as_user("admin"), **HTML, "X-Forwarded-Prefix": "/knowledgetree"}
    home = body(client.get("/", headers=headers))
    assert 'src="/knowledgetree/static/knowledgetree.js"' in home
    assert 'data-search-api="/knowledgetree/api/search"' in home
    assert 'data-item-url="/knowledgetree/items/ITEM_ID"' in home
    assert f'href="/knowledgetree/items/{ids["internal"]}"' in home
    article = body(client.get(f"/items/{ids['notes']}", headers=headers))
    assert f'data-context-api="/knowledgetree/api/context/{ids["notes"]}"' in article
    assert 'action="/knowledgetree/search"' in article
    script = client.get("/static/knowledgetree.js")
    assert script.status_code == 200 and b"textContent" in script.data
    assert b"innerHTML" not in script.data and b"insertAdjacentHTML" not in script.data


def test_an_html_article_is_edited_and_shown_sanitised(client: FlaskClient, as_user: Headers,
                                                       kt: KnowledgeTree,
                                                       ids: dict[str, str]) -> None:
    tech = as_user("technician")
    saved = post(client, tech, f"/items/{ids['runbook']}/edit",
                 {"name": "Escalation", "content_format": "html",
                  "content": '<p style="color:red" onclick="x()">call <b>now</b></p>'})
    assert saved.status_code == 303
    assert kt.get(ids["runbook"]).content_format == "html"
    shown = body(client.get(f"/items/{ids['runbook']}", headers={**tech, **HTML}))
    content = shown.split('data-testid="article-content"', 1)[1].split("</article>", 1)[0]
    assert "<p>call <b>now</b></p>" in content
    assert "onclick" not in content and "color:red" not in content
    bad = post(client, tech, f"/items/{ids['runbook']}/edit",
               {"name": "Escalation", "content_format": "rtf", "content": "x"})
    assert 'id="content_format-error"' in body(bad, 400)


def test_every_page_per_role(page: Any, kt: KnowledgeTree, ids: dict[str, str]) -> None:
    """Each page's answer for each role: 200 to whom it is for, 403 to staff it is not for,
    404 to a client user outside their company (their own company's reads work)."""
    kt.update(ids["notes"], by="alice", content="newer")
    [revision] = kt.revisions(ids["notes"])
    notes, internal = ids["notes"], ids["internal"]
    reads = ["/", f"/items/{internal}", f"/items/{notes}", "/search?query=key",
             f"/items/{notes}/context", f"/items/{notes}/revisions/{revision.id}"]
    writes = [f"/items/{internal}/new?type=article", f"/items/{internal}/new?type=folder",
              f"/items/{notes}/edit", f"/items/{notes}/move", f"/items/{notes}/delete"]
    expected = {
        "admin": {**dict.fromkeys(reads, 200), **dict.fromkeys(writes, 200), "/admin": 200},
        "technician": {**dict.fromkeys(reads, 200), **dict.fromkeys(writes, 200),
                       "/admin": 403},
        "billing": {**dict.fromkeys(reads, 200), **dict.fromkeys(writes, 403), "/admin": 403},
    }
    for level, pages in expected.items():
        for path, status in pages.items():
            assert page(level, path).status_code == status, (level, path)
    # A client user: their company's pages (the article Notes is in it), nothing else.
    client_pages = {"/": 303, f"/items/{internal}": 404, f"/items/{notes}": 200,
                    "/search?query=key": 200, f"/items/{notes}/context": 200,
                    f"/items/{notes}/revisions/{revision.id}": 200,
                    f"/items/{ids['runbook']}/context": 404, "/admin": 403,
                    **dict.fromkeys(writes, 403)}
    for path, status in client_pages.items():
        assert page("client", path, account_number=ACME).status_code == status, path
