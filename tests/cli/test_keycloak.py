"""`hivematrix keycloak configure` against the contract fake of Keycloak's admin REST API
(v26) in :mod:`tests.fakes.keycloak`."""

from __future__ import annotations

import json
import re
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from hivematrix.cli import main
from hivematrix.cli.keycloak import KeycloakSettings, KeycloakSetupError, configure, connect
from hivematrix.common.testing import free_port
from tests.fakes.keycloak import ADMIN_PASSWORD, ADMIN_USER, FakeKeycloak, running


@pytest.fixture
def fake_keycloak() -> Iterator[FakeKeycloak]:
    with running(FakeKeycloak()) as keycloak:
        yield keycloak


@pytest.fixture
def tls_keycloak() -> Iterator[FakeKeycloak]:
    """The fake over HTTPS with a self-signed certificate."""
    with running(FakeKeycloak(), tls=True) as keycloak:
        yield keycloak


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
