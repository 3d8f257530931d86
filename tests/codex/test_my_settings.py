"""`/api/my/settings` (the signed-in staff member's own display settings) and the gateway's
`/api/public/user/theme` and `/home-page` (Nexus's service token only)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from flask import Flask
from flask.testing import FlaskClient

from hivematrix.codex import agents
from hivematrix.codex.models import Agent
from tests.codex.seeding import Headers, add, database, field_errors, ok

ServiceHeaders = Callable[[str], dict[str, str]]
DEFAULTS = {"theme": "system", "color_theme": "purple", "knowledge_tree_view": "grid",
            "home_page": "beacon"}


def test_defaults_and_a_row_on_first_use(codex_client: FlaskClient, codex_app: Flask,
                                         as_user: Headers) -> None:
    riley = as_user("technician", preferred_username="riley", sub="kc-riley")
    body = ok(codex_client.get("/api/my/settings", headers=riley))
    assert {name: body[name] for name in DEFAULTS} == DEFAULTS
    assert body["source"] == "codex"
    assert body["color_themes"] == ["purple", "blue", "green", "orange", "gold", "red",
                                    "yellow", "matrix", "bee"]
    assert body["knowledge_tree_views"] == ["grid", "tree", "hierarchy"]
    with database(codex_app) as session:
        [row] = session.query(Agent).all()
        assert (row.subject, row.username) == ("kc-riley", "riley")


def test_partial_updates_and_one_code_path_with_agents_me(codex_client: FlaskClient,
                                                          as_user: Headers) -> None:
    sam = as_user("admin", preferred_username="sam", sub="kc-sam")
    body = ok(codex_client.put("/api/my/settings", headers=sam, json={"color_theme": "Bee"}))
    assert (body["color_theme"], body["theme"]) == ("bee", "system")
    body = ok(codex_client.put("/api/my/settings", headers=sam,
                               json={"knowledge_tree_view": "tree", "theme": "dark",
                                     "home_page": "codex"}))
    assert {name: body[name] for name in DEFAULTS} == {
        "theme": "dark", "color_theme": "bee", "knowledge_tree_view": "tree",
        "home_page": "codex"}
    # /api/agents/me sees the same row and changes it the same way.
    me = ok(codex_client.get("/api/agents/me", headers=sam))
    assert (me["color_theme"], me["knowledge_tree_view"]) == ("bee", "tree")
    ok(codex_client.patch("/api/agents/me", headers=sam,
                          json={"color_theme": "matrix", "knowledge_tree_view": "hierarchy"}))
    again = ok(codex_client.get("/api/my/settings", headers=sam))
    assert (again["color_theme"], again["knowledge_tree_view"]) == ("matrix", "hierarchy")
    assert "knowledge_tree_view" in field_errors(codex_client.patch(
        "/api/agents/me", headers=sam, json={"knowledge_tree_view": "list"}))
    # Someone else's row is untouched.
    bea = ok(codex_client.get("/api/my/settings", headers=as_user(
        "billing", preferred_username="bea", sub="kc-bea")))
    assert {name: bea[name] for name in DEFAULTS} == DEFAULTS


@pytest.mark.parametrize(("field", "value"), [
    ("theme", "neon"), ("color_theme", "pink"), ("color_theme", 7),
    ("knowledge_tree_view", "list"), ("knowledge_tree_view", ""), ("home_page", "minesweeper"),
    ("username", "someone-else")])
def test_each_field_is_checked_and_named(codex_client: FlaskClient, as_user: Headers,
                                         field: str, value: object) -> None:
    me = as_user("technician", preferred_username="tess", sub="kc-tess")
    response = codex_client.put("/api/my/settings", headers=me,
                                json={"color_theme": "gold", field: value})
    assert response.mimetype == "application/problem+json"
    assert field in field_errors(response)
    # Nothing of the refused request was saved, not even its valid field.
    assert ok(codex_client.get("/api/my/settings", headers=me))["color_theme"] == "purple"


def test_only_staff_users_have_settings(codex_client: FlaskClient, as_user: Headers,
                                        as_service: ServiceHeaders) -> None:
    for level in ("admin", "technician", "billing"):
        ok(codex_client.get("/api/my/settings", headers=as_user(level)))
        ok(codex_client.put("/api/my/settings", json={"color_theme": "red"},
                            headers=as_user(level)))
    for headers in (as_user("client", account_number="620547"), as_service("nexus"),
                    as_service("knowledgetree"), as_service("core")):
        assert codex_client.get("/api/my/settings", headers=headers).status_code == 403
        assert codex_client.put("/api/my/settings", json={"theme": "dark"},
                                headers=headers).status_code == 403
    assert codex_client.get("/api/my/settings").status_code == 401
    assert codex_client.put("/api/my/settings", json={"theme": "dark"}).status_code == 401


# -- the gateway's reads ----------------------------------------------------------------------


def test_gateway_reads_a_known_user(codex_client: FlaskClient, codex_app: Flask,
                                    as_service: ServiceHeaders) -> None:
    add(codex_app, Agent(subject="kc-riley", username="riley", email="Riley@MSP.example",
                         theme="dark", color_theme="matrix", home_page="ledger"))
    nexus = as_service("nexus")
    for query in ("username=riley", "sub=kc-riley", "email=riley@msp.example"):
        theme = ok(codex_client.get(f"/api/public/user/theme?{query}", headers=nexus))
        assert (theme["theme"], theme["color_theme"], theme["source"]) == (
            "dark", "matrix", "codex"), query
        assert "home_page" not in theme
        home = ok(codex_client.get(f"/api/public/user/home-page?{query}", headers=nexus))
        assert (home["home_page"], home["source"]) == ("ledger", "codex"), query
    assert ok(codex_client.get("/api/public/user/theme?username=riley",
                               headers=nexus))["username"] == "riley"


def test_gateway_gets_defaults_for_someone_unknown(codex_client: FlaskClient, codex_app: Flask,
                                                  as_service: ServiceHeaders) -> None:
    # Two rows share an address: the address names nobody rather than the wrong person.
    add(codex_app, Agent(subject="kc-a", username="a", email="desk@msp.example", theme="dark"))
    add(codex_app, Agent(subject="kc-b", username="b", email="desk@msp.example", theme="light"))
    nexus = as_service("nexus")
    for query in ("username=nobody", "email=desk@msp.example", "sub=kc-nobody"):
        theme = ok(codex_client.get(f"/api/public/user/theme?{query}", headers=nexus))
        assert (theme["theme"], theme["color_theme"], theme["source"]) == (
            agents.DEFAULT_THEME, "purple", "default"), query
        home = ok(codex_client.get(f"/api/public/user/home-page?{query}", headers=nexus))
        assert (home["home_page"], home["source"]) == ("beacon", "default")
    with database(codex_app) as session:
        assert session.query(Agent).count() == 2  # a read creates nothing


@pytest.mark.parametrize("query", ["", "username=", "username=a&email=a@b.example",
                                   "username=" + "x" * 256])
def test_gateway_must_name_one_user(codex_client: FlaskClient, as_service: ServiceHeaders,
                                    query: str) -> None:
    for path in ("/api/public/user/theme", "/api/public/user/home-page"):
        response = codex_client.get(f"{path}?{query}", headers=as_service("nexus"))
        assert response.status_code == 400, (path, query)
        assert response.mimetype == "application/problem+json"
        assert "username" in response.get_json()["errors"]["query"]


def test_only_nexus_reads_other_users(codex_client: FlaskClient, codex_app: Flask,
                                      as_user: Headers, as_service: ServiceHeaders) -> None:
    add(codex_app, Agent(subject="kc-riley", username="riley", theme="dark"))
    for path in ("/api/public/user/theme?username=riley",
                 "/api/public/user/home-page?username=riley"):
        ok(codex_client.get(path, headers=as_service("nexus")))
        # Upstream let any token read anyone's preferences; here users (admins included)
        # and every other service are refused.
        for headers in (as_user("admin"), as_user("technician", preferred_username="riley",
                                                  sub="kc-riley"),
                        as_user("client", account_number="620547"), as_service("core"),
                        as_service("beacon"), as_service("knowledgetree")):
            response = codex_client.get(path, headers=headers)
            assert response.status_code == 403, (path, response.status_code)
            assert "dark" not in response.get_data(as_text=True)
        assert codex_client.get(path).status_code == 401


# -- the settings page ------------------------------------------------------------------------


def test_settings_page_offers_colour_and_knowledge_tree_view(
        codex_client: FlaskClient, codex_app: Flask, as_user: Headers) -> None:
    from tests.codex.test_pages import page, post

    me = as_user("technician", sub="kc-page", preferred_username="pat")
    html = page(codex_client, me, "/settings")
    assert '<option value="purple" selected>' in html
    assert '<option value="grid" selected>' in html
    saved = post(codex_client, me, "/settings", {
        "theme": "light", "color_theme": "bee", "knowledge_tree_view": "hierarchy",
        "home_page": "codex"}, "/settings")
    assert saved.status_code == 303
    html = page(codex_client, me, saved.headers["Location"])
    assert '<option value="bee" selected>' in html
    assert '<option value="hierarchy" selected>' in html
    bad = post(codex_client, me, "/settings", {
        "theme": "light", "color_theme": "pink", "knowledge_tree_view": "tree",
        "home_page": "codex"}, "/settings")
    assert bad.status_code == 422
    text = bad.get_data(as_text=True)
    assert 'id="color_theme-error"' in text and "color_theme must be one of" in text
    assert '<option value="tree" selected>' in text  # what was sent is shown again
    with database(codex_app) as session:
        row = session.query(Agent).filter_by(subject="kc-page").one()
        assert (row.color_theme, row.knowledge_tree_view) == ("bee", "hierarchy")
    # Without the page's CSRF token nothing is saved.
    forged = codex_client.post("/settings", headers={"Accept": "text/html", **me},
                               data={"color_theme": "red", "csrf_token": "forged"})
    assert forged.status_code == 400
    with database(codex_app) as session:
        assert session.query(Agent).filter_by(subject="kc-page").one().color_theme == "bee"
