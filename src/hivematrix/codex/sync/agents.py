"""HiveMatrix staff (Codex agents) from the identity provider's user list.

Staff are the users whose groups give them the admin, technician or billing level (clients are
not agents). The built-in identity service is read over its admin API with Codex's service
token; Keycloak through its admin REST API (python-keycloak) with the credentials in Codex's
settings. An agent the IdP no longer lists, or lists disabled, is disabled here; its
preferences are kept in case it comes back. Agents also appear on their first sign-in
(``/api/agents/me``), before any sync has run.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from hivematrix.codex.models import Agent
from hivematrix.codex.settings import BadSetting, require
from hivematrix.codex.sync.runner import Run
from hivematrix.common.db import Database, utcnow
from hivematrix.common.service_client import ServiceClient
from hivematrix.core.tokens import group_names, permission_level

STAFF_LEVELS = ("admin", "technician", "billing")


@dataclass(frozen=True)
class Person:
    subject: str
    username: str
    email: str
    name: str
    enabled: bool
    level: str


def from_identity(config: Mapping[str, Any]) -> Iterator[Person]:
    client = ServiceClient(service_name="codex", secret=config.get("SERVICE_SECRET"),
                           core_url=config["CORE_SERVICE_URL"],
                           services_file=config["SERVICES_FILE"],
                           timeout=float(config.get("HTTP_TIMEOUT", 10.0)))
    response = client.call("identity", "/api/users")
    if response.status_code != 200:
        raise BadSetting(f"identity answered {response.status_code} to the user list")
    for user in response.json():
        yield Person(subject=str(user["sub"]), username=str(user["username"]),
                     email=str(user.get("email") or ""), name=str(user.get("name") or ""),
                     enabled=bool(user.get("enabled", True)),
                     level=permission_level(group_names(user.get("groups") or [])))


def from_keycloak(config: Mapping[str, Any]) -> Iterator[Person]:
    from keycloak import KeycloakAdmin

    require(config, "CODEX_KEYCLOAK_URL", "CODEX_KEYCLOAK_REALM",
            "CODEX_KEYCLOAK_CLIENT_ID", "CODEX_KEYCLOAK_CLIENT_SECRET")
    admin = KeycloakAdmin(server_url=config["CODEX_KEYCLOAK_URL"],
                          realm_name=config["CODEX_KEYCLOAK_REALM"],
                          client_id=config["CODEX_KEYCLOAK_CLIENT_ID"],
                          client_secret_key=config["CODEX_KEYCLOAK_CLIENT_SECRET"],
                          verify=bool(config.get("CODEX_KEYCLOAK_VERIFY_TLS", True)))
    for user in admin.get_users({"briefRepresentation": False}):
        groups = [group["name"] for group in admin.get_user_groups(user["id"])]
        name = " ".join(part for part in (user.get("firstName"), user.get("lastName")) if part)
        yield Person(subject=str(user["id"]), username=str(user["username"]),
                     email=str(user.get("email") or ""), name=name,
                     enabled=bool(user.get("enabled", True)), level=permission_level(groups))


def sync_agents(database: Database, config: Mapping[str, Any], run: Run) -> None:
    source = str(config.get("CODEX_AGENTS_SOURCE", "identity")).strip().lower()
    if source not in ("identity", "keycloak"):
        raise BadSetting(f"CODEX_AGENTS_SOURCE: {source!r}; expected identity or keycloak")
    people = list(from_identity(config) if source == "identity" else from_keycloak(config))
    counts = run.count("agents")
    staff = {person.subject: person for person in people if person.level in STAFF_LEVELS}
    now = utcnow()
    with database.transaction() as session:
        rows = {agent.subject: agent for agent in session.scalars(select(Agent))}
        for subject, person in staff.items():
            row = rows.get(subject)
            values = {"username": person.username, "email": person.email,
                      "name": person.name, "enabled": person.enabled}
            if row is None:
                clash = session.scalar(select(Agent).where(Agent.username == person.username))
                if clash is not None:  # renamed at the IdP: the old row keeps its preferences
                    clash.username = f"{clash.username}~{clash.id}"
                    session.flush()
                session.add(Agent(subject=subject, last_synced_at=now, **values))
                counts.created += 1
                continue
            changed = any(getattr(row, key) != value for key, value in values.items())
            for key, value in values.items():
                setattr(row, key, value)
            row.last_synced_at = now
            if changed:
                counts.updated += 1
            else:
                counts.unchanged += 1
        for subject, row in rows.items():
            if subject not in staff and row.enabled:
                row.enabled = False
                counts.retired += 1
    run.log.write(f"agents: {len(people)} users at {source}, {len(staff)} staff; "
                  f"{counts.to_dict()}")
