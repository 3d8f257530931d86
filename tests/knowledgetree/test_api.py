"""KnowledgeTree's JSON API against a real FalkorDB: every route's happy path, the model's
refusals as RFC 7807 problems naming the field, attachments with their limits, context,
export → wipe → import round trip."""

from __future__ import annotations

import io
import warnings
from typing import Any

from flask.testing import FlaskClient

from hivematrix.knowledgetree.items import ROOT_ID, KnowledgeTree
from tests.knowledgetree.apiapp import (  # noqa: F401 - the fixtures
    ACME,
    Headers,
    client_fixture,
    company_tree,
    create,
    kt_app_fixture,
    kt_fixture,
    ok,
    refused,
    with_csrf,
)


def test_create_read_update_delete(client: FlaskClient, as_user: Headers) -> None:
    tech = as_user("technician", preferred_username="tina")
    folder = create(client, tech, "Runbooks", type="folder", is_attached=True)
    assert folder["type"] == "folder" and folder["is_attached"] and folder["parent_id"] == "root"
    article = create(client, tech, "Printers", parent=folder["id"], content="# Jams",
                     metadata={"tags": ["hw"]})
    assert article["created_by"] == "tina" and article["read_only"] is False
    got = ok(client.get(f"/api/items/{article['id']}", headers=tech))
    assert got["content"] == "# Jams" and got["metadata"] == {"tags": ["hw"]}
    changed = ok(client.patch(f"/api/items/{article['id']}", headers=tech,
                              json={"content": "# Paper jams", "name": "Printer jams"}))
    assert changed["name"] == "Printer jams" and changed["content"] == "# Paper jams"
    gone = ok(client.delete(f"/api/items/{folder['id']}", headers=tech))
    assert gone == {"deleted": 2}
    refused(client.get(f"/api/items/{article['id']}", headers=tech), 404)


def test_bad_input_names_the_field(client: FlaskClient, as_user: Headers) -> None:
    """The request's shape is checked first (422, as across the platform); what the model
    refuses answers 400/404/409; both name the field."""
    tech = as_user("technician")
    refused(client.post("/api/items", headers=tech, json={"name": "x"}), 422, "parent_id")
    refused(client.post("/api/items", headers=tech,
                        json={"parent_id": "root", "name": "x", "type": "root"}), 422, "type")
    refused(client.post("/api/items", headers=tech,
                        json={"parent_id": "root", "name": "a/b"}), 400, "name")
    refused(client.post("/api/items", headers=tech,
                        json={"parent_id": "root", "name": "x", "content_format": "rtf"}),
            422, "content_format")
    # Only the sync writes read-only items: the field does not exist for the API.
    refused(client.post("/api/items", headers=tech,
                        json={"parent_id": "root", "name": "x", "read_only": True}),
            422, "read_only")
    refused(client.post("/api/items", headers=tech,
                        json={"parent_id": "nope", "name": "x"}), 404, "parent_id")
    article = create(client, tech, "Leaf")
    refused(client.post("/api/items", headers=tech,
                        json={"parent_id": article["id"], "name": "x"}), 400, "parent_id")
    refused(client.post("/api/items", headers=tech,
                        json={"parent_id": "root", "name": "x", "is_attached": True}),
            400, "is_attached")
    refused(client.patch("/api/items/nope", headers=tech, json={"name": "y"}), 404, "item_id",
            location="path")


def test_sibling_names_are_unique(client: FlaskClient, as_user: Headers) -> None:
    tech = as_user("technician")
    first = create(client, tech, "Printers")
    body = refused(client.post("/api/items", headers=tech,
                               json={"parent_id": "root", "name": "PRINTERS"}), 409, "name")
    assert body["existing_id"] == first["id"]
    other = create(client, tech, "Scanners")
    refused(client.patch(f"/api/items/{other['id']}", headers=tech,
                         json={"name": "printers"}), 409, "name")


