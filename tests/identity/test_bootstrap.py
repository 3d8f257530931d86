"""First start and restarts: signing key, first administrator, core-client, master_config.json."""

from __future__ import annotations

import json
import logging
import stat
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from hivematrix.identity import accounts, bootstrap, create_app
from hivematrix.identity.bootstrap import StartupError
from hivematrix.identity.models import OAuthClient
from hivematrix.identity.passwords import verify_password

from .conftest import OIDC


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def restart(settings: dict[str, Any], **overrides: Any) -> Flask:
    app = create_app({**settings, **overrides})
    app.extensions["hivematrix.db"].dispose()
    return app


def test_first_start_creates_admin_with_random_temporary_password(
        settings: dict[str, Any], hm_home: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="hivematrix.identity.bootstrap"):
        app = create_app(settings)
    path = hm_home / "initial-admin-password"
    password = path.read_text().strip()
    assert mode(path) == 0o600
    assert password != "admin" and len(password) >= 20
    announced = [r for r in caplog.records if r.levelno == logging.WARNING and password in
                 r.getMessage()]
    assert len(announced) == 1
    with app.extensions["hivematrix.db"].transaction() as session:
        admin = accounts.get_user(session, "admin")
        assert admin.group_names == ["admins"] and admin.must_change_password
        assert verify_password(admin.password_hash, password)
        assert not verify_password(admin.password_hash, "admin")
    app.extensions["hivematrix.db"].dispose()


def test_restart_keeps_admin_secret_and_key(settings: dict[str, Any], hm_home: Path,
                                            caplog: pytest.LogCaptureFixture) -> None:
    first = create_app(settings)
    password = (hm_home / "initial-admin-password").read_text()
    master = json.loads((hm_home / "configs" / "master_config.json").read_text())
    kid = first.test_client().get(f"{OIDC}/certs").json["keys"][0]["kid"]
    first.extensions["hivematrix.db"].dispose()
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="hivematrix.identity.bootstrap"):
        second = create_app(settings)
    assert not [r for r in caplog.records if "First start" in r.getMessage()]
    assert (hm_home / "initial-admin-password").read_text() == password
    assert json.loads((hm_home / "configs" / "master_config.json").read_text()) == master
    assert second.test_client().get(f"{OIDC}/certs").json["keys"][0]["kid"] == kid
    with second.extensions["hivematrix.db"].transaction() as session:
        assert len(accounts.list_users(session)) == 1
    second.extensions["hivematrix.db"].dispose()


def test_master_config_gets_keycloak_section_and_keeps_the_rest(settings: dict[str, Any],
                                                                hm_home: Path) -> None:
    path = hm_home / "configs" / "master_config.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"system": {"hostname": "msp"}, "keycloak": {"url": "old"}}))
    path.chmod(0o644)
    app = restart(settings, IDENTITY_ISSUER="https://hm.example.test/keycloak/realms/hivematrix")
    config = json.loads(path.read_text())
    assert config["system"] == {"hostname": "msp"}
    section = config["keycloak"]
    assert section["url"] == "https://hm.example.test/keycloak"
    assert (section["realm"], section["client_id"]) == ("hivematrix", "core-client")
    assert len(section["client_secret"]) >= 32
    assert mode(path) == 0o600
    with app.extensions["hivematrix.db"].transaction() as session:
        client = session.query(OAuthClient).one()
        assert client.client_secret == section["client_secret"]


def test_keycloak_url_comes_from_services_json(settings: dict[str, Any], hm_home: Path) -> None:
    (hm_home / "services.json").write_text(json.dumps(
        {"identity": {"url": "http://127.0.0.1:18080", "port": 18080}}))
    restart(settings)
    config = json.loads((hm_home / "configs" / "master_config.json").read_text())
    assert config["keycloak"]["url"] == "http://127.0.0.1:18080"


