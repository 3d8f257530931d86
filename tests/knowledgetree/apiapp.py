"""The KnowledgeTree app over the real FalkorDB of ``conftest`` (a fresh graph per test), and
small helpers for its API tests. Test modules import the fixtures (``*_fixture``) from here."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask import session as flask_session
from flask.testing import FlaskClient
from flask_wtf.csrf import generate_csrf

from hivematrix.knowledgetree import create_app
from hivematrix.knowledgetree.items import ROOT_ID, KnowledgeTree
from tests.knowledgetree.conftest import FalkorDBServer

Headers = Callable[..., dict[str, str]]
ACME = "620547"
BETA = "620548"


@pytest.fixture(name="kt_app")
def kt_app_fixture(falkordb_server: FalkorDBServer, service_settings: dict[str, Any],
           tmp_path: Path) -> Iterator[Flask]:
    graph = f"kt-api-{uuid.uuid4().hex}"
    app = create_app({**service_settings,
                      "KT_GRAPH_URL": f"falkordb://127.0.0.1:{falkordb_server.port}/{graph}",
                      "KT_FILES_DIR": str(tmp_path / "kt-files"),
                      "KT_MAX_UPLOAD_BYTES": 4096, "MAX_CONTENT_LENGTH": 65536})
    yield app
    holder = app.extensions["knowledgetree"]
    holder.store.drop_all()
    holder.close()


@pytest.fixture(name="client")
def client_fixture(kt_app: Flask) -> FlaskClient:
    return kt_app.test_client()


@pytest.fixture(name="kt")
def kt_fixture(kt_app: Flask) -> KnowledgeTree:
    """The same tree the app uses, for seeding what the API may not write (synced items)."""
    tree: KnowledgeTree = kt_app.extensions["knowledgetree"].tree()
    return tree


def ok(response: Any, status: int = 200) -> Any:
    assert response.status_code == status, (response.status_code, response.get_data(True))
    return response.get_json()


def refused(response: Any, status: int, field: str | None = None,
            location: str = "json") -> dict[str, Any]:
    """A problem document with ``status``, naming ``field`` (when given) at ``location``."""
    assert response.status_code == status, (response.status_code, response.get_data(True))
    assert response.mimetype == "application/problem+json"
    body: dict[str, Any] = response.get_json()
    assert body["status"] == status
    if field is not None:
        assert field in body["errors"][location], body
    return body


def with_csrf(client: FlaskClient, headers: dict[str, str]) -> dict[str, str]:
    """A file upload is a form post: it carries the browser session's CSRF token."""
    with client.application.test_request_context():
        token = generate_csrf()
        raw = flask_session["csrf_token"]
    with client.session_transaction() as stored:
        stored["csrf_token"] = raw
    return {**headers, "X-CSRFToken": token}


def create(client: FlaskClient, headers: dict[str, str], name: str, *,
           parent: str = ROOT_ID, type: str = "article", **fields: Any) -> dict[str, Any]:
    body = ok(client.post("/api/items", headers=headers,
                          json={"parent_id": parent, "name": name, "type": type, **fields}),
              201)
    assert isinstance(body, dict)
    return body


def company_tree(kt: KnowledgeTree) -> dict[str, str]:
    """/Companies/Acme (620547) and /Companies/Beta (620548) as the sync writes them, with a
    person's notes beside Acme's generated articles, and a staff-only folder at root."""
    companies = kt.create(ROOT_ID, "Companies", "folder", by="sync")
    acme = kt.create(companies.id, "Acme Dental", "folder", by="sync", read_only=True,
                     source="codex", account_number=ACME, allow_read_only=True)
    contacts = kt.create(acme.id, "Contacts", "folder", by="sync", read_only=True,
                         source="codex", allow_read_only=True)
    jane = kt.create(contacts.id, "Jane Doe", "article", by="sync", read_only=True,
                     source="codex", content="- Email: jane@acme.test\n- Title: Office manager",
                     allow_read_only=True)
    notes = kt.create(acme.id, "Notes", "article", by="alice",
                      content="The server room key is at reception.")
    beta = kt.create(companies.id, "Beta Law", "folder", by="sync", read_only=True,
                     source="codex", account_number=BETA, allow_read_only=True)
    secret = kt.create(beta.id, "Beta passwords", "article", by="alice",
                       content="vault location for beta")
    internal = kt.create(ROOT_ID, "Internal", "folder", by="alice")
    runbook = kt.create(internal.id, "Escalation", "article", by="alice",
                        content="call the on-call engineer")
    return {"companies": companies.id, "acme": acme.id, "contacts": contacts.id,
            "jane": jane.id, "notes": notes.id, "beta": beta.id, "secret": secret.id,
            "internal": internal.id, "runbook": runbook.id}