def test_children_breadcrumbs_and_folder_tree(client: FlaskClient, as_user: Headers) -> None:
    tech = as_user("technician")
    top = create(client, tech, "Clients", type="folder")
    acme = create(client, tech, "Acme", type="folder", parent=top["id"])
    create(client, tech, "Zeta note", parent=top["id"], content="secret body")
    create(client, tech, "Alpha note", parent=top["id"])
    kids = ok(client.get(f"/api/items/{top['id']}/children", headers=tech))
    assert [k["name"] for k in kids] == ["Acme", "Alpha note", "Zeta note"]
    assert all("content" not in k for k in kids)
    crumbs = ok(client.get(f"/api/items/{acme['id']}/breadcrumbs", headers=tech))
    assert [c["id"] for c in crumbs] == ["root", top["id"], acme["id"]]
    tree = ok(client.get("/api/folders/tree", headers=tech))
    assert tree["id"] == "root"
    assert [(c["name"], [g["name"] for g in c["children"]]) for c in tree["children"]] == [
        ("Clients", ["Acme"])]
    refused(client.get("/api/items/nope/children", headers=tech), 404, "item_id", location="path")


def test_move(client: FlaskClient, as_user: Headers) -> None:
    tech = as_user("technician")
    a = create(client, tech, "A", type="folder")
    b = create(client, tech, "B", type="folder", parent=a["id"])
    note = create(client, tech, "Note", parent=a["id"])
    moved = ok(client.post(f"/api/items/{note['id']}/move", headers=tech,
                           json={"new_parent_id": b["id"]}))
    assert moved["parent_id"] == b["id"]
    refused(client.post(f"/api/items/{a['id']}/move", headers=tech,
                        json={"new_parent_id": b["id"]}), 400, "new_parent_id")
    refused(client.post("/api/items/root/move", headers=tech,
                        json={"new_parent_id": a["id"]}), 400, "item_id", location="path")
    refused(client.post(f"/api/items/{note['id']}/move", headers=tech,
                        json={"new_parent_id": "nope"}), 404, "new_parent_id")
    refused(client.post(f"/api/items/{note['id']}/move", headers=tech, json={}),
            422, "new_parent_id")
    create(client, tech, "Note", parent=a["id"])
    refused(client.post(f"/api/items/{note['id']}/move", headers=tech,
                        json={"new_parent_id": a["id"]}), 409, "new_parent_id")
    refused(client.delete("/api/items/root", headers=tech), 400, "item_id", location="path")


def test_revisions_and_restore(client: FlaskClient, as_user: Headers) -> None:
    tech = as_user("technician")
    note = create(client, tech, "Note", content="one")
    for text in ("two", "three"):
        ok(client.patch(f"/api/items/{note['id']}", headers=tech, json={"content": text}))
    revisions = ok(client.get(f"/api/items/{note['id']}/revisions", headers=tech))
    assert [r["content"] for r in revisions] == ["two", "one"]
    oldest = revisions[-1]["id"]
    restored = ok(client.post(f"/api/items/{note['id']}/revisions/{oldest}/restore",
                              headers=tech))
    assert restored["content"] == "one"
    again = ok(client.get(f"/api/items/{note['id']}/revisions", headers=tech))
    assert [r["content"] for r in again] == ["three", "two", "one"]
    refused(client.post(f"/api/items/{note['id']}/revisions/nope/restore", headers=tech),
            404, "revision_id", location="path")


def test_search_ranked_paginated_with_snippets(client: FlaskClient, as_user: Headers) -> None:
    tech = as_user("technician")
    folder = create(client, tech, "Hardware", type="folder")
    create(client, tech, "Notes", parent=folder["id"],
           content="Most printer problems are paper jams in tray two.")
    exact = create(client, tech, "Printer", parent=folder["id"], content="See the vendor.")
    for n in range(3):
        create(client, tech, f"Printer room {n}", content="printer")
    page = ok(client.get("/api/search?query=printer&limit=2", headers=tech))
    assert page["total"] == 5 and len(page["results"]) == 2 and page["offset"] == 0
    first = page["results"][0]
    assert first["id"] == exact["id"]
    assert first["folder_path"] == "KnowledgeTree / Hardware"
    assert [c["id"] for c in first["path"]] == ["root", folder["id"]]
    rest = ok(client.get("/api/search?query=printer&limit=2&offset=4", headers=tech))
    assert len(rest["results"]) == 1
    notes = ok(client.get("/api/search?query=jams", headers=tech))["results"][0]
    start, end = notes["highlights"][0]
    assert notes["snippet"][start:end].lower() == "jams"
    scoped = ok(client.get(f"/api/search?query=printer&start={folder['id']}", headers=tech))
    assert scoped["total"] == 2
    assert ok(client.get("/api/search?query=", headers=tech))["total"] == 0
    refused(client.get("/api/search?query=x&limit=0", headers=tech), 422, "limit", "query")
    refused(client.get("/api/search?query=x&offset=-1", headers=tech), 422, "offset", "query")
    refused(client.get("/api/search?query=x&start=nope", headers=tech), 404, "start", "query")


