"""Configuring a Keycloak server for HiveMatrix through its admin REST API.

:func:`configure` brings a realm to the state HiveMatrix needs and is safe to run again: every
object is looked up first and created only when missing; existing ones are corrected where that
cannot hurt an operator's changes (a disabled realm is enabled, missing redirect URIs are added,
PKCE is switched on). An existing administrator's password is never touched.

The API calls go through `python-keycloak`'s :class:`~keycloak.KeycloakAdmin`; any object with
the same methods will do (tests use the real class against a local contract fake).
"""

from __future__ import annotations

import json
import re
import secrets
import string
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import requests
from keycloak import KeycloakAdmin
from keycloak.exceptions import (
    KeycloakAuthenticationError,
    KeycloakConnectionError,
    KeycloakError,
)

from hivematrix.common.config import master_config_path
from hivematrix.common.registry import write_json

DEFAULT_SERVER_URL = "http://127.0.0.1:8080"
DEFAULT_REALM = "hivematrix"
CLIENT_ID = "core-client"
DEFAULT_REDIRECT_URIS = ("https://localhost/keycloak-callback", "http://127.0.0.1:8000/keycloak-callback")
#: Permission groups, mapped to permission levels by Core (DESIGN.md section 4).
GROUPS = ("admins", "technicians", "billing", "client")
ADMIN_GROUP = "admins"
DEFAULT_ADMIN_USERNAME = "admin"
#: The user attribute scoping a client-level user to their company.
ACCOUNT_ATTRIBUTE = "account_number"
#: Keycloak keeps several post-logout redirect URIs in one attribute, separated by ``##``.
URI_SEPARATOR = "##"
PKCE_ATTRIBUTE = "pkce.code.challenge.method"
POST_LOGOUT_ATTRIBUTE = "post.logout.redirect.uris"
HTTP_FORBIDDEN = 403
HTTP_NOT_FOUND = 404
HTTP_CONFLICT = 409

T = TypeVar("T")


class KeycloakSetupError(Exception):
    """Keycloak could not be configured; the message says why, for an operator."""


@dataclass(frozen=True)
class KeycloakSettings:
    """What to configure."""

    server_url: str = DEFAULT_SERVER_URL
    realm: str = DEFAULT_REALM
    client_id: str = CLIENT_ID
    redirect_uris: tuple[str, ...] = DEFAULT_REDIRECT_URIS
    #: Empty: every redirect URI's origin followed by ``/*``.
    post_logout_redirect_uris: tuple[str, ...] = ()
    admin_username: str = DEFAULT_ADMIN_USERNAME

    @property
    def realm_url(self) -> str:
        """The realm's issuer URL, as OIDC clients (Core) use it."""
        return f"{self.server_url.rstrip('/')}/realms/{self.realm}"

    def logout_uris(self) -> tuple[str, ...]:
        if self.post_logout_redirect_uris:
            return self.post_logout_redirect_uris
        origins = []
        for uri in self.redirect_uris:
            parts = urlsplit(uri)
            origin = f"{parts.scheme}://{parts.netloc}/*"
            if origin not in origins:
                origins.append(origin)
        return tuple(origins)


@dataclass
class ConfigureResult:
    """What :func:`configure` found and did."""

    server_url: str
    realm: str
    realm_url: str
    client_id: str
    client_secret: str
    admin_username: str
    #: The administrator's one-time password; ``None`` when the user already existed.
    admin_password: str | None = None
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)

    @property
    def password_notice(self) -> str | None:
        """The message that shows the administrator's one-time password, if there is one."""
        if not self.admin_password:
            return None
        return (f"one-time password of {self.admin_username}: {self.admin_password}\n"
                "(shown only now; a new one must be chosen at first login)")

    def master_config_section(self) -> dict[str, str]:
        """The ``"keycloak"`` section of ``master_config.json``."""
        return {"url": self.server_url.rstrip("/"), "realm": self.realm,
                "client_id": self.client_id, "client_secret": self.client_secret,
                "issuer": self.realm_url}


def connect(server_url: str, username: str, password: str, *, realm: str = DEFAULT_REALM,
            verify: bool | str = True, timeout: int = 15) -> KeycloakAdmin:
    """Log in to the ``master`` realm as ``username`` (client ``admin-cli``).

    The token is fetched at once, so wrong credentials and an unreachable server show here.
    """
    admin = KeycloakAdmin(server_url=_with_slash(server_url), username=username,
                          password=password, realm_name=realm, user_realm_name="master",
                          client_id="admin-cli", verify=verify, timeout=timeout)
    _call(admin.connection.get_token, server_url=server_url, username=username)
    return admin


