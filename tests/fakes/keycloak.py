"""A contract fake of Keycloak's admin REST API (v26), served over real HTTP.

It implements the documented request and response shapes (vendor-apis.md section 4) of the
calls python-keycloak makes: 201 + ``Location`` with an empty body on creates, 409
``{"errorMessage"}`` on duplicates, 404 ``{"error", "error_description"}``, arrays for queries
(paged with ``first``/``max``), ``{type, value}`` client secrets, a password-grant token
endpoint for ``admin-cli`` and a client-credentials one for a realm's service-account
clients, and the user administration Helm's users page uses: user search with
``briefRepresentation``, ``PUT``/``DELETE /users/{id}``, ``/users/{id}/groups`` (and joining
or leaving one with ``PUT``/``DELETE``), ``/groups/{id}/members`` and
``/users/{id}/reset-password`` with the realm's minimum password length.
"""

from __future__ import annotations

import re
import secrets
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from flask import Flask, Response, request
from werkzeug.serving import make_server

from hivematrix.common.testing import serve_wsgi

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


def _flag(name: str) -> bool:
    """A boolean query parameter (python-keycloak sends ``True``, others ``true``)."""
    return request.args.get(name, "").lower() == "true"


def _page(items: list[Any]) -> list[Any]:
    """The ``first``/``max`` slice Keycloak's list endpoints answer with."""
    first = int(request.args.get("first", 0))
    count = int(request.args.get("max", 100))
    return items[first:first + count]


#: What ``briefRepresentation=true`` keeps of a user.
BRIEF_USER_KEYS = ("id", "username", "firstName", "lastName", "email", "emailVerified",
                   "enabled", "createdTimestamp")