def upload(name: str, data: bytes) -> dict[str, Any]:
    return {"data": {"file": (io.BytesIO(data), name)}, "content_type": "multipart/form-data"}


def test_attachments(client: FlaskClient, as_user: Headers, kt: KnowledgeTree) -> None:
    tech = with_csrf(client, as_user("technician"))
    note = create(client, tech, "Note")
    url = f"/api/items/{note['id']}/attachments"
    stored = ok(client.post(url, headers=tech, **upload("Quarterly report (final).pdf",
                                                        b"%PDF-1.4 data")), 201)
    assert stored["filename"] == "Quarterly report (final).pdf"
    assert stored["content_type"] == "application/pdf" and stored["size"] == 13
    listed = ok(client.get(url, headers=tech))
    assert [f["id"] for f in listed] == [stored["id"]]
    download = client.get(stored["url"], headers=tech)
    assert download.status_code == 200 and download.data == b"%PDF-1.4 data"
    disposition = download.headers["Content-Disposition"]
    assert disposition.startswith("attachment;") and "Quarterly" in disposition
    assert download.headers["X-Content-Type-Options"] == "nosniff"
    assert "sandbox" in download.headers["Content-Security-Policy"]
    # A path sent along keeps only the file's own name; unicode names survive.
    odd = ok(client.post(url, headers=tech, **upload("home/me/Zürich plan.png",
                                                     b"\x89PNG")), 201)
    assert odd["filename"] == "Zürich plan.png"
    assert "Z%C3%BCrich" in client.get(odd["url"], headers=tech).headers["Content-Disposition"]
    # Limits: KT_MAX_UPLOAD_BYTES is 4096 in these tests; types by extension.
    refused(client.post(url, headers=tech, **upload("big.txt", b"x" * 4097)), 413, "file",
            location="form")
    ok(client.post(url, headers=tech, **upload("exact.txt", b"x" * 4096)), 201)
    # Far beyond it, the request parser refuses the body before the view reads it.
    refused(client.post(url, headers=tech, **upload("huge.txt", b"x" * (4096 + 2**21))), 413)
    refused(client.post(url, headers=tech, **upload("page.html", b"<script>")), 415, "file",
            location="form")
    refused(client.post(url, headers=tech, **upload("noextension", b"x")), 415, "file",
            location="form")
    refused(client.post(url, headers=tech, data={}, content_type="multipart/form-data"),
            400, "file", location="form")
    refused(client.post("/api/items/nope/attachments", headers=tech,
                        **upload("a.txt", b"x")), 404, "item_id", location="path")
    # Another item's file is not reachable through this item.
    other = create(client, tech, "Other")
    refused(client.get(f"/api/items/{other['id']}/attachments/{stored['id']}", headers=tech),
            404, "file_id", location="path")
    path = kt.file(stored["id"])[1]
    assert path.is_file()
    ok(client.delete(stored["url"], headers=tech))
    assert not path.exists()
    refused(client.get(stored["url"], headers=tech), 404, "file_id", location="path")


def test_upload_needs_the_csrf_token(client: FlaskClient, as_user: Headers) -> None:
    tech = as_user("technician")
    note = create(client, tech, "Note")
    body = refused(client.post(f"/api/items/{note['id']}/attachments", headers=tech,
                               **upload("a.txt", b"x")), 400)
    assert "CSRF" in body["detail"]


def test_item_context_route(client: FlaskClient, as_user: Headers) -> None:
    tech = as_user("technician")
    policies = create(client, tech, "Policies", type="folder", is_attached=True)
    create(client, tech, "Passwords", parent=policies["id"], content="Rotate often.")
    note = create(client, tech, "Note", content="hello")
    got = ok(client.get(f"/api/context/{note['id']}", headers=tech))
    assert "Rotate often." in got["context"] and got["truncated"] is False
    assert got["attached_folders"] == [{"id": policies["id"], "name": "Policies"}]
    assert got["chars"] == len(got["context"]) and got["budget"] == 60_000
    excluded = ok(client.post(f"/api/context/{note['id']}", headers=tech,
                              json={"excluded_ids": [policies["id"]], "max_chars": 5000}))
    assert "Rotate" not in excluded["context"] and "hello" in excluded["context"]
    by_query = ok(client.get(f"/api/context/{note['id']}?excluded_ids={policies['id']}",
                             headers=tech))
    assert by_query["context"] == excluded["context"]
    small = ok(client.get(f"/api/context/{note['id']}?max_chars=100", headers=tech))
    assert small["truncated"] is True and small["chars"] <= 100
    refused(client.get(f"/api/context/{note['id']}?max_chars=0", headers=tech), 400,
            "max_chars", "query")
    refused(client.get(f"/api/context/{note['id']}?max_chars=400001", headers=tech), 400,
            "max_chars", "query")
    refused(client.get("/api/context/nope", headers=tech), 404, "item_id", location="path")


