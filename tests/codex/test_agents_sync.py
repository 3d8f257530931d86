"""Codex's agents (HiveMatrix staff) synced from the identity provider's user list.

The built-in identity service and Core run as real processes; Codex asks Core for a service
token with its own secret and reads identity's `/api/users` with it, exactly as in
production. Keycloak is its contract fake, read through python-keycloak with a
service-account client (client credentials), as `CODEX_AGENTS_SOURCE=keycloak` configures.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from keycloak import KeycloakAdmin
from sqlalchemy import select

from hivematrix.cli import main
from hivematrix.cli.keycloak import KeycloakSettings, configure, connect
from hivematrix.codex.models import Agent, SyncJob
from hivematrix.codex.sync import service
from hivematrix.common.db import Database
from hivematrix.common.testing import ServiceProcess, free_port
from hivematrix.identity import accounts
from tests.codex.test_sync_cli import write_conf
from tests.fakes.keycloak import ADMIN_PASSWORD, ADMIN_USER, FakeKeycloak, running

PASSWORD = "correct horse battery staple"
CODEX_CLIENT = "hivematrix-codex"


def agents(database: Database) -> dict[str, tuple[str, str, str, bool]]:
    """username -> (subject, name, email, enabled)."""
    with database.transaction() as session:
        return {row.username: (row.subject, row.name, row.email, row.enabled)
                for row in session.scalars(select(Agent))}


def job(database: Database, job_id: str) -> SyncJob:
    with database.transaction() as session:
        found = session.get(SyncJob, job_id)
        assert found is not None
        session.expunge(found)
        return found


# --- the built-in identity service, in real processes --------------------------------------


@dataclass
class Platform:
    home: Path
    identity: ServiceProcess
    core: ServiceProcess

    def identity_db(self) -> Database:
        return Database(f"sqlite:///{self.home}/identity/identity.db")

    def add_user(self, username: str, groups: list[str], **fields: Any) -> None:
        database = self.identity_db()
        with database.transaction() as session:
            accounts.create_user(session, accounts.NewUser(
                username=username, password=PASSWORD, name=username.title(), groups=groups,
                email=f"{username}@msp.example", must_change_password=False, **fields))
        database.dispose()

    def change_user(self, username: str, groups: list[str] | None = None,
                    **changes: Any) -> None:
        database = self.identity_db()
        with database.transaction() as session:
            user = accounts.get_user(session, username)
            if changes:
                accounts.update_user(session, user, changes)
            if groups is not None:
                accounts.set_groups(session, user, groups)
        database.dispose()

    def subject(self, username: str) -> str:
        database = self.identity_db()
        with database.transaction() as session:
            subject = str(accounts.get_user(session, username).subject)
        database.dispose()
        return subject


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    """Identity and Core on free ports, recorded in services.json before `hivematrix init`
    (which adopts them), so every service's settings point at the running ones."""
    home = tmp_path_factory.mktemp("platform")
    ports = {"identity": free_port(), "core": free_port()}
    (home / "services.json").write_text(json.dumps({
        name: {"url": f"http://127.0.0.1:{port}", "port": port, "title": name.title(),
               "visible": False, "admin_only": False, "billing_or_admin_only": False}
        for name, port in ports.items()}))
    with pytest.MonkeyPatch.context() as environment:
        environment.setenv("HIVEMATRIX_HOME", str(home))
        for name in ("DATABASE_URL", "CORE_SERVICE_URL", "SERVICE_SECRET", "SERVICES_FILE"):
            environment.delenv(name, raising=False)
        result = CliRunner().invoke(main, ["init"])
        assert result.exit_code == 0, result.output
        services = json.loads((home / "services.json").read_text())
        assert services["identity"]["port"] == ports["identity"] and "codex" in services
        with ServiceProcess("identity", home, port=ports["identity"]) as identity:
            issuer = f"{identity.url}/realms/hivematrix"
            with ServiceProcess("core", home, port=ports["core"],
                                env={"OIDC_ISSUER_URL": issuer}) as core:
                yield Platform(home, identity, core)