def configure(admin: Any, settings: KeycloakSettings | None = None) -> ConfigureResult:
    """Bring the realm, client, mappers, groups and first administrator to the wanted state.

    :param admin: a logged-in :class:`~keycloak.KeycloakAdmin` (or an object with its methods)
    :raise KeycloakSetupError: Keycloak refused a call or could not be reached
    """
    settings = settings or KeycloakSettings()
    return _call(lambda: _Configurator(admin, settings).run(), server_url=settings.server_url)


def write_master_config(home: Path, result: ConfigureResult) -> Path:
    """Store the client's settings under ``"keycloak"`` in ``master_config.json`` (mode 0600).

    Other sections, and other keys of the ``"keycloak"`` section, are kept.
    """
    path = master_config_path(home)
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        document = {}
    except (OSError, json.JSONDecodeError) as exc:
        raise KeycloakSetupError(f"cannot read {path} ({exc}); fix or remove it") from exc
    if not isinstance(document, dict):
        raise KeycloakSetupError(f"{path} does not hold a JSON object; fix or remove it")
    section = document.get("keycloak")
    section = dict(section) if isinstance(section, dict) else {}
    section.update(result.master_config_section())
    document["keycloak"] = section
    try:
        write_json(path, document, mode=0o600)
    except OSError as exc:
        raise KeycloakSetupError(f"cannot write {path}: {exc}") from exc
    return path


def new_password(length: int = 20) -> str:
    """A random password with lower- and upper-case letters, digits and punctuation.

    Mixing every class satisfies the usual Keycloak password policies.
    """
    classes = (string.ascii_lowercase, string.ascii_uppercase, string.digits, "!#%+-.=?@_~")
    alphabet = "".join(classes)
    while True:
        password = "".join(secrets.choice(alphabet) for _ in range(length))
        if all(any(char in chars for char in password) for chars in classes):
            return password


