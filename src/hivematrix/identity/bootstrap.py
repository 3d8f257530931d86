"""First start and every start: the signing key, the first administrator, Core's client and
the ``keycloak`` section of ``master_config.json``.

Several gunicorn workers may start at once, so every step tolerates a twin doing the same:
files are created atomically and database rows are re-read after a lost race.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import secrets
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from cryptography.exceptions import UnsupportedAlgorithm
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

from hivematrix.common.config import master_config_path
from hivematrix.common.db import Database
from hivematrix.common.files import write_atomic
from hivematrix.common.keys import SigningKey
from hivematrix.common.registry import read_services, write_json
from hivematrix.identity import accounts, passwords
from hivematrix.identity.models import OAuthClient

log = logging.getLogger("hivematrix.identity.bootstrap")

CLIENT_ID = "core-client"
FIRST_ADMIN = "admin"
PRIVATE_MODE = 0o600
SCOPE = "openid profile email"


class StartupError(RuntimeError):
    """The identity service cannot start; the message says what to fix."""


# --- files ---------------------------------------------------------------------------------

def signing_key_path(home: Path) -> Path:
    return home / "identity" / "keys" / "signing.pem"


def initial_password_path(home: Path) -> Path:
    return home / "initial-admin-password"


def _private_temp(folder: Path, data: bytes) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(dir=folder, prefix=".tmp-")
    with os.fdopen(handle, "wb") as out:
        out.write(data)
    os.chmod(name, PRIVATE_MODE)
    return Path(name)


def write_private(path: Path, data: bytes) -> None:
    """Replace ``path`` atomically with a file only its owner can read."""
    write_atomic(path, data, PRIVATE_MODE)


def load_or_create_signing_key(path: Path) -> SigningKey:
    """The ID-token key at ``path``, generated (mode 0600) when the file does not exist.

    :raises StartupError: the file exists but does not hold a usable RSA private key.
    """
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.parent.chmod(0o700)
        key = SigningKey.generate()
        temporary = _private_temp(path.parent, key.private_pem())
        try:
            os.link(temporary, path)  # fails if a twin worker won the race: use its key
            log.info("generated the ID-token signing key", extra={"kid": key.kid})
        except FileExistsError:
            pass
        finally:
            temporary.unlink()
    try:
        key = SigningKey.from_pem(path.read_bytes())
    except (OSError, ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise StartupError(
            f"the ID-token signing key {path} is unreadable or corrupt ({exc}); restore it "
            "from a backup, or delete it to generate a new key (signed-in users then have to "
            "sign in again)") from exc
    if path.stat().st_mode & 0o077:
        log.warning("the ID-token signing key is readable by other users; chmod 600 it",
                    extra={"path": str(path)})
    return key


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An advisory lock beside ``path`` for read-modify-write updates."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(f".{path.name}.lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def write_keycloak_section(path: Path, section: dict[str, str]) -> None:
    """Set the ``keycloak`` section of ``master_config.json``, keeping every other section.

    :raises StartupError: the file exists but is not a JSON object.
    """
    with _locked(path):
        try:
            current: Any = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            current = {}
        except (OSError, ValueError) as exc:
            raise StartupError(f"{path} is not valid JSON ({exc}); fix or remove it") from exc
        if not isinstance(current, dict):
            raise StartupError(f"{path} must hold a JSON object")
        previous = current.get("keycloak")
        if isinstance(previous, dict) and previous.get("url") not in (None, section["url"]):
            log.warning("replacing the identity provider in master_config.json",
                        extra={"previous_url": previous.get("url"), "url": section["url"]})
        if previous != section:
            write_json(path, {**current, "keycloak": section}, mode=PRIVATE_MODE)
        else:
            path.chmod(PRIVATE_MODE)


# --- settings ------------------------------------------------------------------------------

def parse_uris(setting: str, raw: str | None) -> list[str]:
    """Space-separated absolute http(s) URLs without fragments.

    :raises StartupError: one of them is not such a URL (the message names the setting).
    """
    uris = (raw or "").split()
    if not uris and setting == "IDENTITY_REDIRECT_URIS":
        raise StartupError(f"setting {setting}: at least one URL is required")
    for uri in uris:
        parts = urlsplit(uri)
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.fragment:
            raise StartupError(f"setting {setting}: {uri!r} is not an absolute http(s) URL "
                               "without a fragment")
    return uris


def default_post_logout_uris(redirect_uris: list[str]) -> list[str]:
    """Where Nexus may send the browser after logout: its callbacks, their sites' roots and
    logged-out pages."""
    landings = []
    for uri in redirect_uris:
        parts = urlsplit(uri)
        landings += [f"{parts.scheme}://{parts.netloc}/", f"{parts.scheme}://{parts.netloc}/logged-out"]
    return list(dict.fromkeys([*redirect_uris, *landings]))


def public_base_url(home: Path, issuer: str | None, realm: str, default_port: int) -> str:
    """The identity service's base URL for other services (``keycloak.url``).

    From ``IDENTITY_ISSUER`` when set, else from ``services.json``.
    """
    if issuer:
        base = issuer.rstrip("/")
        suffix = f"/realms/{realm}"
        return base[: -len(suffix)] if base.endswith(suffix) else base
    entry = read_services(home / "services.json").get("identity")
    if isinstance(entry, dict) and entry.get("url"):
        return str(entry["url"]).rstrip("/")
    return f"http://127.0.0.1:{default_port}"


# --- database ------------------------------------------------------------------------------

@dataclass(frozen=True)
class ClientSettings:
    client_id: str
    redirect_uris: list[str]
    post_logout_redirect_uris: list[str]


def ensure_client(session: Session, settings: ClientSettings) -> OAuthClient:
    """Create the confidential client, or bring its redirect URIs up to date; keeps its secret."""
    client = session.scalar(select(OAuthClient).where(
        OAuthClient.client_id == settings.client_id))
    metadata = {
        "client_name": "HiveMatrix Core",
        "redirect_uris": settings.redirect_uris,
        "post_logout_redirect_uris": settings.post_logout_redirect_uris,
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "scope": SCOPE,
        "token_endpoint_auth_method": "client_secret_basic",
        "token_endpoint_auth_methods": ["client_secret_basic", "client_secret_post"],
    }
    if client is None:
        client = OAuthClient(client_id=settings.client_id,
                             client_secret=secrets.token_urlsafe(32),
                             client_id_issued_at=int(time.time()), client_secret_expires_at=0)
        session.add(client)
    if client.client_metadata != metadata:
        client.set_client_metadata(metadata)
    session.flush()
    return client


def create_first_admin(session: Session) -> str | None:
    """Create ``admin`` (in ``admins``) with a random, temporary password, when no admin exists.

    :returns: the password, or ``None`` when nothing was created.
    """
    if accounts.admin_exists(session) or accounts.find_user(session, FIRST_ADMIN) is not None:
        return None
    password = passwords.generate_password()
    accounts.create_user(session, accounts.NewUser(
        username=FIRST_ADMIN, password=password, name="Administrator",
        groups=[accounts.ADMINS], must_change_password=True))
    return password


@dataclass(frozen=True)
class BootstrapSettings:
    home: Path
    realm: str
    public_url: str
    client: ClientSettings
    #: With a setup token the first administrator is created through ``/setup`` instead.
    setup_token: bool


@dataclass(frozen=True)
class BootstrapResult:
    admin_password: str | None
    client_secret: str


def bootstrap_database(database: Database, settings: BootstrapSettings,
                       attempts: int = 6) -> BootstrapResult:
    """Seed groups, the first administrator and the client.

    A twin worker doing the same at the same moment makes this transaction fail (a duplicate
    row, or SQLite's "database is locked"); it is then retried and reads what the twin wrote.
    """
    for attempt in range(attempts):
        try:
            with database.transaction() as session:
                accounts.ensure_groups(session)
                password = None if settings.setup_token else create_first_admin(session)
                client = ensure_client(session, settings.client)
                return BootstrapResult(password, str(client.client_secret))
        except (IntegrityError, OperationalError):
            if attempt == attempts - 1:
                raise
            time.sleep(0.05 * 2**attempt + secrets.randbelow(50) / 1000)
    raise AssertionError("unreachable")


def announce_admin_password(home: Path, password: str) -> Path:
    """Write the first administrator's password (mode 0600) and log it once."""
    path = initial_password_path(home)
    write_private(path, f"{password}\n".encode())
    log.warning(
        f"First start: created user '{FIRST_ADMIN}' with password {password} (also written to "
        f"{path}). It must be changed at the first sign-in.")
    return path


def forget_admin_password(home: Path) -> None:
    """Delete the initial-password file once that password is no longer valid."""
    initial_password_path(home).unlink(missing_ok=True)


def run(database: Database, settings: BootstrapSettings) -> BootstrapResult:
    """Everything a start needs in the database and in ``$HIVEMATRIX_HOME``."""
    result = bootstrap_database(database, settings)
    if result.admin_password:
        announce_admin_password(settings.home, result.admin_password)
    write_keycloak_section(master_config_path(settings.home), {
        "url": settings.public_url,
        "realm": settings.realm,
        "client_id": settings.client.client_id,
        "client_secret": result.client_secret,
    })
    return result