@pytest.fixture
def identity_home(platform: Platform, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("HIVEMATRIX_HOME", str(platform.home))
    return platform.home


def sync_agents() -> Result:
    return CliRunner().invoke(main, ["codex", "sync", "agents"])


# The processes are the point here; the store is exercised on both databases below.
@pytest.mark.processes
@pytest.mark.parametrize("codex_db_url", ["postgresql"], indirect=True)
def test_staff_from_the_identity_service_become_agents(platform: Platform, identity_home: Path,
                                                       codex_db_url: str,
                                                       codex_db: Database) -> None:
    write_conf(identity_home, codex_db_url)
    platform.add_user("alice", ["admins"])
    platform.add_user("tom", ["technicians"])
    platform.add_user("bill", ["billing"])
    platform.add_user("dora", ["technicians"], enabled=False)
    platform.add_user("carla", ["client"], account_number="620547")
    platform.add_user("nogroup", [])

    first = sync_agents()
    assert first.exit_code == 0, first.output
    # identity's first administrator, the three staff and the disabled technician.
    assert "agents: 5 created" in first.output
    found = agents(codex_db)
    assert set(found) == {"admin", "alice", "tom", "bill", "dora"}
    assert found["alice"] == (platform.subject("alice"), "Alice", "alice@msp.example", True)
    assert found["dora"][3] is False  # disabled at the IdP: disabled here
    with codex_db.transaction() as session:
        recorded = session.scalars(select(SyncJob)).one()
        assert (recorded.kind, recorded.provider, recorded.status) == (
            "agents", "identity", "succeeded")
        assert "agents: 7 users at identity, 5 staff" in recorded.log

    again = sync_agents()
    assert again.exit_code == 0, again.output
    assert "agents: 5 unchanged" in again.output

    # Disabled, demoted to client, renamed: each shows on the next run.
    platform.change_user("tom", enabled=False)
    platform.change_user("bill", groups=["client"])
    platform.change_user("alice", name="Alice Ng", email="alice.ng@msp.example")
    platform.change_user("dora", enabled=True)
    third = sync_agents()
    assert third.exit_code == 0, third.output
    assert "agents: 3 updated, 1 unchanged, 1 retired" in third.output
    found = agents(codex_db)
    assert found["tom"][3] is False and found["bill"][3] is False  # kept, never deleted
    assert found["dora"][3] is True
    assert found["alice"][1:] == ("Alice Ng", "alice.ng@msp.example", True)
    assert len(found) == 5


@pytest.mark.processes
@pytest.mark.parametrize("codex_db_url", ["postgresql"], indirect=True)
def test_a_secret_core_refuses_fails_the_job(platform: Platform, identity_home: Path,
                                             codex_db: Database) -> None:
    from hivematrix.codex import SERVICE
    from hivematrix.codex.settings import DEFAULTS
    from hivematrix.common.config import load_settings

    config = load_settings(SERVICE.name, {"SERVICE_SECRET": "not-the-registered-one"},
                           defaults=DEFAULTS)
    assert config["CORE_SERVICE_URL"] == platform.core.url
    job_id, status = service.run(config, codex_db, "agents")
    assert status == "failed"
    assert "ServiceAuthError" in job(codex_db, job_id).error
    assert agents(codex_db) == {}


# --- Keycloak, through its contract fake ----------------------------------------------------


@dataclass
class Realm:
    """The hivematrix realm of the fake, administered through python-keycloak."""

    keycloak: FakeKeycloak
    admin: KeycloakAdmin
    groups: dict[str, str]
    codex_secret: str

    def add_user(self, username: str, groups: list[str], *, enabled: bool = True,
                 first: str = "", last: str = "") -> str:
        user_id = str(self.admin.create_user({
            "username": username, "email": f"{username}@msp.example", "enabled": enabled,
            "firstName": first or username.title(), "lastName": last}))
        for group in groups:
            self.admin.group_user_add(user_id, self.groups[group])
        return user_id

    def settings(self, **overrides: Any) -> dict[str, Any]:
        return {"CODEX_AGENTS_SOURCE": "keycloak", "CODEX_KEYCLOAK_URL": self.keycloak.url,
                "CODEX_KEYCLOAK_REALM": "hivematrix", "CODEX_KEYCLOAK_CLIENT_ID": CODEX_CLIENT,
                "CODEX_KEYCLOAK_CLIENT_SECRET": self.codex_secret, **overrides}


@pytest.fixture
def realm() -> Iterator[Realm]:
    """A realm as `hivematrix keycloak configure` leaves it, plus a confidential client with
    a service account for Codex (an operator creates it and grants it view-users)."""
    with running(FakeKeycloak()) as keycloak:
        admin = connect(keycloak.url, ADMIN_USER, ADMIN_PASSWORD)
        configure(admin, KeycloakSettings(server_url=keycloak.url))
        admin.change_current_realm("hivematrix")
        client_uuid = admin.create_client({
            "clientId": CODEX_CLIENT, "enabled": True, "publicClient": False,
            "clientAuthenticatorType": "client-secret", "standardFlowEnabled": False,
            "serviceAccountsEnabled": True})
        secret = admin.get_client_secrets(client_uuid)["value"]
        groups = {group["name"]: group["id"] for group in admin.get_groups()}
        yield Realm(keycloak, admin, groups, secret)


def test_staff_from_keycloak_become_agents(realm: Realm, codex_db: Database) -> None:
    alice = realm.add_user("alice", ["admins"], first="Alice", last="Ng")
    realm.add_user("tom", ["technicians"], first="Tom", last="Reyes")
    realm.add_user("bill", ["billing", "client"])
    realm.add_user("dora", ["technicians"], enabled=False)
    # More users than python-keycloak reads per page: the last staff member is on page two.
    for number in range(100):
        realm.add_user(f"client{number:03}", ["client"])
    realm.add_user("zed", ["technicians"])

    job_id, status = service.run(realm.settings(), codex_db, "agents", triggered_by="test")
    recorded = job(codex_db, job_id)
    assert status == "succeeded", recorded.log
    assert recorded.provider == "keycloak"
    assert recorded.counts["agents"] == {"created": 6, "updated": 0, "unchanged": 0,
                                         "retired": 0, "failed": 0}
    assert "agents: 106 users at keycloak, 6 staff" in recorded.log
    assert realm.keycloak.client_grants == [("hivematrix", CODEX_CLIENT)]
    found = agents(codex_db)
    # "admin" is the administrator `configure` created.
    assert set(found) == {"admin", "alice", "tom", "bill", "dora", "zed"}
    assert found["alice"] == (alice, "Alice Ng", "alice@msp.example", True)
    assert found["dora"][3] is False

    again_id, _ = service.run(realm.settings(), codex_db, "agents")
    assert job(codex_db, again_id).counts["agents"]["unchanged"] == 6

    # Tom leaves the technicians; Bill's account is deleted and made again (a new subject
    # with the same username); Dora is enabled.
    tom = realm.keycloak.user("hivematrix", "tom")["id"]
    realm.admin.group_user_remove(tom, realm.groups["technicians"])
    old_bill = found["bill"][0]
    realm.admin.delete_user(old_bill)
    new_bill = realm.add_user("bill", ["billing"])
    realm.admin.update_user(realm.keycloak.user("hivematrix", "dora")["id"], {"enabled": True})
    third_id, status = service.run(realm.settings(), codex_db, "agents")
    assert status == "succeeded"
    assert job(codex_db, third_id).counts["agents"] == {
        "created": 1, "updated": 1, "unchanged": 3, "retired": 2, "failed": 0}
    found = agents(codex_db)
    assert found["tom"][3] is False and found["dora"][3] is True
    assert found["bill"][0] == new_bill and found["bill"][3] is True
    # The old account's row keeps its preferences under a freed username, disabled.
    (renamed,) = [name for name in found if name.startswith("bill~")]
    assert found[renamed][0] == old_bill and found[renamed][3] is False


def test_a_wrong_client_secret_fails_the_job_with_keycloaks_answer(
        realm: Realm, codex_db: Database) -> None:
    job_id, status = service.run(realm.settings(CODEX_KEYCLOAK_CLIENT_SECRET="wrong"),
                                 codex_db, "agents")
    assert status == "failed"
    assert "Invalid client or Invalid client credentials" in job(codex_db, job_id).error
    assert agents(codex_db) == {}


def test_keycloak_settings_that_are_missing_are_named(codex_db: Database) -> None:
    job_id, status = service.run({"CODEX_AGENTS_SOURCE": "keycloak",
                                  "CODEX_KEYCLOAK_REALM": "hivematrix"}, codex_db, "agents")
    assert status == "failed"
    assert job(codex_db, job_id).error == (
        "BadSetting: missing settings: CODEX_KEYCLOAK_URL, CODEX_KEYCLOAK_CLIENT_ID, "
        "CODEX_KEYCLOAK_CLIENT_SECRET")
