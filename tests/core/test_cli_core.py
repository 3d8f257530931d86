"""The CLI's Core commands: `init` (hashed service secrets), `service-secret`, `keys rotate`.

The last test runs Core and the template as real processes and checks service tokens and user
tokens across them.
"""

import hashlib
import json
import os
import stat
import time
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from click.testing import CliRunner
from dotenv import dotenv_values
from flask import Flask
from flask.testing import FlaskClient

from hivematrix.cli import main
from hivematrix.common.auth import InvalidToken, JWKSCache, TokenVerifier
from hivematrix.common.registry import discover_services
from hivematrix.common.service_client import ServiceAuthError, ServiceClient
from hivematrix.common.testing import (
    FakeIdentityProvider,
    ServiceProcess,
    basic_auth,
    free_port,
    serve_wsgi,
)
from hivematrix.core.service_secrets import ServiceSecrets
from tests.core.conftest import exchange

#: These tests do not depend on Core's database; run them on SQLite only.
sqlite_only = pytest.mark.parametrize("core_database_url", ["sqlite"], indirect=True)


def run_cli(home: Path, *args: str) -> str:
    result = CliRunner().invoke(main, list(args), env={"HIVEMATRIX_HOME": str(home)},
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def secrets_path(home: Path) -> Path:
    return home / "core" / "service-secrets.json"


def service_secret(home: Path, service: str) -> str:
    return str(dotenv_values(home / service / ".flaskenv")["SERVICE_SECRET"])


def mint(core: FlaskClient, caller: str, secret: str, target: str = "codex") -> Any:
    return core.post("/service-token", json={"calling_service": caller, "target_service": target},
                     headers=basic_auth(caller, secret))


# --- init -----------------------------------------------------------------------------------

def test_init_registers_only_hashes_of_service_secrets(hm_home: Path) -> None:
    run_cli(hm_home, "init")
    path = secrets_path(hm_home)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    hashes = json.loads(path.read_text())
    services = set(discover_services())
    assert set(hashes) == services
    text = path.read_text()
    for service in services:
        secret = service_secret(hm_home, service)
        assert len(secret) >= 32
        assert hashes[service] == sha256(secret)
        assert secret not in text
        assert ServiceSecrets(path).verify(service, secret)
    assert len({hashes[service] for service in services}) == len(services)  # one each


def test_init_again_keeps_secrets_and_hashes(hm_home: Path) -> None:
    run_cli(hm_home, "init")
    before = secrets_path(hm_home).read_text()
    secrets_before = {service: service_secret(hm_home, service) for service in discover_services()}
    run_cli(hm_home, "init")
    assert secrets_path(hm_home).read_text() == before
    assert {service: service_secret(hm_home, service)
            for service in discover_services()} == secrets_before


def test_init_registers_a_missing_hash_from_the_existing_secret(hm_home: Path) -> None:
    run_cli(hm_home, "init")
    path = secrets_path(hm_home)
    hashes = json.loads(path.read_text())
    del hashes["template"]
    path.write_text(json.dumps(hashes))
    secret = service_secret(hm_home, "template")
    run_cli(hm_home, "init")
    assert json.loads(path.read_text())["template"] == sha256(secret)
    assert service_secret(hm_home, "template") == secret  # the service's secret is kept


# --- service-secret -------------------------------------------------------------------------

@sqlite_only
def test_service_secret_replaces_the_secret_and_core_follows(hm_home: Path, core: FlaskClient
                                                             ) -> None:
    run_cli(hm_home, "init")
    flaskenv = hm_home / "template" / ".flaskenv"
    before = dotenv_values(flaskenv)
    hashes_before = json.loads(secrets_path(hm_home).read_text())
    old = service_secret(hm_home, "template")
    assert mint(core, "template", old).status_code == 200

    output = run_cli(hm_home, "service-secret", "template")
    assert str(flaskenv) in output.replace("\n", "")
    after = dotenv_values(flaskenv)
    new = str(after["SERVICE_SECRET"])
    assert new != old and len(new) >= 32
    assert {**after, "SERVICE_SECRET": None} == {**before, "SERVICE_SECRET": None}
    assert stat.S_IMODE(flaskenv.stat().st_mode) == 0o600
    hashes = json.loads(secrets_path(hm_home).read_text())
    assert hashes["template"] == sha256(new)
    assert {k: v for k, v in hashes.items() if k != "template"} == {
        k: v for k, v in hashes_before.items() if k != "template"}
    assert new not in secrets_path(hm_home).read_text()

    # The running Core picks the change up without a restart.
    refused = mint(core, "template", old)
    assert refused.status_code == 401
    assert refused.content_type == "application/problem+json"
    granted = mint(core, "template", new)
    assert granted.status_code == 200
    claims = jwt.decode(granted.json["token"], options={"verify_signature": False})
    assert (claims["calling_service"], claims["aud"]) == ("template", "codex")


def test_service_secret_keeps_other_settings_intact(hm_home: Path) -> None:
    run_cli(hm_home, "init")
    flaskenv = hm_home / "template" / ".flaskenv"
    tricky = {
        "DB_PASSWORD": "p #ss word",
        "QUOTED": "it's \"quoted\"",
        "BACKSLASH": "C:\\hive\\matrix",
        "LITERAL_DOLLAR": "${NOT_EXPANDED}",
        "LEADING_SPACE": " x",
    }
    with flaskenv.open("a") as out:
        out.write("DB_PASSWORD='p #ss word'\n")
        out.write("QUOTED='it\\'s \"quoted\"'\n")
        out.write("BACKSLASH='C:\\\\hive\\\\matrix'\n")
        out.write("LITERAL_DOLLAR='${NOT_EXPANDED}'\n")
        out.write("LEADING_SPACE=' x'\n")
    before = dotenv_values(flaskenv, interpolate=False)
    assert {key: before[key] for key in tricky} == tricky
    run_cli(hm_home, "service-secret", "template")
    after = dotenv_values(flaskenv, interpolate=False)
    assert {key: after[key] for key in tricky} == tricky
    assert after["SECRET_KEY"] == before["SECRET_KEY"]
    assert after["SERVICE_SECRET"] != before["SERVICE_SECRET"]
    # init (which adds missing keys) rewrites the file the same careful way.
    lines = [line for line in flaskenv.read_text().splitlines()
             if not line.startswith("CORE_SERVICE_URL=")]
    flaskenv.write_text("\n".join(lines) + "\n")
    run_cli(hm_home, "init")
    again = dotenv_values(flaskenv, interpolate=False)
    assert {key: again[key] for key in tricky} == tricky
    assert again["SERVICE_SECRET"] == after["SERVICE_SECRET"] and again["CORE_SERVICE_URL"]


def test_service_secret_for_an_unknown_service_is_refused(hm_home: Path) -> None:
    run_cli(hm_home, "init")
    before = secrets_path(hm_home).read_text()
    result = CliRunner().invoke(main, ["service-secret", "nosuch"],
                                env={"HIVEMATRIX_HOME": str(hm_home)})
    assert result.exit_code != 0
    assert "unknown service 'nosuch'" in result.output
    assert secrets_path(hm_home).read_text() == before
    assert not (hm_home / "nosuch").exists()


def test_core_notices_a_new_secret_even_when_the_file_time_does_not_change(
        hm_home: Path) -> None:
    """File systems with coarse timestamps can give two quick writes the same mtime."""
    path = secrets_path(hm_home)
    ServiceSecrets(path).store("template", "old-secret")
    running_core = ServiceSecrets(path)
    assert running_core.verify("template", "old-secret")
    before = path.stat()
    ServiceSecrets(path).store("template", "new-secret")  # `hivematrix service-secret`
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert running_core.verify("template", "new-secret")
    assert not running_core.verify("template", "old-secret")


# --- keys rotate ----------------------------------------------------------------------------

def jwks_kids(core: FlaskClient) -> list[str]:
    return [key["kid"] for key in core.get("/.well-known/jwks.json").json["keys"]]


@sqlite_only
def test_keys_rotate_publishes_both_keys_and_old_tokens_stay_valid(
        hm_home: Path, core_app: Flask, core: FlaskClient, idp: FakeIdentityProvider) -> None:
    idp.add_user("at-1", sub="kim", groups=["technicians"])
    old_token = exchange(core, "at-1")
    old_kid = jwt.get_unverified_header(old_token)["kid"]
    assert jwks_kids(core) == [old_kid]

    output = run_cli(hm_home, "keys", "rotate")
    ring = json.loads((hm_home / "keys" / "keyring.json").read_text())
    new_kid = ring["current"]
    assert new_kid != old_kid
    assert new_kid in output.replace("\n", "") and old_kid in output.replace("\n", "")
    assert stat.S_IMODE((hm_home / "keys" / f"{new_kid}.pem").stat().st_mode) == 0o600

    time.sleep(1.1)  # the running Core looks at the key files at most once a second
    assert sorted(jwks_kids(core)) == sorted([old_kid, new_kid])
    new_token = exchange(core, "at-1")
    assert jwt.get_unverified_header(new_token)["kid"] == new_kid

    for token in (old_token, new_token):
        answer = core.post("/api/token/validate", json={"token": token})
        assert answer.status_code == 200 and answer.json["valid"] is True
    with serve_wsgi(core_app) as url:
        verifier = TokenVerifier(jwks=JWKSCache(f"{url}/.well-known/jwks.json"),
                                 service_name="codex")
        assert verifier.verify(old_token).subject == "kim"
        assert verifier.verify(new_token).subject == "kim"


# --- real processes -------------------------------------------------------------------------

def register(home: Path, **ports: int) -> None:
    """Point ``services.json`` at where the test's processes listen; add a codex entry."""
    path = home / "services.json"
    services = json.loads(path.read_text())
    for name, port in ports.items():
        services.setdefault(name, {}).update(url=f"http://127.0.0.1:{port}", port=port)
    services.setdefault("codex", {"url": "http://127.0.0.1:9", "port": 9})
    path.write_text(json.dumps(services))


@pytest.mark.processes
def test_core_and_template_processes_agree_on_tokens(hm_home: Path,
                                                     idp: FakeIdentityProvider) -> None:
    run_cli(hm_home, "init")
    core_port, template_port = free_port(), free_port()
    register(hm_home, core=core_port, template=template_port)
    services_file = str(hm_home / "services.json")
    template_secret = service_secret(hm_home, "template")
    idp.add_user("at-tina", sub="tina", groups=["technicians"])

    with ServiceProcess("core", hm_home, port=core_port,
                        env={"OIDC_ISSUER_URL": idp.issuer}) as core, \
         ServiceProcess("template", hm_home, port=template_port,
                        env={"CORE_SERVICE_URL": core.url}) as template:
        assert httpx.get(f"{core.url}/health").json()["checks"]["session_store"]["type"] == "sql"
        jwks = JWKSCache(f"{core.url}/.well-known/jwks.json")

        # The template obtains a service token for codex with the secret `init` gave it ...
        client = ServiceClient(service_name="template", secret=template_secret,
                               core_url=core.url, services_file=services_file)
        service_token = client.token_for("codex")
        principal = TokenVerifier(jwks=jwks, service_name="codex").verify(service_token)
        assert principal.is_service and principal.service == "template"
        # ... which no other service accepts.
        with pytest.raises(InvalidToken):
            TokenVerifier(jwks=jwks, service_name="ledger").verify(service_token)
        # A wrong secret gets nothing; nor does a service asking for itself.
        with pytest.raises(ServiceAuthError):
            ServiceClient(service_name="template", secret="wrong", core_url=core.url,
                          services_file=services_file).token_for("codex")
        assert httpx.post(f"{core.url}/service-token",
                          json={"calling_service": "template", "target_service": "template"},
                          auth=("template", template_secret)).status_code == 400

        # A user token from Core's exchange is accepted by the running template.
        exchanged = httpx.post(f"{core.url}/api/token/exchange",
                               json={"access_token": "at-tina"})
        assert exchanged.status_code == 200, exchanged.text
        user_token = exchanged.json()["token"]
        data = httpx.get(f"{template.url}/api/data",
                         headers={"Authorization": f"Bearer {user_token}"})
        assert data.status_code == 200, data.text
        assert data.json()["caller"] == "user"
        assert data.json()["permission_level"] == "technician"

    # The session outlives Core's process: a new one still validates, then revokes, it.
    with ServiceProcess("core", hm_home, port=core_port,
                        env={"OIDC_ISSUER_URL": idp.issuer}) as core:
        answer = httpx.post(f"{core.url}/api/token/validate", json={"token": user_token})
        assert answer.status_code == 200 and answer.json()["valid"] is True
        assert answer.json()["user"]["sub"] == "tina"
        assert httpx.post(f"{core.url}/api/token/revoke",
                          json={"token": user_token}).status_code == 200
        answer = httpx.post(f"{core.url}/api/token/validate", json={"token": user_token})
        assert answer.status_code == 401 and answer.json()["valid"] is False
