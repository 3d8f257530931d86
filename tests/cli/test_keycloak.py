"""`hivematrix keycloak configure` against a contract fake of Keycloak's admin REST API (v26).

The fake implements the documented request and response shapes (vendor-apis.md section 4) of
the calls python-keycloak makes: 201 + ``Location`` with an empty body on creates, 409
``{"errorMessage"}`` on duplicates, 404 ``{"error", "error_description"}``, arrays for queries,
``{type, value}`` client secrets, and a password-grant token endpoint for ``admin-cli``.
"""

from __future__ import annotations

import json
import re
import secrets
import stat
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from flask import Flask, Response, request
from werkzeug.serving import make_server

from hivematrix.cli import main
from hivematrix.cli.keycloak import KeycloakSettings, KeycloakSetupError, configure, connect
from hivematrix.common.testing import free_port, serve_wsgi

ADMIN_USER = "admin"
ADMIN_PASSWORD = "kc-master-secret"
CREATION_PATH = re.compile(
    r"^/admin/realms(/[^/]+/(clients(/[^/]+/protocol-mappers/models)?|groups|users))?$")


def _not_found(what: str) -> tuple[dict[str, str], int]:
    return {"error": what,
            "error_description": "For more on this error consult the server log."}, 404


def _conflict(message: str) -> tuple[dict[str, str], int]:
    return {"errorMessage": message}, 409


def _created(location: str) -> Response:
    response = Response(status=201)
    response.headers["Location"] = location
    return response


def _no_content() -> Response:
    return Response(status=204)


def _default_profile() -> dict[str, Any]:
    """A v26 realm's user profile: no unmanagedAttributePolicy key, so it is disabled."""
    return {"attributes": [{"name": name, "displayName": f"${{{name}}}", "validations": {},
                            "permissions": {"view": ["admin", "user"], "edit": ["admin", "user"]},
                            "multivalued": False}
                           for name in ("username", "email", "firstName", "lastName")],
            "groups": [{"name": "user-metadata", "displayHeader": "User metadata"}]}


@dataclass
class FakeRealm:
    representation: dict[str, Any]
    clients: dict[str, dict[str, Any]] = field(default_factory=dict)
    secrets: dict[str, str] = field(default_factory=dict)
    mappers: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    groups: dict[str, dict[str, Any]] = field(default_factory=dict)
    users: dict[str, dict[str, Any]] = field(default_factory=dict)
    passwords: dict[str, dict[str, Any]] = field(default_factory=dict)
    memberships: dict[str, set[str]] = field(default_factory=dict)
    profile: dict[str, Any] = field(default_factory=_default_profile)

    def declared(self, attribute: str) -> bool:
        return (self.profile.get("unmanagedAttributePolicy") is not None
                or any(item["name"] == attribute for item in self.profile["attributes"]))


