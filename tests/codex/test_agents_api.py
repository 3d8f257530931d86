"""`/api/agents/me`: created on first call, own row only, preferences validated."""

from __future__ import annotations

from collections.abc import Callable

from flask import Flask
from flask.testing import FlaskClient

from hivematrix.codex.agents import home_pages
from hivematrix.codex.models import Agent
from tests.codex.seeding import Headers, add, database, field_errors, ok


def test_created_on_first_call_and_kept_in_step(codex_client: FlaskClient, codex_app: Flask,
                                                as_user: Headers) -> None:
    riley = as_user("technician", preferred_username="riley", sub="kc-riley",
                    email="riley@msp.example", name="Riley Ng")
    body = ok(codex_client.get("/api/agents/me", headers=riley))
    assert (body["username"], body["email"], body["name"]) == (
        "riley", "riley@msp.example", "Riley Ng")
    assert (body["theme"], body["home_page"]) == ("system", "beacon")
    assert body["themes"] == ["light", "dark", "system"]
    assert {"beacon", "codex", "helm", "ledger"} <= set(body["home_pages"])
    again = ok(codex_client.get("/api/agents/me", headers=as_user(
        "technician", preferred_username="riley", sub="kc-riley", email="riley.ng@msp.example",
        name="Riley Ng")))
    assert again["id"] == body["id"] and again["email"] == "riley.ng@msp.example"
    with database(codex_app) as session:
        assert session.query(Agent).count() == 1


def test_preferences(codex_client: FlaskClient, as_user: Headers) -> None:
    sam = as_user("admin", preferred_username="sam", sub="kc-sam")
    body = ok(codex_client.patch("/api/agents/me", headers=sam,
                                 json={"theme": "dark", "home_page": "Codex"}))
    assert (body["theme"], body["home_page"]) == ("dark", "codex")
    assert ok(codex_client.get("/api/agents/me", headers=sam))["theme"] == "dark"
    assert "theme" in field_errors(codex_client.patch("/api/agents/me", headers=sam,
                                                      json={"theme": "neon"}))
    assert "home_page" in field_errors(codex_client.patch("/api/agents/me", headers=sam,
                                                          json={"home_page": "minesweeper"}))
    assert "name" in field_errors(codex_client.patch("/api/agents/me", headers=sam,
                                                     json={"name": "Someone else"}))
    assert ok(codex_client.get("/api/agents/me", headers=sam))["home_page"] == "codex"
    # Each user changes only their own row.
    other = ok(codex_client.get("/api/agents/me", headers=as_user(
        "billing", preferred_username="bea", sub="kc-bea")))
    assert (other["username"], other["theme"]) == ("bea", "system")


def test_a_user_name_held_by_another_account(codex_client: FlaskClient, codex_app: Flask,
                                            as_user: Headers) -> None:
    add(codex_app, Agent(subject="kc-old-riley", username="riley", theme="dark"))
    response = codex_client.get("/api/agents/me", headers=as_user(
        "technician", preferred_username="riley", sub="kc-new-riley"))
    assert response.status_code == 409 and "riley" in response.get_json()["detail"]
    with database(codex_app) as session:
        assert [row.subject for row in session.query(Agent)] == ["kc-old-riley"]


def test_who_may_call(codex_client: FlaskClient, as_user: Headers,
                      as_service: Callable[[str], dict[str, str]]) -> None:
    for level in ("admin", "technician", "billing"):
        ok(codex_client.get("/api/agents/me", headers=as_user(level)))
        ok(codex_client.patch("/api/agents/me", json={"theme": "light"},
                              headers=as_user(level)))
    customer = as_user("client", account_number="620547")
    for headers in (customer, as_service("nexus"), as_service("brainhair"),
                    as_service("core")):
        assert codex_client.get("/api/agents/me", headers=headers).status_code == 403
        assert codex_client.patch("/api/agents/me", json={"theme": "dark"},
                                  headers=headers).status_code == 403
    assert codex_client.get("/api/agents/me").status_code == 401
    assert codex_client.patch("/api/agents/me", json={"theme": "dark"}).status_code == 401


def test_home_pages_include_installed_services() -> None:
    pages = home_pages(["codex", "reports"])
    assert pages[:7] == ("beacon", "knowledgetree", "brainhair", "codex", "ledger", "archive",
                         "helm")
    assert pages[7:] == ("reports",)


def test_openapi_documents_these_routes(codex_client: FlaskClient) -> None:
    spec = ok(codex_client.get("/apispec.json"))
    prefixes = ("/api/contacts", "/api/locations", "/api/assets", "/api/network",
                "/api/tickets/{", "/api/psa", "/api/agents")
    extra = {"/api/tickets", "/api/companies/{account_number}/topology",
             "/api/companies/{account_number}/network_equipment"}
    seen = 0
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            if not (path.startswith(prefixes) or path in extra or (
                    method, path) == ("post", "/api/companies/{account_number}/locations")):
                continue
            seen += 1
            assert operation.get("summary") and operation.get("description"), (method, path)
            assert operation.get("security"), (method, path)
    assert seen == 35  # with the three RMM routes under /api/assets