def test_redirect_uris_are_updated_on_each_start(settings: dict[str, Any]) -> None:
    restart(settings)
    app = restart(settings, IDENTITY_REDIRECT_URIS="https://hm.example.test/keycloak-callback")
    with app.extensions["hivematrix.db"].transaction() as session:
        client = session.query(OAuthClient).one()
        assert client.redirect_uris == ["https://hm.example.test/keycloak-callback"]
        assert client.client_metadata["post_logout_redirect_uris"] == [
            "https://hm.example.test/keycloak-callback", "https://hm.example.test/",
            "https://hm.example.test/logged-out"]


@pytest.mark.parametrize(("name", "value"), [
    ("IDENTITY_REDIRECT_URIS", "not-a-url"),
    ("IDENTITY_REDIRECT_URIS", "  "),
    ("IDENTITY_REDIRECT_URIS", "https://x.test/cb#frag"),
    ("IDENTITY_POST_LOGOUT_REDIRECT_URIS", "ftp://x.test/"),
    ("IDENTITY_PASSWORD_MIN_LENGTH", 8),
    ("IDENTITY_LOCKOUT_THRESHOLD", 0),
])
def test_unusable_settings_stop_the_app(settings: dict[str, Any], name: str, value: Any) -> None:
    with pytest.raises(StartupError, match=name):
        create_app({**settings, name: value})


def test_signing_key_file_is_private_and_serves_the_jwks(app: Flask, hm_home: Path) -> None:
    path = hm_home / "identity" / "keys" / "signing.pem"
    assert mode(path) == 0o600
    key = bootstrap.load_or_create_signing_key(path)
    jwks = app.test_client().get(f"{OIDC}/certs").json
    assert jwks["keys"][0]["kid"] == key.kid and "d" not in jwks["keys"][0]


@pytest.mark.parametrize("content", [b"garbage", b"", b"-----BEGIN PRIVATE KEY-----\nAAAA\n"])
def test_corrupt_signing_key_stops_create_app(settings: dict[str, Any], hm_home: Path,
                                              content: bytes) -> None:
    path = hm_home / "identity" / "keys" / "signing.pem"
    path.parent.mkdir(parents=True)
    path.write_bytes(content)
    with pytest.raises(StartupError, match=r"signing key .*signing\.pem.* corrupt"):
        create_app(settings)


def test_corrupt_master_config_stops_create_app(settings: dict[str, Any], hm_home: Path) -> None:
    path = hm_home / "configs" / "master_config.json"
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    with pytest.raises(StartupError, match=r"master_config\.json"):
        create_app(settings)


def test_unmigrated_database_bootstraps_on_first_request_after_upgrade(
        service_settings: dict[str, Any], tmp_path: Path, hm_home: Path) -> None:
    from hivematrix.common import db

    url = f"sqlite:///{tmp_path}/late.db"
    app = create_app({**service_settings, "DATABASE_URL": url})
    client = app.test_client()
    health = client.get("/health").json
    assert health["status"] == "degraded"
    assert "db upgrade identity" in health["checks"]["setup"]["error"]
    assert not (hm_home / "initial-admin-password").exists()
    db.upgrade("hivematrix.identity", url)
    assert client.get("/health").json["status"] == "healthy"
    assert (hm_home / "initial-admin-password").exists()
    app.extensions["hivematrix.db"].dispose()


def test_bootstrap_database_is_idempotent(database, hm_home: Path) -> None:
    settings = bootstrap.BootstrapSettings(
        home=hm_home, realm="hivematrix", public_url="http://127.0.0.1:8080",
        client=bootstrap.ClientSettings("core-client", ["http://a.test/cb"], []),
        setup_token=False)
    first = bootstrap.bootstrap_database(database, settings)
    second = bootstrap.bootstrap_database(database, settings)
    assert first.admin_password and second.admin_password is None
    assert first.client_secret == second.client_secret


def test_unreachable_database_does_not_stop_the_app(service_settings: dict[str, Any],
                                                    hm_home: Path) -> None:
    from hivematrix.common.testing import free_port

    url = f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/identity"
    app = create_app({**service_settings, "DATABASE_URL": url})
    response = app.test_client().get("/health")
    assert response.status_code == 503  # the kit's database check is critical
    setup = response.json["checks"]["setup"]
    assert setup["status"] == "degraded" and "database unavailable" in setup["error"]
    app.extensions["hivematrix.db"].dispose()