class _Configurator:
    """One run of :func:`configure`; records what it created and updated."""

    def __init__(self, admin: Any, settings: KeycloakSettings) -> None:
        self.admin = admin
        self.settings = settings
        self.created: list[str] = []
        self.updated: list[str] = []

    def run(self) -> ConfigureResult:
        settings = self.settings
        self.ensure_realm()
        self.admin.change_current_realm(settings.realm)
        client_uuid = self.ensure_client()
        self.ensure_mappers(client_uuid)
        self.ensure_account_attribute()
        groups = {name: self.ensure_group(name) for name in GROUPS}
        password = self.ensure_admin_user(groups[ADMIN_GROUP])
        return ConfigureResult(
            server_url=settings.server_url, realm=settings.realm, realm_url=settings.realm_url,
            client_id=settings.client_id, client_secret=self.client_secret(client_uuid),
            admin_username=settings.admin_username.lower(), admin_password=password,
            created=self.created, updated=self.updated)

    # --- realm -----------------------------------------------------------------------------

    def ensure_realm(self) -> None:
        name = self.settings.realm
        realm = _get_or_none(lambda: self.admin.get_realm(name))
        if realm is None:
            _, created = _create(lambda: self.admin.create_realm(
                {"realm": name, "enabled": True, "displayName": "HiveMatrix"}),
                lookup=lambda: self.admin.get_realm(name))
            if created:
                self.created.append(f"realm {name}")
        elif not realm.get("enabled", False):
            self.admin.update_realm(name, {"enabled": True})
            self.updated.append(f"realm {name} (enabled)")

    # --- client ----------------------------------------------------------------------------

    def client_payload(self) -> dict[str, Any]:
        settings = self.settings
        return {
            "clientId": settings.client_id, "name": "HiveMatrix Core", "enabled": True,
            "protocol": "openid-connect", "publicClient": False,
            "clientAuthenticatorType": "client-secret", "standardFlowEnabled": True,
            "implicitFlowEnabled": False, "directAccessGrantsEnabled": False,
            "serviceAccountsEnabled": False, "redirectUris": list(settings.redirect_uris),
            "attributes": {PKCE_ATTRIBUTE: "S256",
                           POST_LOGOUT_ATTRIBUTE: URI_SEPARATOR.join(settings.logout_uris())},
        }

    def ensure_client(self) -> str:
        client_id = self.settings.client_id
        uuid: str | None = self.admin.get_client_id(client_id)
        if uuid is None:
            uuid, created = _create(lambda: self.admin.create_client(self.client_payload()),
                                    lookup=lambda: self.admin.get_client_id(client_id))
            if created:
                self.created.append(f"client {client_id}")
                return str(uuid)
        current = self.admin.get_client(uuid)
        wanted = self.corrected_client(current)
        if wanted != current:
            self.admin.update_client(uuid, wanted)
            self.updated.append(f"client {client_id}")
        return uuid

    def corrected_client(self, current: dict[str, Any]) -> dict[str, Any]:
        """``current`` with what HiveMatrix needs; what an operator added is kept."""
        wanted = {**current, "enabled": True, "publicClient": False,
                  "standardFlowEnabled": True}
        wanted["redirectUris"] = _merged(current.get("redirectUris") or [],
                                         self.settings.redirect_uris)
        attributes = dict(current.get("attributes") or {})
        attributes[PKCE_ATTRIBUTE] = "S256"
        logout = [uri for uri in (attributes.get(POST_LOGOUT_ATTRIBUTE) or "").split(
            URI_SEPARATOR) if uri]
        attributes[POST_LOGOUT_ATTRIBUTE] = URI_SEPARATOR.join(
            _merged(logout, self.settings.logout_uris()))
        wanted["attributes"] = attributes
        return wanted

    def client_secret(self, uuid: str) -> str:
        secret = self.admin.get_client_secrets(uuid).get("value")
        if not secret:
            secret = self.admin.generate_client_secrets(uuid).get("value")
            self.updated.append(f"client {self.settings.client_id} (secret generated)")
        if not secret:
            raise KeycloakSetupError(
                f"Keycloak returned no secret for client {self.settings.client_id!r}")
        return str(secret)

    # --- protocol mappers ------------------------------------------------------------------

    def ensure_mappers(self, client_uuid: str) -> None:
        existing = {mapper.get("name"): mapper
                    for mapper in self.admin.get_mappers_from_client(client_uuid)}
        for wanted in (groups_mapper(), account_mapper()):
            name = wanted["name"]
            current = existing.get(name)
            if current is None:
                self.admin.add_mapper_to_client(client_uuid, wanted)
                self.created.append(f"mapper {name}")
                continue
            config = {**(current.get("config") or {}), **wanted["config"]}
            if (current.get("protocolMapper") != wanted["protocolMapper"]
                    or config != current.get("config")):
                self.admin.update_client_mapper(
                    client_uuid, current["id"],
                    {**current, "protocolMapper": wanted["protocolMapper"], "config": config})
                self.updated.append(f"mapper {name}")

    def ensure_account_attribute(self) -> None:
        """Declare ``account_number`` in the user profile (Keycloak 24+ drops undeclared ones)."""
        profile = _get_or_none(self.admin.get_realm_users_profile)
        if profile is None:  # a Keycloak without declarative user profiles
            return
        attributes = profile.get("attributes") or []
        if any(attribute.get("name") == ACCOUNT_ATTRIBUTE for attribute in attributes):
            return
        attributes.append({
            "name": ACCOUNT_ATTRIBUTE, "displayName": "Account number", "validations": {},
            "annotations": {}, "multivalued": False,
            # Only administrators may set it: it decides which company's data a user sees.
            "permissions": {"view": ["admin"], "edit": ["admin"]},
        })
        self.admin.update_realm_users_profile({**profile, "attributes": attributes})
        self.updated.append(f"user profile ({ACCOUNT_ATTRIBUTE} declared)")

    # --- groups and the administrator ------------------------------------------------------

    def find_group(self, name: str) -> str | None:
        # The search is a substring match on some versions: filter on the exact name here.
        for group in self.admin.get_groups({"search": name, "exact": "true"}):
            if group.get("name") == name and group.get("path", f"/{name}") == f"/{name}":
                return str(group["id"])
        return None

    def ensure_group(self, name: str) -> str:
        group_id = self.find_group(name)
        if group_id is None:
            group_id, created = _create(lambda: self.admin.create_group({"name": name}),
                                        lookup=lambda: self.find_group(name))
            if created:
                self.created.append(f"group {name}")
        return str(group_id)

    def ensure_admin_user(self, admins_group: str) -> str | None:
        """Create the administrator with a one-time password; returns it, or ``None``."""
        username = self.settings.admin_username.lower()
        password = None
        user_id: str | None = self.admin.get_user_id(username)
        if user_id is None:
            user_id, created = _create(lambda: self.admin.create_user({
                "username": username, "enabled": True, "requiredActions": ["UPDATE_PASSWORD"],
            }), lookup=lambda: self.admin.get_user_id(username))
            if created:  # never reset the password of an administrator someone else made
                password = new_password()
                self.admin.set_user_password(user_id, password, temporary=True)
                self.created.append(f"user {username}")
        member_of = {group.get("id") for group in self.admin.get_user_groups(user_id)}
        if admins_group not in member_of:
            self.admin.group_user_add(user_id, admins_group)
            if password is None:
                self.updated.append(f"user {username} (added to {ADMIN_GROUP})")
        return password


