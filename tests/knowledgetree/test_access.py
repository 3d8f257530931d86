"""Who may do what in KnowledgeTree's API: staff levels, client users confined to their company's
subtree, services by route, and synced (read-only) items that no API caller can change."""

from __future__ import annotations

import io
from typing import Any

import pytest
from flask.testing import FlaskClient

from hivematrix.common.testing import TokenFactory
from hivematrix.knowledgetree.items import KnowledgeTree
from tests.knowledgetree.apiapp import (  # noqa: F401 - the fixtures
    ACME,
    BETA,
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


@pytest.fixture
def ids(kt: KnowledgeTree) -> dict[str, str]:
    return company_tree(kt)


def service(tokens: TokenFactory, caller: str) -> dict[str, str]:
    return tokens.headers(tokens.service(caller, "knowledgetree"))


def reads(ids: dict[str, str]) -> list[str]:
    return [f"/api/items/{ids['notes']}", f"/api/items/{ids['acme']}/children",
            f"/api/items/{ids['notes']}/breadcrumbs", f"/api/items/{ids['notes']}/revisions",
            f"/api/items/{ids['notes']}/attachments", "/api/folders/tree",
            "/api/search?query=key", f"/api/context/{ids['notes']}",
            f"/api/context/for-company/{ACME}"]


def test_anonymous_callers_are_refused(client: FlaskClient, ids: dict[str, str]) -> None:
    for path in [*reads(ids), "/api/export", "/api/admin/counts"]:
        assert client.get(path).status_code == 401, path
    assert client.post("/api/items", json={"parent_id": "root", "name": "x"}).status_code == 401


@pytest.mark.parametrize("level", ["admin", "technician", "billing"])
def test_staff_read_everything(client: FlaskClient, as_user: Headers, ids: dict[str, str],
                               level: str) -> None:
    headers = as_user(level)
    for path in [*reads(ids), f"/api/items/{ids['secret']}", "/api/export",
                 "/api/admin/counts"]:
        ok(client.get(path, headers=headers))


def test_billing_cannot_write(client: FlaskClient, as_user: Headers,
                              ids: dict[str, str]) -> None:
    billing = with_csrf(client, as_user("billing"))
    note = ids["notes"]
    attempts = [
        client.post("/api/items", headers=billing, json={"parent_id": "root", "name": "x"}),
        client.patch(f"/api/items/{note}", headers=billing, json={"content": "changed"}),
        client.delete(f"/api/items/{note}", headers=billing),
        client.post(f"/api/items/{note}/move", headers=billing,
                    json={"new_parent_id": ids["internal"]}),
        client.post(f"/api/items/{note}/attachments", headers=billing,
                    data={"file": (io.BytesIO(b"x"), "a.txt")},
                    content_type="multipart/form-data"),
        client.post(f"/api/items/{note}/revisions/any/restore", headers=billing),
        client.post("/api/import", headers=billing, json={"items": []}),
        client.post("/api/admin/wipe", headers=billing, json={"confirm": "WIPE"}),
    ]
    for response in attempts:
        refused(response, 403)
    assert ok(client.get(f"/api/items/{note}", headers=billing))["content"].startswith("The")


def test_technicians_cannot_wipe_or_import(client: FlaskClient, as_user: Headers,
                                           ids: dict[str, str]) -> None:
    tech = as_user("technician")
    refused(client.post("/api/admin/wipe", headers=tech, json={"confirm": "WIPE"}), 403)
    refused(client.post("/api/import", headers=tech,
                        json={"items": [{"name": "New", "type": "folder"}]}), 403)
    assert ok(client.get("/api/admin/counts", headers=tech))["articles"] == 4
    assert ok(client.get(f"/api/items/{ids['acme']}", headers=tech))["name"] == "Acme Dental"


def test_only_admins_file_a_folder_under_an_account_number(
        client: FlaskClient, as_user: Headers, ids: dict[str, str]) -> None:
    tech = as_user("technician")
    refused(client.post("/api/items", headers=tech, json={
        "parent_id": "root", "name": "Gamma", "type": "folder", "account_number": "777"}),
        403, "account_number")
    mine = create(client, tech, "Gamma", type="folder")
    refused(client.patch(f"/api/items/{mine['id']}", headers=tech,
                         json={"account_number": BETA}), 403)
    filed = ok(client.patch(f"/api/items/{mine['id']}", headers=as_user("admin"),
                            json={"account_number": "777"}))
    assert filed["account_number"] == "777"


def test_client_reads_only_their_company(client: FlaskClient, as_user: Headers,
                                         ids: dict[str, str]) -> None:
    acme = as_user("client", account_number=ACME)
    for key in ("acme", "contacts", "jane", "notes"):
        ok(client.get(f"/api/items/{ids[key]}", headers=acme))
    for key in ("beta", "secret", "internal", "runbook", "companies"):
        refused(client.get(f"/api/items/{ids[key]}", headers=acme), 404)
        refused(client.get(f"/api/items/{ids[key]}/children", headers=acme), 404)
        refused(client.get(f"/api/context/{ids[key]}", headers=acme), 404)
        refused(client.get(f"/api/items/{ids[key]}/revisions", headers=acme), 404)
        refused(client.get(f"/api/items/{ids[key]}/attachments", headers=acme), 404)
    refused(client.get("/api/items/root", headers=acme), 404)
    kids = ok(client.get(f"/api/items/{ids['acme']}/children", headers=acme))
    assert [k["name"] for k in kids] == ["Contacts", "Notes"]
    # The folder tree: the path down to Acme and Acme's subtree, nothing else.
    tree = ok(client.get("/api/folders/tree", headers=acme))
    assert [c["name"] for c in tree["children"]] == ["Companies"]
    assert [c["name"] for c in tree["children"][0]["children"]] == ["Acme Dental"]
    assert [c["name"] for c in tree["children"][0]["children"][0]["children"]] == ["Contacts"]
    # Search stays inside Acme: Beta's and the internal articles are not found.
    assert ok(client.get("/api/search?query=beta", headers=acme))["total"] == 0
    assert ok(client.get("/api/search?query=engineer", headers=acme))["total"] == 0
    found = ok(client.get("/api/search?query=key", headers=acme))
    assert [r["id"] for r in found["results"]] == [ids["notes"]]
    refused(client.get(f"/api/search?query=beta&start={ids['beta']}", headers=acme), 404)
    # Context stays inside too.
    context = ok(client.get(f"/api/context/{ids['notes']}", headers=acme))["context"]
    assert "server room key" in context and "beta" not in context.lower()
    assert ok(client.get(f"/api/context/for-company/{ACME}", headers=acme))["sources"]
    refused(client.get(f"/api/context/for-company/{BETA}", headers=acme), 404)
    # Nothing whole-tree, nothing written.
    refused(client.get("/api/export", headers=acme), 403)
    refused(client.get("/api/admin/counts", headers=acme), 403)
    refused(client.post("/api/items", headers=acme,
                        json={"parent_id": ids["acme"], "name": "Mine"}), 403)
    refused(client.patch(f"/api/items/{ids['notes']}", headers=acme, json={"content": "x"}),
            403)


def test_client_cannot_tell_hidden_items_from_missing_ones(
        client: FlaskClient, as_user: Headers, ids: dict[str, str]) -> None:
    acme = as_user("client", account_number=ACME)

    def answer(item_id: str, suffix: str = "") -> dict[str, Any]:
        body = refused(client.get(f"/api/items/{item_id}{suffix}", headers=acme), 404)
        return {key: value for key, value in body.items()
                if key not in ("instance", "correlation_id", "detail")}

    missing = "00000000-0000-4000-8000-000000000000"
    for suffix in ("", "/children", "/breadcrumbs", "/attachments"):
        assert answer(ids["secret"], suffix) == answer(missing, suffix)
    assert "errors" not in answer(ids["secret"])


def test_client_file_downloads_are_confined(client: FlaskClient, as_user: Headers,
                                            kt: KnowledgeTree, ids: dict[str, str]) -> None:
    mine = kt.attach_file(ids["notes"], "floor plan.pdf", b"%PDF acme", by="alice")
    theirs = kt.attach_file(ids["secret"], "vault.txt", b"beta secret", by="alice")
    acme = as_user("client", account_number=ACME)
    got = client.get(f"/api/items/{ids['notes']}/attachments/{mine.id}", headers=acme)
    assert got.status_code == 200 and got.data == b"%PDF acme"
    refused(client.get(f"/api/items/{ids['secret']}/attachments/{theirs.id}", headers=acme),
            404)
    # Nor through an item they can read.
    refused(client.get(f"/api/items/{ids['notes']}/attachments/{theirs.id}", headers=acme),
            404)


def test_client_without_a_company_sees_nothing(client: FlaskClient, as_user: Headers,
                                               ids: dict[str, str]) -> None:
    nobody = as_user("client")
    refused(client.get(f"/api/items/{ids['acme']}", headers=nobody), 404)
    assert ok(client.get("/api/search?query=key", headers=nobody))["total"] == 0
    tree = ok(client.get("/api/folders/tree", headers=nobody))
    assert tree["children"] == []


def test_read_only_items_cannot_be_changed(client: FlaskClient, as_user: Headers,
                                           ids: dict[str, str]) -> None:
    admin = with_csrf(client, as_user("admin"))
    jane = ids["jane"]
    refused(client.patch(f"/api/items/{jane}", headers=admin, json={"content": "edited"}),
            403, "item_id", location="path")
    refused(client.patch(f"/api/items/{ids['acme']}", headers=admin, json={"name": "Renamed"}),
            403)
    refused(client.delete(f"/api/items/{jane}", headers=admin), 403)
    refused(client.delete(f"/api/items/{ids['acme']}", headers=admin), 403)
    refused(client.post(f"/api/items/{jane}/move", headers=admin,
                        json={"new_parent_id": ids["internal"]}), 403)
    refused(client.post(f"/api/items/{jane}/attachments", headers=admin,
                        data={"file": (io.BytesIO(b"x"), "a.txt")},
                        content_type="multipart/form-data"), 403)
    got = ok(client.get(f"/api/items/{jane}", headers=admin))
    assert got["content"].startswith("- Email: jane@acme.test") and got["read_only"]
    # What a person files beside generated content is theirs to write.
    beside = create(client, admin, "Printer quirks", parent=ids["acme"])
    assert beside["read_only"] is False


def test_services_by_route(client: FlaskClient, tokens: TokenFactory,
                           ids: dict[str, str]) -> None:
    brainhair = service(tokens, "brainhair")
    for path in reads(ids):
        ok(client.get(path, headers=brainhair))
    article = create(client, brainhair, "Answer", parent=ids["internal"], content="draft")
    assert article["created_by"] == "service:brainhair"
    changed = ok(client.patch(f"/api/items/{article['id']}", headers=brainhair,
                              json={"content": "approved text"}))
    assert changed["updated_by"] == "service:brainhair"
    refused(client.post("/api/items", headers=brainhair,
                        json={"parent_id": "root", "name": "F", "type": "folder"}), 403, "type")
    refused(client.patch(f"/api/items/{ids['internal']}", headers=brainhair,
                         json={"name": "Renamed"}), 403)
    refused(client.patch(f"/api/items/{ids['jane']}", headers=brainhair,
                         json={"content": "x"}), 403)
    refused(client.delete(f"/api/items/{article['id']}", headers=brainhair), 403)
    refused(client.post(f"/api/items/{article['id']}/move", headers=brainhair,
                        json={"new_parent_id": "root"}), 403)
    refused(client.post("/api/admin/wipe", headers=brainhair, json={"confirm": "WIPE"}), 403)
    refused(client.post("/api/import", headers=brainhair, json={"items": []}), 403)
    refused(client.get("/api/export", headers=brainhair), 403)
    helm = service(tokens, "helm")
    assert ok(client.get("/api/admin/counts", headers=helm))["folders"] == 5
    refused(client.get(f"/api/items/{ids['notes']}", headers=helm), 403)
    refused(client.get(f"/api/items/{ids['notes']}", headers=service(tokens, "codex")), 403)
    # A token meant for another service is refused outright.
    elsewhere = tokens.headers(tokens.service("brainhair", "codex"))
    assert client.get(f"/api/items/{ids['notes']}", headers=elsewhere).status_code == 401
