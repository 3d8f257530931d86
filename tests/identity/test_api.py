"""The admin API at every permission level, with bad input named field by field."""

from __future__ import annotations

import pytest
from flask.testing import FlaskClient

from hivematrix.common.testing import TokenFactory

from .conftest import PASSWORD, AuthRequest, RelyingParty

LEVELS = [("admin", 200), ("technician", 403), ("billing", 403), ("client", 403)]


@pytest.mark.parametrize(("level", "status"), LEVELS)
def test_list_users_is_admin_only(client: FlaskClient, as_user, level: str, status: int) -> None:
    response = client.get("/api/users", headers=as_user(level))
    assert response.status_code == status
    if status == 200:
        assert [user["username"] for user in response.json] == ["admin"]
    else:
        assert response.content_type == "application/problem+json"


@pytest.mark.parametrize("caller", ["helm", "core"])
def test_service_tokens_are_refused(client: FlaskClient, tokens: TokenFactory,
                                    caller: str) -> None:
    headers = tokens.headers(tokens.service(caller, "identity"))
    assert client.get("/api/users", headers=headers).status_code == 403
    assert client.post("/api/users", headers=headers, json={"username": "x"}).status_code == 403


def test_without_token_is_401(client: FlaskClient) -> None:
    response = client.get("/api/users")
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].lower().startswith("bearer")


def test_technician_cannot_write(client: FlaskClient, as_user) -> None:
    headers = as_user("technician")
    assert client.post("/api/users", headers=headers, json={"username": "x"}).status_code == 403
    assert client.patch("/api/users/admin", headers=headers,
                        json={"enabled": False}).status_code == 403
    assert client.post("/api/users/admin/password", headers=headers,
                       json={"password": "x" * 20}).status_code == 403
    assert client.put("/api/users/admin/groups", headers=headers,
                      json={"groups": []}).status_code == 403


def test_create_show_update_and_sign_in(client: FlaskClient, as_user, rp: RelyingParty) -> None:
    headers = as_user("admin")
    created = client.post("/api/users", headers=headers, json={
        "username": "Tess", "name": "Tess Client", "email": "tess@example.test",
        "account_number": "ACME-7", "groups": ["client"], "password": PASSWORD,
        "must_change_password": False})
    assert created.status_code == 201, created.json
    body = created.json
    assert body["username"] == "tess" and body["groups"] == ["client"]
    assert body["has_password"] and not body["must_change_password"] and body["enabled"]
    assert "password_hash" not in body and body["sub"]

    shown = client.get("/api/users/TESS", headers=headers)
    assert shown.status_code == 200 and shown.json["account_number"] == "ACME-7"

    patched = client.patch("/api/users/tess", headers=headers,
                           json={"name": "Tess T.", "account_number": None})
    assert patched.status_code == 200
    assert patched.json["name"] == "Tess T." and patched.json["account_number"] is None

    tokens = rp.tokens_for("tess")
    info = rp.userinfo(tokens["access_token"]).json
    assert info["name"] == "Tess T." and "account_number" not in info


def test_created_password_is_temporary_by_default(client: FlaskClient, as_user,
                                                  rp: RelyingParty) -> None:
    client.post("/api/users", headers=as_user("admin"),
                json={"username": "uma", "password": PASSWORD})
    response = rp.sign_in(AuthRequest(), "uma", PASSWORD)
    assert response.status_code == 200 and 'name="new_password"' in response.get_data(True)


def test_duplicate_username_is_409(client: FlaskClient, as_user) -> None:
    response = client.post("/api/users", headers=as_user("admin"), json={"username": "ADMIN"})
    assert response.status_code == 409 and "already exists" in response.json["detail"]


def test_unknown_user_is_404(client: FlaskClient, as_user) -> None:
    headers = as_user("admin")
    assert client.get("/api/users/nobody", headers=headers).status_code == 404
    assert client.get("/api/users/n%00body", headers=headers).status_code == 404
    assert client.patch("/api/users/nobody", headers=headers, json={}).status_code == 404
    assert client.put("/api/users/nobody/groups", headers=headers,
                      json={"groups": []}).status_code == 404


@pytest.mark.parametrize(("body", "field"), [
    ({}, "username"),
    ({"username": ""}, "username"),
    ({"username": "has space"}, "username"),
    ({"username": "x" * 101}, "username"),
    ({"username": "ok", "email": "not-an-email"}, "email"),
    ({"username": "ok", "groups": ["wizards"]}, "groups"),
    ({"username": "ok", "groups": "admins"}, "groups"),
    ({"username": "ok", "password": "short"}, "password"),
    ({"username": "ok", "enabled": "maybe"}, "enabled"),
    ({"username": "ok", "account_number": "x" * 65}, "account_number"),
    ({"username": "ok", "name": "nul\x00byte"}, "name"),
    ({"username": "ok", "account_number": "line\nbreak"}, "account_number"),
])
def test_create_names_the_bad_field(client: FlaskClient, as_user, body: dict, field: str) -> None:
    response = client.post("/api/users", headers=as_user("admin"), json=body)
    assert response.status_code == 422, response.json
    assert response.content_type == "application/problem+json"
    assert field in response.json["errors"]["json"]
    assert f"json.{field}" in response.json["detail"]
    assert len(client.get("/api/users", headers=as_user("admin")).json) == 1