def groups_mapper() -> dict[str, Any]:
    """Releases group names (no leading ``/``) as the ``groups`` claim."""
    return {"name": "groups", "protocol": "openid-connect",
            "protocolMapper": "oidc-group-membership-mapper", "consentRequired": False,
            "config": {"claim.name": "groups", "full.path": "false",
                       "id.token.claim": "true", "access.token.claim": "true",
                       "userinfo.token.claim": "true", "introspection.token.claim": "true"}}


def account_mapper() -> dict[str, Any]:
    """Releases the ``account_number`` user attribute as a claim of the same name."""
    return {"name": ACCOUNT_ATTRIBUTE, "protocol": "openid-connect",
            "protocolMapper": "oidc-usermodel-attribute-mapper", "consentRequired": False,
            "config": {"user.attribute": ACCOUNT_ATTRIBUTE, "claim.name": ACCOUNT_ATTRIBUTE,
                       "jsonType.label": "String", "multivalued": "false",
                       "aggregate.attrs": "false", "id.token.claim": "true",
                       "access.token.claim": "true", "userinfo.token.claim": "true",
                       "introspection.token.claim": "true"}}


# --- helpers -------------------------------------------------------------------------------

def _with_slash(url: str) -> str:
    # python-keycloak joins paths with urljoin: a base path without "/" would lose its last part.
    return url if url.endswith("/") else url + "/"


def _merged(current: Iterable[str], wanted: Iterable[str]) -> list[str]:
    result = list(current)
    result.extend(item for item in wanted if item not in result)
    return result


def _get_or_none(get: Callable[[], T]) -> T | None:
    try:
        return get()
    except KeycloakError as exc:
        if exc.response_code == HTTP_NOT_FOUND:
            return None
        raise


def _create(create: Callable[[], Any], *, lookup: Callable[[], Any]) -> tuple[Any, bool]:
    """Create; on 409 (someone else created it meanwhile) find the existing object instead.

    Returns the result and whether this call created it.
    """
    try:
        return create(), True
    except KeycloakError as exc:
        if exc.response_code != HTTP_CONFLICT:
            raise
        found = lookup()
        if found is None:
            raise
        return found, False


def _error_text(exc: KeycloakError) -> str:
    """The most readable part of a Keycloak error body."""
    try:
        body = json.loads(exc.response_body or b"")
    except ValueError:
        body = None
    if isinstance(body, dict):
        for key in ("errorMessage", "error_description", "error", "message"):
            if body.get(key):
                return str(body[key])
    message = exc.error_message
    if isinstance(message, bytes):
        message = message.decode("utf-8", "replace")
    return str(message).strip() or "no details"


def _connection_problem(exc: KeycloakConnectionError) -> str:
    """Why a connection failed, in one short phrase with a hint."""
    cause = exc.__cause__
    text = str(cause or exc)
    if isinstance(cause, requests.exceptions.SSLError):
        found = re.search(r"\[SSL: [^\]]+\] ([^(]+)", text)
        reason = found.group(1).strip() if found else "TLS handshake failed"
        return (f"{reason}; pass --no-verify only for a test server with a self-signed "
                "certificate")
    if isinstance(cause, requests.exceptions.Timeout):
        return "no answer in time; is it running and reachable from here?"
    found = re.search(r"\[Errno -?\d+\] ([^'\")]+)", text)
    reason = found.group(1).strip() if found else type(cause or exc).__name__
    return f"{reason}; is it running, and is the URL right?"


def _call(action: Callable[[], T], *, server_url: str, username: str | None = None) -> T:
    """Run ``action``, turning python-keycloak's errors into a :class:`KeycloakSetupError`."""
    try:
        return action()
    except KeycloakConnectionError as exc:
        raise KeycloakSetupError(
            f"cannot reach Keycloak at {server_url}: {_connection_problem(exc)}") from exc
    except KeycloakAuthenticationError as exc:
        who = f" for admin user {username!r}" if username else ""
        raise KeycloakSetupError(
            f"Keycloak at {server_url} rejected the admin credentials{who} "
            f"(realm master, client admin-cli): {_error_text(exc)}") from exc
    except KeycloakError as exc:
        if exc.response_code == HTTP_FORBIDDEN:
            raise KeycloakSetupError(
                f"Keycloak at {server_url} refused a request (HTTP 403): the admin user needs "
                "the 'admin' role of the master realm") from exc
        code = f"HTTP {exc.response_code}: " if exc.response_code else ""
        raise KeycloakSetupError(
            f"Keycloak at {server_url} refused a request: {code}{_error_text(exc)}") from exc