@dataclass
class FakeKeycloak:
    """Keycloak's token endpoint and the admin resources ``configure`` uses."""

    admin_user: str = ADMIN_USER
    admin_password: str = ADMIN_PASSWORD
    url: str = ""
    realms: dict[str, FakeRealm] = field(default_factory=dict)
    tokens: set[str] = field(default_factory=set)
    refresh_tokens: set[str] = field(default_factory=set)
    seen: list[tuple[str, str]] = field(default_factory=list)
    #: Answer admin calls with 403, as for a master user without the admin role.
    forbidden: bool = False

    def __post_init__(self) -> None:
        self.realms["master"] = FakeRealm({"id": "master", "realm": "master", "enabled": True})

    # --- what tests look at ----------------------------------------------------------------

    def creations(self) -> list[tuple[str, str]]:
        """POSTs that create a realm, client, mapper, group or user."""
        return [(method, path) for method, path in self.seen
                if method == "POST" and CREATION_PATH.match(path)]

    def writes(self) -> list[tuple[str, str]]:
        return [(method, path) for method, path in self.seen
                if method in {"POST", "PUT", "DELETE"} and path.startswith("/admin/")]

    def client(self, realm: str, client_id: str) -> dict[str, Any]:
        return next(client for client in self.realms[realm].clients.values()
                    if client["clientId"] == client_id)

    def user(self, realm: str, username: str) -> dict[str, Any]:
        return next(user for user in self.realms[realm].users.values()
                    if user["username"] == username)

    def group_names_of(self, realm: str, user_id: str) -> set[str]:
        state = self.realms[realm]
        return {state.groups[gid]["name"] for gid in state.memberships.get(user_id, set())}

    # --- the WSGI app ----------------------------------------------------------------------

    def _token_response(self) -> dict[str, Any]:
        access, refresh = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
        self.tokens.add(access)
        self.refresh_tokens.add(refresh)
        return {"access_token": access, "expires_in": 60, "refresh_expires_in": 1800,
                "refresh_token": refresh, "token_type": "Bearer", "not-before-policy": 0,
                "session_state": str(uuid.uuid4()), "scope": "profile email"}

    def _realm(self, name: str) -> FakeRealm | None:
        return self.realms.get(name)

    def wsgi(self) -> Flask:  # noqa: C901 - one route per documented endpoint
        app = Flask("fake_keycloak")

        @app.before_request
        def check_bearer() -> Any:
            self.seen.append((request.method, request.path))
            if not request.path.startswith("/admin/"):
                return None
            scheme, _, token = request.headers.get("Authorization", "").partition(" ")
            if scheme != "Bearer" or token not in self.tokens:
                return {"error": "HTTP 401 Unauthorized"}, 401
            if self.forbidden:
                return {"error": "HTTP 403 Forbidden"}, 403
            realm = request.view_args.get("realm") if request.view_args else None
            if realm is not None and realm not in self.realms:
                return _not_found("Realm not found.")
            return None

        @app.post("/realms/master/protocol/openid-connect/token")
        def token() -> Any:
            form = request.form
            if form.get("client_id") != "admin-cli":
                return {"error": "invalid_client", "error_description": "Invalid client"}, 401
            grant = form.get("grant_type")
            if grant == "password":
                if (form.get("username"), form.get("password")) != (self.admin_user,
                                                                    self.admin_password):
                    return {"error": "invalid_grant",
                            "error_description": "Invalid user credentials"}, 401
                return self._token_response()
            if grant == "refresh_token" and form.get("refresh_token") in self.refresh_tokens:
                return self._token_response()
            # A refresh token whose session has ended.
            return {"error": "invalid_grant", "error_description": "Session not active"}, 400

        # realms

        @app.post("/admin/realms")
        def create_realm() -> Any:
            body = request.get_json()
            name = body.get("realm")
            if not name:
                return {"errorMessage": "Realm name cannot be empty"}, 400
            if name in self.realms:
                return _conflict("Conflict detected. See logs for details")
            self.realms[name] = FakeRealm({"id": str(uuid.uuid4()), "enabled": False, **body})
            return _created(f"{request.host_url}admin/realms/{name}")

        @app.get("/admin/realms/<realm>")
        def get_realm(realm: str) -> Any:
            return self.realms[realm].representation

        @app.put("/admin/realms/<realm>")
        def update_realm(realm: str) -> Any:
            self.realms[realm].representation.update(request.get_json())
            return _no_content()

        # clients

        @app.get("/admin/realms/<realm>/clients")
        def list_clients(realm: str) -> Any:
            clients = list(self.realms[realm].clients.values())
            wanted = request.args.get("clientId")
            if wanted is not None:
                clients = [client for client in clients if client["clientId"] == wanted]
            return clients

        @app.post("/admin/realms/<realm>/clients")
        def create_client(realm: str) -> Any:
            state, body = self.realms[realm], request.get_json()
            if any(c["clientId"] == body["clientId"] for c in state.clients.values()):
                return _conflict(f"Client {body['clientId']} already exists")
            client_uuid = str(uuid.uuid4())
            body.pop("secret", None)
            state.secrets[client_uuid] = secrets.token_urlsafe(24)
            state.clients[client_uuid] = {"id": client_uuid, "attributes": {}, **body}
            state.mappers[client_uuid] = []
            return _created(f"{request.host_url}admin/realms/{realm}/clients/{client_uuid}")

        @app.get("/admin/realms/<realm>/clients/<cid>")
        def get_client(realm: str, cid: str) -> Any:
            client = self.realms[realm].clients.get(cid)
            return client if client else _not_found("Could not find client")

        @app.put("/admin/realms/<realm>/clients/<cid>")
        def update_client(realm: str, cid: str) -> Any:
            client = self.realms[realm].clients.get(cid)
            if client is None:
                return _not_found("Could not find client")
            client.update(request.get_json())
            return _no_content()

        @app.route("/admin/realms/<realm>/clients/<cid>/client-secret", methods=["GET", "POST"])
        def client_secret(realm: str, cid: str) -> Any:
            state = self.realms[realm]
            if cid not in state.clients:
                return _not_found("Could not find client")
            if request.method == "POST":
                state.secrets[cid] = secrets.token_urlsafe(24)
            return {"type": "secret", "value": state.secrets[cid]}

        @app.route("/admin/realms/<realm>/clients/<cid>/protocol-mappers/models",
                   methods=["GET", "POST"])
        def mappers(realm: str, cid: str) -> Any:
            state = self.realms[realm]
            if cid not in state.clients:
                return _not_found("Could not find client")
            if request.method == "GET":
                return state.mappers[cid]
            body = request.get_json()
            if any(m["name"] == body["name"] for m in state.mappers[cid]):
                return _conflict("Protocol mapper exists with same name")
            mapper_id = str(uuid.uuid4())
            state.mappers[cid].append({**body, "id": mapper_id})
            return _created(f"{request.base_url}/{mapper_id}")

        @app.put("/admin/realms/<realm>/clients/<cid>/protocol-mappers/models/<mid>")
        def update_mapper(realm: str, cid: str, mid: str) -> Any:
            for mapper in self.realms[realm].mappers.get(cid, []):
                if mapper["id"] == mid:
                    mapper.update(request.get_json())
                    return _no_content()
            return _not_found("Model not found")

        # groups

        @app.get("/admin/realms/<realm>/groups")
        def list_groups(realm: str) -> Any:
            groups = list(self.realms[realm].groups.values())
            search = request.args.get("search")
            if search is not None:
                if request.args.get("exact", "").lower() == "true":
                    groups = [g for g in groups if g["name"] == search]
                else:
                    groups = [g for g in groups if search.lower() in g["name"].lower()]
            first = int(request.args.get("first", 0))
            count = int(request.args.get("max", 100))
            return groups[first:first + count]

        @app.post("/admin/realms/<realm>/groups")
        def create_group(realm: str) -> Any:
            state, name = self.realms[realm], request.get_json()["name"]
            if any(group["name"] == name for group in state.groups.values()):
                return _conflict(f"Top level group named '{name}' already exists.")
            group_id = str(uuid.uuid4())
            state.groups[group_id] = {"id": group_id, "name": name, "path": f"/{name}",
                                      "subGroupCount": 0, "subGroups": [], "attributes": {},
                                      "realmRoles": [], "clientRoles": {}}
            return _created(f"{request.host_url}admin/realms/{realm}/groups/{group_id}")

        # users

        @app.route("/admin/realms/<realm>/users/profile", methods=["GET", "PUT"])
        def user_profile(realm: str) -> Any:
            state = self.realms[realm]
            if request.method == "PUT":
                state.profile = request.get_json()
            return state.profile

        @app.get("/admin/realms/<realm>/users")
        def list_users(realm: str) -> Any:
            users = list(self.realms[realm].users.values())
            username = request.args.get("username")
            if username is not None:
                if request.args.get("exact", "").lower() == "true":
                    users = [u for u in users if u["username"] == username.lower()]
                else:
                    users = [u for u in users if username.lower() in u["username"]]
            first = int(request.args.get("first", 0))
            count = int(request.args.get("max", 100))
            return users[first:first + count]

        @app.post("/admin/realms/<realm>/users")
        def create_user(realm: str) -> Any:
            state, body = self.realms[realm], request.get_json()
            username = body["username"].lower()
            if any(user["username"] == username for user in state.users.values()):
                return _conflict("User exists with same username")
            user_id = str(uuid.uuid4())
            attributes = {key: value for key, value in (body.get("attributes") or {}).items()
                          if state.declared(key)}  # v24+: undeclared attributes are dropped
            state.users[user_id] = {
                "id": user_id, "username": username, "enabled": body.get("enabled", False),
                "emailVerified": body.get("emailVerified", False), "attributes": attributes,
                "requiredActions": list(body.get("requiredActions") or []),
                "createdTimestamp": 0}
            return _created(f"{request.host_url}admin/realms/{realm}/users/{user_id}")

        @app.get("/admin/realms/<realm>/users/<uid>")
        def get_user(realm: str, uid: str) -> Any:
            user = self.realms[realm].users.get(uid)
            return user if user else _not_found("User not found")

        @app.put("/admin/realms/<realm>/users/<uid>/reset-password")
        def reset_password(realm: str, uid: str) -> Any:
            state, body = self.realms[realm], request.get_json()
            if uid not in state.users:
                return _not_found("User not found")
            if body.get("type") != "password" or not body.get("value"):
                return {"error": "invalidPasswordMinLengthMessage"}, 400
            state.passwords[uid] = body
            actions = state.users[uid]["requiredActions"]
            if body.get("temporary") and "UPDATE_PASSWORD" not in actions:
                actions.append("UPDATE_PASSWORD")
            return _no_content()

        @app.get("/admin/realms/<realm>/users/<uid>/groups")
        def user_groups(realm: str, uid: str) -> Any:
            state = self.realms[realm]
            if uid not in state.users:
                return _not_found("User not found")
            groups = [state.groups[gid] for gid in sorted(state.memberships.get(uid, set()))]
            first = int(request.args.get("first", 0))
            count = int(request.args.get("max", 100))
            return [{"id": g["id"], "name": g["name"], "path": g["path"]}
                    for g in groups][first:first + count]

        @app.put("/admin/realms/<realm>/users/<uid>/groups/<gid>")
        def join_group(realm: str, uid: str, gid: str) -> Any:
            state = self.realms[realm]
            if uid not in state.users:
                return _not_found("User not found")
            if gid not in state.groups:
                return _not_found("Group not found")
            state.memberships.setdefault(uid, set()).add(gid)
            return _no_content()

        return app