def _shown(user: dict[str, Any], *, brief: bool) -> dict[str, Any]:
    return {key: user[key] for key in BRIEF_USER_KEYS if key in user} if brief else user


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
    #: The realm's password policy ``length(n)``; 0: none.
    password_min_length: int = 0

    def declared(self, attribute: str) -> bool:
        return (self.profile.get("unmanagedAttributePolicy") is not None
                or any(item["name"] == attribute for item in self.profile["attributes"]))

    def kept_attributes(self, attributes: dict[str, Any] | None) -> dict[str, Any]:
        """v24+: attributes the user profile does not declare are dropped."""
        return {key: value for key, value in (attributes or {}).items() if self.declared(key)}


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
    #: ``PUT /users/{id}`` bodies, as (user id, body).
    updates: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    #: Client-credentials tokens handed out, as (realm, clientId).
    client_grants: list[tuple[str, str]] = field(default_factory=list)

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

        @app.post("/realms/<realm>/protocol/openid-connect/token")
        def client_token(realm: str) -> Any:
            """A confidential client's own token (client credentials, its service account),
            as Codex reads the staff list with."""
            state, form = self.realms.get(realm), request.form
            if state is None:
                return _not_found("Realm does not exist")
            if form.get("grant_type") != "client_credentials":
                return {"error": "unsupported_grant_type",
                        "error_description": "Unsupported grant_type"}, 400
            auth = request.authorization
            client_id = auth.username if auth else form.get("client_id")
            secret = auth.password if auth else form.get("client_secret")
            client = next((c for c in state.clients.values() if c["clientId"] == client_id),
                          None)
            if client is None or state.secrets.get(client["id"]) != secret:
                return {"error": "unauthorized_client",
                        "error_description": "Invalid client or Invalid client credentials"
                        }, 401
            if not client.get("serviceAccountsEnabled"):
                return {"error": "unauthorized_client",
                        "error_description": "Client not enabled to retrieve service account"
                        }, 400
            self.client_grants.append((realm, str(client_id)))
            access = secrets.token_urlsafe(24)
            self.tokens.add(access)
            # No refresh token for client credentials: the client asks again.
            return {"access_token": access, "expires_in": 300, "refresh_expires_in": 0,
                    "token_type": "Bearer", "not-before-policy": 0, "scope": "profile email"}

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
                if _flag("exact"):
                    users = [u for u in users if u["username"] == username.lower()]
                else:
                    users = [u for u in users if username.lower() in u["username"]]
            search = (request.args.get("search") or "").strip().lower()
            if search and search != "*":
                # Keycloak's search: a substring of username, first or last name, or email.
                users = [u for u in users if any(
                    search in str(u.get(key) or "").lower()
                    for key in ("username", "firstName", "lastName", "email"))]
            return [_shown(user, brief=_flag("briefRepresentation")) for user in _page(users)]

        @app.post("/admin/realms/<realm>/users")
        def create_user(realm: str) -> Any:
            state, body = self.realms[realm], request.get_json()
            username = body["username"].lower()
            if any(user["username"] == username for user in state.users.values()):
                return _conflict("User exists with same username")
            email = (body.get("email") or "").lower() or None
            if email and any(user.get("email") == email for user in state.users.values()):
                return _conflict("User exists with same email")
            user_id = str(uuid.uuid4())
            state.users[user_id] = {
                "id": user_id, "username": username, "enabled": body.get("enabled", False),
                "emailVerified": body.get("emailVerified", False),
                "attributes": state.kept_attributes(body.get("attributes")),
                "requiredActions": list(body.get("requiredActions") or []),
                "createdTimestamp": 0,
                **{key: body[key] for key in ("firstName", "lastName") if body.get(key)},
                **({"email": email} if email else {})}
            return _created(f"{request.host_url}admin/realms/{realm}/users/{user_id}")

        @app.get("/admin/realms/<realm>/users/<uid>")
        def get_user(realm: str, uid: str) -> Any:
            user = self.realms[realm].users.get(uid)
            return user if user else _not_found("User not found")

        @app.put("/admin/realms/<realm>/users/<uid>")
        def update_user(realm: str, uid: str) -> Any:
            state, body = self.realms[realm], request.get_json()
            user = state.users.get(uid)
            if user is None:
                return _not_found("User not found")
            self.updates.append((uid, dict(body)))
            for key in ("enabled", "firstName", "lastName", "email", "emailVerified",
                        "requiredActions"):
                if key in body:
                    user[key] = body[key]
            if "attributes" in body:
                user["attributes"] = state.kept_attributes(body["attributes"])
            return _no_content()

        @app.delete("/admin/realms/<realm>/users/<uid>")
        def delete_user(realm: str, uid: str) -> Any:
            state = self.realms[realm]
            if state.users.pop(uid, None) is None:
                return _not_found("User not found")
            state.memberships.pop(uid, None)
            state.passwords.pop(uid, None)
            return _no_content()

        @app.put("/admin/realms/<realm>/users/<uid>/reset-password")
        def reset_password(realm: str, uid: str) -> Any:
            state, body = self.realms[realm], request.get_json()
            if uid not in state.users:
                return _not_found("User not found")
            value = body.get("value") or ""
            if body.get("type") != "password" or len(value) < max(1, state.password_min_length):
                return {"error": "invalidPasswordMinLengthMessage",
                        "error_description": "Invalid password: minimum length "
                                             f"{state.password_min_length}."}, 400
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
            brief = request.args.get("briefRepresentation", "true").lower() == "true"
            return [{"id": g["id"], "name": g["name"], "path": g["path"]} if brief else g
                    for g in _page(groups)]

        @app.route("/admin/realms/<realm>/users/<uid>/groups/<gid>", methods=["PUT", "DELETE"])
        def membership(realm: str, uid: str, gid: str) -> Any:
            state = self.realms[realm]
            if uid not in state.users:
                return _not_found("User not found")
            if gid not in state.groups:
                return _not_found("Group not found")
            if request.method == "PUT":
                state.memberships.setdefault(uid, set()).add(gid)
            else:
                state.memberships.get(uid, set()).discard(gid)
            return _no_content()

        @app.get("/admin/realms/<realm>/groups/<gid>/members")
        def group_members(realm: str, gid: str) -> Any:
            state = self.realms[realm]
            if gid not in state.groups:
                return _not_found("Could not find group by id")
            members = [user for uid, user in state.users.items()
                       if gid in state.memberships.get(uid, set())]
            return [_shown(user, brief=_flag("briefRepresentation")) for user in _page(members)]

        return app


@contextmanager
def running(keycloak: FakeKeycloak, *, tls: bool = False) -> Iterator[FakeKeycloak]:
    """Serve ``keycloak`` on a free port (over HTTPS with a self-signed certificate when
    ``tls``) and set its ``url``."""
    if not tls:
        with serve_wsgi(keycloak.wsgi()) as url:
            keycloak.url = url
            yield keycloak
        return
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
