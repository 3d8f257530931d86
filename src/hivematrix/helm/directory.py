"""Users and groups of the identity provider, behind one small interface.

Two adapters: the built-in identity service (over its admin JSON API, acting as the signed-in
administrator, so identity's own log names who made each change) and Keycloak (through
python-keycloak's ``KeycloakAdmin`` against the platform's realm, with the admin credentials
from Helm's settings). Which one is used follows ``HELM_IDENTITY_PROVIDER`` (see
:func:`chosen_provider`).

Every refusal or failure is a :class:`DirectoryError` with an HTTP status and a message that is
safe to show an administrator. No Flask in here: the views build a directory and call it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Protocol, TypeVar
from urllib.parse import quote

import httpx

from hivematrix.common.config import master_config_path
from hivematrix.core.tokens import group_names, permission_level

IDENTITY = "identity"
KEYCLOAK = "keycloak"
PROVIDERS = ("auto", IDENTITY, KEYCLOAK)
ADMINS = "admins"
#: Keycloak asks for a new password at the next sign-in when a user has this action.
UPDATE_PASSWORD = "UPDATE_PASSWORD"  # noqa: S105 - an action's name
TEMPORARY_PASSWORD_LENGTH = 24

T = TypeVar("T")


class DirectoryError(Exception):
    """The identity provider refused or failed; ``message`` is safe to show, ``field`` names
    the input at fault (if one is)."""

    status = 502

    def __init__(self, message: str, *, field: str | None = None,
                 status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        if status is not None:
            self.status = status


class UnknownUser(DirectoryError):
    status = 404


class Conflict(DirectoryError):
    """The change contradicts the directory's state: the username is taken, or it would leave
    no enabled administrator."""

    status = 409


class InvalidInput(DirectoryError):
    status = 422


class Unavailable(DirectoryError):
    """The provider cannot be reached, or does not let Helm in."""

    status = 503


class NotConfigured(DirectoryError):
    """Helm is not set up to reach a provider (a setting or registration is missing): a state
    of the platform, not a failure, so changes are refused with 409 until it is fixed."""

    status = 409


@dataclass(frozen=True)
class DirectoryUser:
    username: str
    name: str
    email: str | None
    groups: tuple[str, ...]
    enabled: bool

    @property
    def level(self) -> str:
        """The permission level Core will give this user (Core's own mapping)."""
        return permission_level(group_names(list(self.groups)))

    @property
    def is_admin(self) -> bool:
        return ADMINS in self.groups


@dataclass(frozen=True)
class DirectoryGroup:
    name: str
    members: int

    @property
    def level(self) -> str:
        return permission_level(group_names([self.name]))


@dataclass(frozen=True)
class NewUser:
    username: str
    name: str = ""
    email: str | None = None
    groups: tuple[str, ...] = ()


class Directory(Protocol):
    """What Helm's users and groups pages need from an identity provider."""

    provider: str

    def list_users(self, search: str = "") -> list[DirectoryUser]:
        """Users whose username, name or email contains ``search`` (all when empty)."""

    def get_user(self, username: str) -> DirectoryUser: ...

    def list_groups(self) -> list[DirectoryGroup]: ...

    def create_user(self, new: NewUser) -> tuple[DirectoryUser, str]:
        """Create an enabled user with a temporary password; returns the user and the
        password (shown once, never stored by Helm)."""

    def set_enabled(self, username: str, enabled: bool) -> DirectoryUser:
        """Enable or disable; disabling the last enabled administrator is a :class:`Conflict`."""

    def set_groups(self, username: str, groups: Sequence[str]) -> DirectoryUser:
        """Replace the user's groups; taking ``admins`` from the last enabled administrator is
        a :class:`Conflict`."""

    def reset_password(self, username: str) -> str:
        """Set a new temporary password (changed at the next sign-in) and return it."""


def temporary_password() -> str:
    """A random password with every character class, so Keycloak's usual policies accept it."""
    from hivematrix.cli.keycloak import new_password

    return new_password(TEMPORARY_PASSWORD_LENGTH)


def matches(user: DirectoryUser, search: str) -> bool:
    needle = search.strip().lower()
    return not needle or any(needle in (text or "").lower()
                             for text in (user.username, user.name, user.email))


def _last_admin(username: str) -> Conflict:
    return Conflict(f"{username!r} is the last enabled administrator; make someone else an "
                    "administrator first.")


NAME_MAX = 200
EMAIL_MAX = 254
USERNAME_MAX = 100


def _printable(text: str) -> bool:
    return all(ord(char) >= 32 and ord(char) != 127 for char in text)


def parse_new_user(form: Mapping[str, Any], groups: Iterable[str],
                   known_groups: Iterable[str]) -> tuple[NewUser | None, dict[str, list[str]]]:
    """Check the create form; returns the user, or ``None`` and the messages per field.

    Only what holds for every provider is checked here; the provider's own rules (identity's
    username characters, a Keycloak email policy) come back as :class:`InvalidInput`.
    """
    errors: dict[str, list[str]] = {}
    username = str(form.get("username") or "").strip().lower()
    if not username:
        errors["username"] = ["A username is required."]
    elif len(username) > USERNAME_MAX:
        errors["username"] = [f"At most {USERNAME_MAX} characters."]
    elif not _printable(username) or any(char.isspace() or char == "/" for char in username):
        errors["username"] = ["No spaces, slashes or control characters."]
    name = str(form.get("name") or "").strip()
    if len(name) > NAME_MAX:
        errors["name"] = [f"At most {NAME_MAX} characters."]
    elif not _printable(name):
        errors["name"] = ["Must not contain control characters."]
    email = str(form.get("email") or "").strip()
    local, at, domain = email.partition("@")
    if email and (len(email) > EMAIL_MAX or not _printable(email) or not (local and at and domain)
                  or "@" in domain or any(char.isspace() for char in email)):
        errors["email"] = ["Not an email address."]
    chosen = sorted({group.strip() for group in groups if group.strip()})
    unknown = sorted(set(chosen) - set(known_groups))
    if unknown:
        errors["groups"] = [f"Unknown group(s): {', '.join(unknown)}."]
    if errors:
        return None, errors
    return NewUser(username=username, name=name, email=email or None, groups=tuple(chosen)), {}


# --- choosing the provider -------------------------------------------------------------------

def keycloak_section(home: Path) -> dict[str, Any]:
    """The ``keycloak`` section of master_config.json (empty when missing or unreadable)."""
    try:
        document = json.loads(master_config_path(home).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    section = document.get("keycloak") if isinstance(document, dict) else None
    return section if isinstance(section, dict) else {}


def chosen_provider(setting: str, section: Mapping[str, Any]) -> str:
    """``identity`` or ``keycloak``.

    ``auto`` picks Keycloak when master_config.json's ``keycloak`` section was written by
    ``hivematrix keycloak configure``: only that records the realm's ``issuer``; the built-in
    identity service rewrites the section without it at every start.
    """
    choice = (setting or "auto").strip().lower()
    if choice not in PROVIDERS:
        raise NotConfigured(f"HELM_IDENTITY_PROVIDER must be one of {', '.join(PROVIDERS)}, "
                          f"not {setting!r}")
    if choice != "auto":
        return choice
    return KEYCLOAK if section.get("issuer") else IDENTITY


@dataclass(frozen=True)
class KeycloakAccess:
    """Where Keycloak is and how Helm signs in to its admin API."""

    server_url: str
    realm: str
    admin_user: str
    admin_password: str
    admin_realm: str = "master"
    verify_tls: bool = True
    timeout: int = 15


def keycloak_access(config: Mapping[str, Any], section: Mapping[str, Any]) -> KeycloakAccess:
    """Helm's ``HELM_KEYCLOAK_*`` settings, the server and realm defaulting to the
    ``keycloak`` section of master_config.json.

    :raises NotConfigured: no server URL or no admin password is configured.
    """
    server_url = config.get("HELM_KEYCLOAK_URL") or section.get("url")
    if not server_url:
        raise NotConfigured("Keycloak's address is unknown: set HELM_KEYCLOAK_URL, or run "
                          "`hivematrix keycloak configure`.")
    password = config.get("HELM_KEYCLOAK_ADMIN_PASSWORD")
    if not password:
        raise NotConfigured("Helm has no Keycloak admin credentials: set "
                          "HELM_KEYCLOAK_ADMIN_USER and HELM_KEYCLOAK_ADMIN_PASSWORD in Helm's "
                          "settings.")
    return KeycloakAccess(
        server_url=str(server_url).rstrip("/"),
        realm=str(config.get("HELM_KEYCLOAK_REALM") or section.get("realm") or "hivematrix"),
        admin_user=str(config.get("HELM_KEYCLOAK_ADMIN_USER") or "admin"),
        admin_password=str(password),
        admin_realm=str(config.get("HELM_KEYCLOAK_ADMIN_REALM") or "master"),
        verify_tls=bool(config.get("HELM_KEYCLOAK_VERIFY_TLS", True)))


# --- the built-in identity service -----------------------------------------------------------

class IdentityDirectory:
    """The identity service's admin API (``/api/users``, ``/api/groups``), called with the
    signed-in administrator's own token."""

    provider = IDENTITY

    def __init__(self, base_url: str, token: str, http: httpx.Client,
                 headers: Mapping[str, str] | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.http = http
        self.headers = {**(headers or {}), "Authorization": f"Bearer {token}"}

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        url = f"{self.base_url}{path}"
        try:
            response = self.http.request(method, url, json=body, headers=self.headers)
        except httpx.HTTPError as exc:
            raise Unavailable(f"The identity service at {self.base_url} cannot be reached "
                              f"({type(exc).__name__}).") from exc
        if response.status_code >= 400:
            raise self._refusal(response)
        return response.json() if response.content else None

    @staticmethod
    def _refusal(response: httpx.Response) -> DirectoryError:
        """Turn identity's problem document into the matching :class:`DirectoryError`."""
        try:
            problem = response.json()
        except ValueError:
            problem = {}
        problem = problem if isinstance(problem, dict) else {}
        detail = str(problem.get("detail") or response.reason_phrase)
        status = response.status_code
        if status == 404:
            return UnknownUser(detail)
        if status == 409:
            return Conflict(detail)
        if status in (400, 422):
            fields = (problem.get("errors") or {}).get("json") or {}
            for field, messages in fields.items():
                text = "; ".join(map(str, messages)) if isinstance(messages, list) else messages
                return InvalidInput(str(text), field=str(field))
            return InvalidInput(detail)
        if status in (401, 403):
            return DirectoryError(f"The identity service refused the request: {detail}",
                                  status=403)
        return DirectoryError(f"The identity service failed (HTTP {status}).")

    @staticmethod
    def _user(data: Mapping[str, Any]) -> DirectoryUser:
        return DirectoryUser(username=str(data["username"]), name=str(data.get("name") or ""),
                             email=data.get("email"), groups=tuple(data.get("groups") or ()),
                             enabled=bool(data.get("enabled")))

    @staticmethod
    def _path(username: str, suffix: str = "") -> str:
        return f"/api/users/{quote(username, safe='')}{suffix}"

    def list_users(self, search: str = "") -> list[DirectoryUser]:
        users = [self._user(item) for item in self._call("GET", "/api/users")]
        return [user for user in users if matches(user, search)]

    def get_user(self, username: str) -> DirectoryUser:
        return self._user(self._call("GET", self._path(username)))

    def list_groups(self) -> list[DirectoryGroup]:
        return [DirectoryGroup(str(item["name"]), int(item.get("members") or 0))
                for item in self._call("GET", "/api/groups")]

    def create_user(self, new: NewUser) -> tuple[DirectoryUser, str]:
        password = temporary_password()
        try:
            created = self._call("POST", "/api/users", {
                "username": new.username, "name": new.name, "email": new.email or None,
                "groups": list(new.groups), "password": password,
                "must_change_password": True, "enabled": True})
        except Conflict as exc:
            exc.field = exc.field or "username"  # the one conflict a new user can meet
            raise
        return self._user(created), password

    def set_enabled(self, username: str, enabled: bool) -> DirectoryUser:
        return self._user(self._call("PATCH", self._path(username), {"enabled": enabled}))

    def set_groups(self, username: str, groups: Sequence[str]) -> DirectoryUser:
        return self._user(self._call("PUT", self._path(username, "/groups"),
                                     {"groups": list(groups)}))

    def reset_password(self, username: str) -> str:
        password = temporary_password()
        self._call("POST", self._path(username, "/password"),
                   {"password": password, "temporary": True})
        return password


# --- Keycloak --------------------------------------------------------------------------------

def connect_keycloak(access: KeycloakAccess) -> Any:
    """A ``KeycloakAdmin`` for the realm; it signs in at its first call."""
    from keycloak import KeycloakAdmin

    return KeycloakAdmin(server_url=f"{access.server_url}/", username=access.admin_user,
                         password=access.admin_password, realm_name=access.realm,
                         user_realm_name=access.admin_realm, client_id="admin-cli",
                         verify=access.verify_tls, timeout=access.timeout)


def _keycloak_text(exc: Any) -> str:
    """The readable part of a Keycloak error body."""
    try:
        body = json.loads(exc.response_body or b"")
    except (TypeError, ValueError):
        body = None
    if not isinstance(body, dict):
        return "no details"
    description = str(body.get("error_description") or "")
    if description.startswith("For more on this error"):
        description = ""  # Keycloak's 404s say what is missing in "error" only
    for text in (body.get("errorMessage"), description, body.get("error")):
        if text:
            return str(text)
    return "no details"


def _keycloak_field(exc: Any) -> str | None:
    try:
        body = json.loads(exc.response_body or b"")
    except (TypeError, ValueError):
        return None
    field = body.get("field") if isinstance(body, dict) else None
    return str(field) if field else None


class KeycloakDirectory:
    """Users and top-level groups of one Keycloak realm.

    Group membership is read per group (``/groups/{id}/members``), one call per group rather
    than one per user. Keycloak itself would let the last administrator go; this adapter
    refuses that, as the identity service does.
    """

    provider = KEYCLOAK

    def __init__(self, admin: Any, server_url: str, realm: str) -> None:
        self.admin = admin
        self.server_url = server_url
        self.realm = realm

    def _call(self, action: Callable[[], T], *, field: str | None = None) -> T:
        """Run one python-keycloak call, turning its errors into :class:`DirectoryError`."""
        from keycloak.exceptions import (
            KeycloakAuthenticationError,
            KeycloakConnectionError,
            KeycloakError,
        )

        try:
            return action()
        except KeycloakConnectionError as exc:
            raise Unavailable(f"Keycloak at {self.server_url} cannot be reached.") from exc
        except KeycloakAuthenticationError as exc:
            raise Unavailable(f"Keycloak at {self.server_url} rejected Helm's admin "
                              f"credentials: {_keycloak_text(exc)}") from exc
        except KeycloakError as exc:
            text = _keycloak_text(exc)
            code = exc.response_code
            if code == 403:
                raise DirectoryError(f"Keycloak at {self.server_url} refused Helm's admin user "
                                     "(it needs the realm's user management roles).") from exc
            if code == 404 and "realm" in text.lower():
                raise Unavailable(f"Keycloak at {self.server_url} has no realm "
                                  f"{self.realm!r}.") from exc
            if code == 404:
                raise UnknownUser(f"Keycloak: {text}") from exc
            if code == 409:
                raise Conflict(f"Keycloak: {text}", field=field) from exc
            if code == 400:
                raise InvalidInput(f"Keycloak: {text}",
                                   field=_keycloak_field(exc) or field) from exc
            raise DirectoryError(f"Keycloak at {self.server_url} failed "
                                 f"(HTTP {code}): {text}") from exc

    # reading

    def _groups(self) -> dict[str, str]:
        """Top-level group name -> id."""
        groups = self._call(lambda: self.admin.get_groups())
        return {str(group["name"]): str(group["id"]) for group in groups}

    def _members(self, group_id: str) -> list[dict[str, Any]]:
        members: list[dict[str, Any]] = self._call(lambda: self.admin.get_group_members(
            group_id, {"briefRepresentation": True}))
        return members

    def _user_id(self, username: str) -> str:
        user_id: str | None = self._call(lambda: self.admin.get_user_id(username))
        if user_id is None:
            raise UnknownUser(f"No user named {username.strip().lower()!r}.")
        return user_id

    @staticmethod
    def _user(data: Mapping[str, Any], groups: Iterable[str]) -> DirectoryUser:
        name = " ".join(part for part in (data.get("firstName"), data.get("lastName")) if part)
        return DirectoryUser(username=str(data["username"]), name=name, email=data.get("email"),
                             groups=tuple(sorted(groups)), enabled=bool(data.get("enabled")))

    def _load(self, user_id: str) -> DirectoryUser:
        data = self._call(lambda: self.admin.get_user(user_id))
        groups = self._call(lambda: self.admin.get_user_groups(user_id,
                                                               brief_representation=True))
        # Subgroups ("/parent/child") are not the platform's groups; the top level is.
        top = [str(group["name"]) for group in groups
               if str(group.get("path", f"/{group['name']}")).count("/") <= 1]
        return self._user(data, top)

    def list_users(self, search: str = "") -> list[DirectoryUser]:
        query: dict[str, Any] = {"briefRepresentation": True}
        if search.strip():
            query["search"] = search.strip()
        users = self._call(lambda: self.admin.get_users(query))
        membership: dict[str, list[str]] = {}
        for name, group_id in self._groups().items():
            for member in self._members(group_id):
                membership.setdefault(str(member["id"]), []).append(name)
        found = [self._user(user, membership.get(str(user["id"]), [])) for user in users]
        return sorted(found, key=lambda user: user.username)

    def get_user(self, username: str) -> DirectoryUser:
        return self._load(self._user_id(username))

    def list_groups(self) -> list[DirectoryGroup]:
        return sorted((DirectoryGroup(name, len(self._members(group_id)))
                       for name, group_id in self._groups().items()),
                      key=lambda group: group.name)

    # changing

    def _group_ids(self, names: Iterable[str]) -> dict[str, str]:
        known = self._groups()
        wanted = {name.strip().strip("/") for name in names if name.strip()}
        missing = sorted(wanted - set(known))
        if missing:
            raise InvalidInput(f"Unknown group(s): {', '.join(missing)}; known groups: "
                               f"{', '.join(sorted(known))}.", field="groups")
        return {name: known[name] for name in wanted}

    def _other_enabled_admins(self, user_id: str) -> int:
        admins = self._groups().get(ADMINS)
        if admins is None:
            return 0
        return sum(1 for member in self._members(admins)
                   if member.get("enabled") and str(member["id"]) != user_id)

    def create_user(self, new: NewUser) -> tuple[DirectoryUser, str]:
        group_ids = self._group_ids(new.groups)
        first, _, last = new.name.strip().partition(" ")
        payload: dict[str, Any] = {"username": new.username, "enabled": True,
                                   "requiredActions": [UPDATE_PASSWORD]}
        # Keycloak keeps a first and a last name; the form has one name.
        for key, value in (("firstName", first), ("lastName", last.strip()),
                           ("email", new.email)):
            if value:
                payload[key] = value
        try:
            user_id: str = self._call(lambda: self.admin.create_user(payload),
                                      field="username")
        except Conflict as exc:
            if "same email" in exc.message:  # "User exists with same email"
                exc.field = "email"
            raise
        password = temporary_password()
        try:
            self._call(lambda: self.admin.set_user_password(user_id, password, temporary=True),
                       field="password")
            for group_id in group_ids.values():
                self._call(partial(self.admin.group_user_add, user_id, group_id))
        except DirectoryError:
            # Nothing half-made: a user without their password or groups is taken back.
            self._call(lambda: self.admin.delete_user(user_id))
            raise
        return self._load(user_id), password

    def set_enabled(self, username: str, enabled: bool) -> DirectoryUser:
        user_id = self._user_id(username)
        current = self._load(user_id)
        if (not enabled and current.enabled and current.is_admin
                and self._other_enabled_admins(user_id) == 0):
            raise _last_admin(current.username)
        # The whole representation goes back: a partial one may clear fields on some versions.
        data = self._call(lambda: self.admin.get_user(user_id))
        self._call(lambda: self.admin.update_user(user_id, {**data, "enabled": enabled}))
        return self._load(user_id)

    def set_groups(self, username: str, groups: Sequence[str]) -> DirectoryUser:
        user_id = self._user_id(username)
        wanted = self._group_ids(groups)
        current = self._load(user_id)
        if (current.is_admin and current.enabled and ADMINS not in wanted
                and self._other_enabled_admins(user_id) == 0):
            raise _last_admin(current.username)
        known = self._groups()
        for name in current.groups:
            if name not in wanted and name in known:
                self._call(partial(self.admin.group_user_remove, user_id, known[name]))
        for name, group_id in wanted.items():
            if name not in current.groups:
                self._call(partial(self.admin.group_user_add, user_id, group_id))
        return self._load(user_id)

    def reset_password(self, username: str) -> str:
        user_id = self._user_id(username)
        password = temporary_password()
        self._call(lambda: self.admin.set_user_password(user_id, password, temporary=True),
                   field="password")
        return password


def open_directory(config: Mapping[str, Any], *, admin_token: str | None,
                   identity_url: Callable[[], str], http: httpx.Client,
                   headers: Mapping[str, str] | None = None) -> Directory:
    """The directory Helm's settings and master_config.json point at.

    :param admin_token: the signed-in administrator's bearer token (for identity's API)
    :param identity_url: gives identity's base URL (from services.json); raises
        :class:`NotConfigured` when identity is not registered
    :raises NotConfigured: the provider is not usable as configured.
    """
    section = keycloak_section(Path(config["HIVEMATRIX_HOME"]))
    provider = chosen_provider(str(config.get("HELM_IDENTITY_PROVIDER") or "auto"), section)
    if provider == KEYCLOAK:
        access = keycloak_access(config, section)
        return KeycloakDirectory(connect_keycloak(access), access.server_url, access.realm)
    if not admin_token:
        raise DirectoryError("The identity service needs the administrator's token, and "
                             "this request carries none.", status=401)
    return IdentityDirectory(identity_url(), admin_token, http, headers)