@pytest.fixture
def fake_keycloak() -> Iterator[FakeKeycloak]:
    keycloak = FakeKeycloak()
    with serve_wsgi(keycloak.wsgi()) as url:
        keycloak.url = url
        yield keycloak


@pytest.fixture
def tls_keycloak() -> Iterator[FakeKeycloak]:
    """The fake over HTTPS with a self-signed certificate."""
    keycloak = FakeKeycloak()
    server = make_server("127.0.0.1", 0, keycloak.wsgi(), threaded=True, ssl_context="adhoc")
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    keycloak.url = f"https://127.0.0.1:{server.server_port}"
    try:
        yield keycloak
    finally:
        server.shutdown()
        thread.join(5)
        server.server_close()


@pytest.fixture(autouse=True)
def _no_admin_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KEYCLOAK_ADMIN", raising=False)
    monkeypatch.delenv("KEYCLOAK_ADMIN_PASSWORD", raising=False)


def run_configure(url: str, *args: str, password: str | None = ADMIN_PASSWORD,
                  input_: str | None = None) -> Result:
    argv = ["keycloak", "configure", "--server-url", url, *args]
    if password is not None:
        argv += ["--admin-password", password]
    return CliRunner().invoke(main, argv, input=input_)


def master_config(home: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((home / "configs" / "master_config.json").read_text())
    return data


def printed_password(output: str) -> str:
    match = re.search(r"one-time password of admin: (\S+)", output)
    assert match, output
    return match.group(1)


def test_first_run_creates_everything_and_writes_master_config(
        hm_home: Path, fake_keycloak: FakeKeycloak) -> None:
    config_file = hm_home / "configs" / "master_config.json"
    config_file.parent.mkdir(parents=True)
    config_file.write_text(json.dumps({"system": {"hostname": "localhost"},
                                       "keycloak": {"admin_username": "admin"}}))

    result = run_configure(fake_keycloak.url)
    assert result.exit_code == 0, result.output

    realm = fake_keycloak.realms["hivematrix"]
    assert realm.representation["enabled"] is True
    client = fake_keycloak.client("hivematrix", "core-client")
    assert client["publicClient"] is False and client["standardFlowEnabled"] is True
    assert client["attributes"]["pkce.code.challenge.method"] == "S256"
    assert client["redirectUris"] == ["https://localhost/keycloak-callback",
                                      "http://127.0.0.1:8000/keycloak-callback"]
    assert client["attributes"]["post.logout.redirect.uris"].split("##") == [
        "https://localhost/*", "http://127.0.0.1:8000/*"]
    assert sorted(g["name"] for g in realm.groups.values()) == [
        "admins", "billing", "client", "technicians"]

    mappers = {m["name"]: m for m in realm.mappers[client["id"]]}
    groups_mapper = mappers["groups"]
    assert groups_mapper["protocolMapper"] == "oidc-group-membership-mapper"
    assert groups_mapper["config"]["claim.name"] == "groups"
    assert groups_mapper["config"]["full.path"] == "false"
    for claim in ("userinfo.token.claim", "id.token.claim", "access.token.claim"):
        assert groups_mapper["config"][claim] == "true"
    account = mappers["account_number"]
    assert account["protocolMapper"] == "oidc-usermodel-attribute-mapper"
    assert account["config"]["user.attribute"] == account["config"]["claim.name"] == (
        "account_number")
    for mapper in mappers.values():  # Keycloak's mapper config is a map of strings
        assert all(isinstance(value, str) for value in mapper["config"].values())
    assert realm.declared("account_number")

    user = fake_keycloak.user("hivematrix", "admin")
    assert user["enabled"] is True
    assert "UPDATE_PASSWORD" in user["requiredActions"]
    assert fake_keycloak.group_names_of("hivematrix", user["id"]) == {"admins"}
    credential = realm.passwords[user["id"]]
    assert credential["temporary"] is True
    assert credential["value"] != "admin" and len(credential["value"]) >= 16
    assert printed_password(result.output) == credential["value"]

    document = master_config(hm_home)
    assert document["system"] == {"hostname": "localhost"}
    assert document["keycloak"] == {
        "admin_username": "admin", "url": fake_keycloak.url, "realm": "hivematrix",
        "client_id": "core-client", "client_secret": realm.secrets[client["id"]],
        "issuer": f"{fake_keycloak.url}/realms/hivematrix"}
    assert stat.S_IMODE(config_file.stat().st_mode) == 0o600
    assert ADMIN_PASSWORD not in config_file.read_text()


def test_second_run_creates_nothing_and_keeps_the_secret(
        hm_home: Path, fake_keycloak: FakeKeycloak) -> None:
    first = run_configure(fake_keycloak.url)
    assert first.exit_code == 0, first.output
    password = printed_password(first.output)
    secret = master_config(hm_home)["keycloak"]["client_secret"]
    writes_before = len(fake_keycloak.writes())

    fake_keycloak.seen.clear()
    second = run_configure(fake_keycloak.url)
    assert second.exit_code == 0, second.output
    assert fake_keycloak.creations() == []
    assert fake_keycloak.writes() == [], "an idempotent run changes nothing"
    assert writes_before > 0
    assert "one-time password" not in second.output
    assert "already configured" in second.output
    assert master_config(hm_home)["keycloak"]["client_secret"] == secret
    realm = fake_keycloak.realms["hivematrix"]
    assert realm.passwords[fake_keycloak.user("hivematrix", "admin")["id"]]["value"] == password
    assert len(realm.groups) == 4 and len(realm.clients) == 1 and len(realm.users) == 1


def test_existing_setup_is_completed_not_replaced(
        hm_home: Path, fake_keycloak: FakeKeycloak) -> None:
    """A disabled realm, a client without PKCE and an admin outside `admins` get fixed."""
    admin = connect(fake_keycloak.url, ADMIN_USER, ADMIN_PASSWORD)
    admin.create_realm({"realm": "hivematrix", "enabled": False})
    admin.change_current_realm("hivematrix")
    client_uuid = admin.create_client({"clientId": "core-client", "publicClient": False,
                                       "standardFlowEnabled": True,
                                       "redirectUris": ["https://hm.example.test/keycloak-callback"]})
    admin.create_group({"name": "admins"})
    user_id = admin.create_user({"username": "admin", "enabled": True})
    admin.set_user_password(user_id, "operator-chosen", temporary=False)
    secret = admin.get_client_secrets(client_uuid)["value"]

    result = run_configure(fake_keycloak.url)
    assert result.exit_code == 0, result.output

    realm = fake_keycloak.realms["hivematrix"]
    assert realm.representation["enabled"] is True
    client = realm.clients[client_uuid]
    assert client["attributes"]["pkce.code.challenge.method"] == "S256"
    assert client["redirectUris"] == ["https://hm.example.test/keycloak-callback",
                                      "https://localhost/keycloak-callback",
                                      "http://127.0.0.1:8000/keycloak-callback"]
    assert len(realm.clients) == 1 and len(realm.groups) == 4
    assert fake_keycloak.group_names_of("hivematrix", user_id) == {"admins"}
    assert realm.passwords[user_id]["value"] == "operator-chosen"  # never reset
    assert "one-time password" not in result.output
    assert master_config(hm_home)["keycloak"]["client_secret"] == secret


def test_options_choose_realm_uris_and_admin(hm_home: Path, fake_keycloak: FakeKeycloak) -> None:
    result = run_configure(
        fake_keycloak.url + "/", "--realm", "msp", "--realm-admin", "Boss",
        "--redirect-uri", "https://hm.example.test/keycloak-callback",
        "--post-logout-redirect-uri", "https://hm.example.test/",
        "--post-logout-redirect-uri", "https://hm.example.test/login")
    assert result.exit_code == 0, result.output
    client = fake_keycloak.client("msp", "core-client")
    assert client["redirectUris"] == ["https://hm.example.test/keycloak-callback"]
    assert client["attributes"]["post.logout.redirect.uris"] == (
        "https://hm.example.test/##https://hm.example.test/login")
    user = fake_keycloak.user("msp", "boss")
    assert fake_keycloak.group_names_of("msp", user["id"]) == {"admins"}
    assert "hivematrix" not in fake_keycloak.realms
    assert master_config(hm_home)["keycloak"]["realm"] == "msp"


def test_password_from_environment_or_hidden_prompt(
        hm_home: Path, fake_keycloak: FakeKeycloak, monkeypatch: pytest.MonkeyPatch) -> None:
    prompted = run_configure(fake_keycloak.url, password=None, input_=ADMIN_PASSWORD + "\n")
    assert prompted.exit_code == 0, prompted.output
    assert "Admin password" in prompted.output
    assert ADMIN_PASSWORD not in prompted.output  # hidden input is not echoed

    monkeypatch.setenv("KEYCLOAK_ADMIN_PASSWORD", ADMIN_PASSWORD)
    from_env = run_configure(fake_keycloak.url, password=None, input_="")
    assert from_env.exit_code == 0, from_env.output
    assert "Admin password" not in from_env.output


def test_wrong_admin_password_fails_clearly(hm_home: Path, fake_keycloak: FakeKeycloak) -> None:
    result = run_configure(fake_keycloak.url, password="wrong")
    assert result.exit_code != 0
    assert "rejected the admin credentials" in result.output
    assert "Invalid user credentials" in result.output
    assert "Traceback" not in result.output
    assert "hivematrix" not in fake_keycloak.realms
    assert not (hm_home / "configs" / "master_config.json").exists()


def test_unreachable_server_fails_clearly(hm_home: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    result = run_configure(url)
    assert result.exit_code != 0
    assert f"cannot reach Keycloak at {url}" in result.output
    assert "Traceback" not in result.output
    assert not (hm_home / "configs" / "master_config.json").exists()


def test_admin_without_rights_fails_clearly(hm_home: Path, fake_keycloak: FakeKeycloak) -> None:
    fake_keycloak.forbidden = True
    result = run_configure(fake_keycloak.url)
    assert result.exit_code != 0
    assert "refused a request (HTTP 403)" in result.output
    assert "'admin' role" in result.output
    assert not (hm_home / "configs" / "master_config.json").exists()


def test_session_ended_and_password_changed_meanwhile(fake_keycloak: FakeKeycloak) -> None:
    """The admin session ends mid-run and the password no longer works: a clear error."""
    admin = connect(fake_keycloak.url, ADMIN_USER, ADMIN_PASSWORD)
    fake_keycloak.tokens.clear()
    fake_keycloak.refresh_tokens.clear()
    fake_keycloak.admin_password = "changed"

    with pytest.raises(KeycloakSetupError, match="rejected the admin credentials"):
        configure(admin, KeycloakSettings(server_url=fake_keycloak.url))


def test_configure_function_returns_what_it_did(fake_keycloak: FakeKeycloak) -> None:
    admin = connect(fake_keycloak.url, ADMIN_USER, ADMIN_PASSWORD, verify=False)
    assert admin.connection.verify is False
    settings = KeycloakSettings(server_url=fake_keycloak.url)
    first = configure(admin, settings)
    assert first.created == ["realm hivematrix", "client core-client", "mapper groups",
                             "mapper account_number", "group admins", "group technicians",
                             "group billing", "group client", "user admin"]
    assert first.admin_password and first.realm_url == f"{fake_keycloak.url}/realms/hivematrix"
    again = configure(admin, settings)
    assert (again.created, again.updated, again.admin_password) == ([], [], None)
    assert again.client_secret == first.client_secret


def test_tls_is_verified_unless_told_not_to(hm_home: Path, tls_keycloak: FakeKeycloak) -> None:
    refused = run_configure(tls_keycloak.url)
    assert refused.exit_code != 0
    assert "certificate verify failed" in refused.output
    assert "--no-verify" in refused.output
    assert "hivematrix" not in tls_keycloak.realms

    accepted = run_configure(tls_keycloak.url, "--no-verify")
    assert accepted.exit_code == 0, accepted.output
    assert "TLS certificate is not checked" in accepted.output
    assert "Unverified HTTPS request" not in accepted.output
    assert master_config(hm_home)["keycloak"]["url"] == tls_keycloak.url


def test_unwritable_master_config_still_shows_the_new_password(
        hm_home: Path, fake_keycloak: FakeKeycloak) -> None:
    config_file = hm_home / "configs" / "master_config.json"
    config_file.parent.mkdir(parents=True)
    config_file.write_text("{not json")
    result = run_configure(fake_keycloak.url)
    assert result.exit_code != 0
    assert f"cannot read {config_file}" in result.output
    user_id = fake_keycloak.user("hivematrix", "admin")["id"]
    password = fake_keycloak.realms["hivematrix"].passwords[user_id]["value"]
    assert printed_password(result.output) == password
    assert config_file.read_text() == "{not json"