def test_company_context_route(client: FlaskClient, as_user: Headers,
                               kt: KnowledgeTree) -> None:
    ids = company_tree(kt)
    tech = as_user("technician")
    got = ok(client.get(f"/api/context/for-company/{ACME}", headers=tech))
    assert got["context"].startswith("# Company: Acme Dental (account 620547)")
    assert [s["id"] for s in got["sources"]] == [ids["notes"], ids["jane"]]
    assert "jane@acme.test" in got["context"] and "beta" not in got["context"].lower()
    assert got["folders"] == [{"id": ids["acme"], "name": "Acme Dental"}]
    short = ok(client.get(f"/api/context/for-company/{ACME}?max_chars=120", headers=tech))
    assert short["truncated"] is True and short["chars"] <= 120
    refused(client.get("/api/context/for-company/999999", headers=tech), 404,
            "account_number", location="path")


def test_export_wipe_import_round_trip(client: FlaskClient, as_user: Headers,
                                       kt: KnowledgeTree) -> None:
    company_tree(kt)
    admin = as_user("admin")
    create(client, admin, "Formatted", content="<p>x</p>", content_format="html")
    exported = client.get("/api/export", headers=admin)
    assert exported.status_code == 200
    assert exported.headers["Content-Disposition"].startswith("attachment;")
    document = exported.get_json()
    assert document["format"] == "hivematrix-knowledgetree" and document["items"]
    counts = ok(client.get("/api/admin/counts", headers=admin))
    assert counts == {"folders": 5, "articles": 5, "files": 0}
    refused(client.post("/api/admin/wipe", headers=admin, json={"confirm": "yes"}), 400,
            "confirm")
    refused(client.post("/api/admin/wipe", headers=admin, json={}), 422, "confirm")
    assert ok(client.get("/api/admin/counts", headers=admin))["articles"] == 5
    wiped = ok(client.post("/api/admin/wipe", headers=admin, json={"confirm": "WIPE"}))
    assert wiped["wiped"] == counts
    assert ok(client.get("/api/admin/counts", headers=admin)) == {
        "folders": 0, "articles": 0, "files": 0}
    assert ok(client.get("/api/items/root/children", headers=admin)) == []
    report = ok(client.post("/api/import?dry_run=true", headers=admin, json=document))
    assert report == {"dry_run": True, "created": 0, "parent_id": "root", "folders": 5,
                      "articles": 5, "total": 10}
    assert ok(client.get("/api/admin/counts", headers=admin))["articles"] == 0
    done = ok(client.post("/api/import", headers=admin, json=document))
    assert done["created"] == 10 and done["dry_run"] is False
    assert client.get("/api/export", headers=admin).get_json() == document
    # Importing again clashes at the top level and changes nothing.
    clash = refused(client.post("/api/import", headers=admin, json={**document,
                                                                    "dry_run": True}),
                    409, "items[0].name")
    assert clash["existing_id"]
    refused(client.post("/api/import", headers=admin, json=document), 409, "items[0].name")
    assert ok(client.get("/api/admin/counts", headers=admin))["articles"] == 5


def test_an_import_may_be_larger_than_other_requests(client: FlaskClient,
                                                     as_user: Headers) -> None:
    admin = as_user("admin")
    limit = client.application.config["MAX_CONTENT_LENGTH"]
    assert limit == 4096 + 2**20  # raised from 64 KiB to fit the largest upload
    body = "x" * (limit + 1)
    refused(client.post("/api/items", headers=admin,
                        json={"parent_id": "root", "name": "Big", "content": body}), 413)
    items = [{"name": "Big", "content": body}]
    assert ok(client.post("/api/import", headers=admin, json={"items": items}))["created"] == 1
    assert ok(client.get("/api/export", headers=admin))["items"][0]["content"] == body


