"""Display links: wall screens open their board without a session, and nothing else."""

from __future__ import annotations

from urllib.parse import urlsplit

import jwt
import pytest

from .conftest import Platform

pytestmark = pytest.mark.processes
JSON = {"Accept": "application/json"}


def test_a_display_link_opens_its_board_until_revoked(platform: Platform) -> None:
    admin = platform.login("alice")
    created = admin.post("/nexus/api/display-links",
                         json={"name": "Lobby TV", "path": "/beacon/display/helpdesk", "days": 30})
    assert created.status_code == 201, created.text
    link = created.json()
    url = urlsplit(link["url"])
    assert url.path == "/beacon/display/helpdesk" and url.query.startswith("display_token=")
    assert link["url"] not in admin.get("/nexus/api/display-links").text  # shown once

    screen = platform.client()
    board = screen.get(f"{url.path}?{url.query}&view=wall", headers=JSON)
    assert board.status_code == 200, board.text
    seen = {k.lower(): v for k, v in board.json()["headers"].items()}
    claims = jwt.decode(seen["authorization"].removeprefix("Bearer "),
                        options={"verify_signature": False})
    assert claims["type"] == "service" and claims["calling_service"] == "nexus"
    assert claims["aud"] == "beacon"
    assert seen["x-hivematrix-display"] == "Lobby TV"
    assert board.json()["query"] == "view=wall"  # the token stays at the gateway
    assert "hm_display" not in seen.get("cookie", "")
    cookie = board.headers["Set-Cookie"]
    assert "Path=/beacon" in cookie and "HttpOnly" in cookie

    # The display's own data comes with the cookie; other pages and services stay closed.
    assert screen.get("/beacon/api/tickets?since=1", headers=JSON).status_code == 200
    assert screen.get("/beacon/admin", headers=JSON).status_code == 401
    assert screen.get("/echo/", headers=JSON).status_code == 401

    assert admin.delete(f"/nexus/api/display-links/{link['id']}").status_code == 204
    assert screen.get("/beacon/api/tickets", headers=JSON).status_code == 401
    listed = admin.get("/nexus/api/display-links").json()["links"]
    assert [entry["revoked"] for entry in listed if entry["id"] == link["id"]] == [True]


def test_only_admins_create_links_and_only_for_display_pages(platform: Platform) -> None:
    tom = platform.login("tom")
    denied = tom.post("/nexus/api/display-links",
                      json={"name": "TV", "path": "/beacon/display/helpdesk"})
    assert denied.status_code == 403
    admin = platform.login("alice")
    wrong = admin.post("/nexus/api/display-links", json={"name": "TV", "path": "/vault/secrets"})
    assert wrong.status_code == 422 and "path" in wrong.json()["errors"]["json"]
    missing = admin.post("/nexus/api/display-links", json={"path": "/beacon/display/x"})
    assert missing.status_code == 422 and "name" in missing.text
    assert platform.client().post("/nexus/api/display-links", json={}).status_code == 401


def test_made_up_tokens_open_nothing(platform: Platform) -> None:
    screen = platform.client()
    assert screen.get("/beacon/display/helpdesk?display_token=guess",
                      headers=JSON).status_code == 401
    screen.cookies.set("hm_display", "guess")
    assert screen.get("/beacon/api/tickets", headers=JSON).status_code == 401