def test_password_equal_to_username_is_422_naming_password(client: FlaskClient,
                                                           as_user) -> None:
    response = client.post("/api/users", headers=as_user("admin"),
                           json={"username": "averylongname", "password": "AVeryLongName"})
    assert response.status_code == 422
    assert "password" in response.json["errors"]["json"]


@pytest.mark.parametrize(("path", "method", "body", "field"), [
    ("/api/users/admin", "patch", {"enabled": "nope"}, "enabled"),
    ("/api/users/admin", "patch", {"email": "@"}, "email"),
    ("/api/users/admin/password", "post", {}, "password"),
    ("/api/users/admin/password", "post", {"password": "x" * 11}, "password"),
    ("/api/users/admin/groups", "put", {}, "groups"),
    ("/api/users/admin/groups", "put", {"groups": ["root"]}, "groups"),
])
def test_updates_name_the_bad_field(client: FlaskClient, as_user, path: str, method: str,
                                    body: dict, field: str) -> None:
    response = getattr(client, method)(path, headers=as_user("admin"), json=body)
    assert response.status_code == 422
    assert field in response.json["errors"]["json"]


def test_disable_user_stops_sign_in_and_refresh(client: FlaskClient, as_user, rp: RelyingParty,
                                               make_user) -> None:
    make_user("vic", groups=["billing"])
    tokens = rp.tokens_for("vic")
    response = client.patch("/api/users/vic", headers=as_user("admin"), json={"enabled": False})
    assert response.status_code == 200 and response.json["enabled"] is False
    assert rp.refresh(tokens["refresh_token"]).json["error"] == "invalid_grant"
    fresh = RelyingParty(client.application.test_client(), rp.secret)
    assert fresh.sign_in(AuthRequest(), "vic").status_code == 400
    client.patch("/api/users/vic", headers=as_user("admin"), json={"enabled": True})
    assert fresh.sign_in(AuthRequest(), "vic").status_code == 302


def test_reset_password_is_temporary_and_lifts_lockout(client: FlaskClient, as_user,
                                                       rp: RelyingParty, make_user) -> None:
    make_user("walt")
    for _ in range(5):
        rp.sign_in(AuthRequest(), "walt", "wrong wrong wrong")
    assert rp.sign_in(AuthRequest(), "walt").status_code == 429
    response = client.post("/api/users/walt/password", headers=as_user("admin"),
                           json={"password": "a brand new password"})
    assert response.status_code == 204
    assert rp.sign_in(AuthRequest(), "walt").status_code == 400  # old password is gone
    changed = rp.sign_in(AuthRequest(), "walt", "a brand new password")
    assert changed.status_code == 200 and 'name="new_password"' in changed.get_data(True)
    permanent = client.post("/api/users/walt/password", headers=as_user("admin"),
                            json={"password": "another new password", "temporary": False})
    assert permanent.status_code == 204
    assert rp.sign_in(AuthRequest(), "walt", "another new password").status_code == 302


def test_set_groups_and_list_groups(client: FlaskClient, as_user, rp: RelyingParty,
                                    make_user) -> None:
    make_user("xena")
    headers = as_user("admin")
    response = client.put("/api/users/xena/groups", headers=headers,
                          json={"groups": ["technicians", "/billing"]})
    assert response.status_code == 200
    assert response.json["groups"] == ["billing", "technicians"]
    assert rp.userinfo(rp.tokens_for("xena")["access_token"]).json["groups"] == [
        "billing", "technicians"]
    groups = {g["name"]: g["members"] for g in client.get("/api/groups", headers=headers).json}
    assert groups == {"admins": 1, "billing": 1, "client": 0, "technicians": 1}


def test_the_last_admin_cannot_be_disabled_or_demoted(client: FlaskClient, as_user,
                                                      make_user) -> None:
    headers = as_user("admin")
    assert client.patch("/api/users/admin", headers=headers,
                        json={"enabled": False}).status_code == 409
    demote = client.put("/api/users/admin/groups", headers=headers, json={"groups": []})
    assert demote.status_code == 409 and "last enabled administrator" in demote.json["detail"]
    make_user("yara", groups=["admins"])
    assert client.put("/api/users/admin/groups", headers=headers,
                      json={"groups": ["technicians"]}).status_code == 200


def test_openapi_documents_the_admin_api(client: FlaskClient) -> None:
    spec = client.get("/apispec.json").json
    assert {"/api/users", "/api/users/{username}", "/api/users/{username}/password",
            "/api/users/{username}/groups"} <= set(spec["paths"])
    assert spec["paths"]["/api/users"]["get"]["security"] == [{"BearerAuth": []}]
    assert not any("/auth" in path or "/setup" in path for path in spec["paths"])