def test_import_names_bad_entries(client: FlaskClient, as_user: Headers) -> None:
    admin = as_user("admin")
    items = [{"name": "Good", "type": "folder", "children": [{"name": "a/b"}]}]
    refused(client.post("/api/import", headers=admin, json={"items": items}), 400,
            "items[0].children[0].name")
    refused(client.post("/api/import", headers=admin, json={"items": "nope"}), 400, "items")
    refused(client.post("/api/import", headers=admin, json={}), 422, "items")
    refused(client.post("/api/import", headers=admin,
                        json={"items": [], "parent_id": "nope"}), 404, "parent_id")
    assert ok(client.get("/api/admin/counts", headers=admin))["folders"] == 0


def test_script_in_a_name_comes_back_as_json_data(client: FlaskClient,
                                                   as_user: Headers) -> None:
    tech = as_user("technician")
    evil = "<script>alert(1)"
    item = create(client, tech, evil, content=f"<img src=x onerror=alert(1)>{evil}")
    response = client.get(f"/api/items/{item['id']}", headers=tech)
    assert response.mimetype == "application/json"
    assert response.get_json()["name"] == evil
    listed = client.get("/api/items/root/children", headers=tech)
    assert listed.mimetype == "application/json" and listed.get_json()[0]["name"] == evil
    found = client.get("/api/search?query=alert", headers=tech)
    assert found.mimetype == "application/json" and found.get_json()["results"][0]["name"] == evil
    # A refusal naming it is a problem document, not a page, for an API client.
    clash = client.post("/api/items", headers=tech, json={"parent_id": "root", "name": evil})
    assert clash.status_code == 409 and clash.mimetype == "application/problem+json"
    assert evil in clash.get_json()["detail"]
    # A browser asking for a page gets the same refusal escaped.
    page = client.post("/api/items", headers={**tech, "Accept": "text/html"},
                       json={"parent_id": "root", "name": evil})
    assert page.status_code == 409 and page.mimetype == "text/html"
    assert "&lt;script&gt;alert(1)" in page.get_data(True)
    assert "<script>alert" not in page.get_data(True)


def test_health_reports_the_graph(client: FlaskClient, kt: KnowledgeTree) -> None:
    report = ok(client.get("/health"))
    assert report["checks"]["graph"]["status"] == "healthy"
    assert report["checks"]["graph"]["ready"] is True
    # Ready means indexed too: company folders are looked up by account number.
    rows = kt.store.query("CALL db.indexes() YIELD label, properties "
                          "RETURN label, properties")
    indexed = {(row["label"], prop) for row in rows for prop in row["properties"]}
    assert ("ContextItem", "account_number") in indexed


def test_a_new_deployment_is_healthy_at_once(client: FlaskClient) -> None:
    """Nothing has opened the tree yet (the graph does not exist): the first health check
    makes it ready instead of reporting the missing graph (start.sh waits for healthy)."""
    report = ok(client.get("/health"))
    assert report["checks"]["graph"]["status"] == "healthy"
    assert report["checks"]["graph"]["ready"] is True


def test_openapi_documents_the_routes(client: FlaskClient) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # e.g. a schema added twice under one name
        spec = ok(client.get("/apispec.json"))
    paths = spec["paths"]
    assert "201" in paths["/api/items"]["post"]["responses"]
    answer = paths["/api/search"]["get"]["responses"]["200"]["content"]["application/json"]
    assert answer["schema"]["$ref"].endswith("/SearchOut")
    assert {"ItemIn", "ItemOut", "ContextOut"} <= set(spec["components"]["schemas"])
    for path in ("/api/items", "/api/items/{item_id}", "/api/items/{item_id}/children",
                 "/api/items/{item_id}/breadcrumbs", "/api/items/{item_id}/move",
                 "/api/items/{item_id}/revisions", "/api/folders/tree", "/api/search",
                 "/api/items/{item_id}/attachments", "/api/context/{item_id}",
                 "/api/context/for-company/{account_number}", "/api/export", "/api/import",
                 "/api/admin/wipe", "/api/admin/counts"):
        assert path in paths, path
    params = {p["name"] for p in paths["/api/search"]["get"]["parameters"]}
    assert {"query", "start", "limit", "offset"} <= params
    assert ROOT_ID == "root"
