"""The security audit and test tokens."""

from __future__ import annotations

import json
import socket
from datetime import timedelta
from pathlib import Path

import jwt
import pytest
from click.testing import CliRunner

from hivematrix.cli import main
from hivematrix.common.testing import free_port
from hivematrix.core import tokens
from hivematrix.core.keyring import KeyRing
from hivematrix.helm import audit
from hivematrix.helm.audit import Listener
from hivematrix.helm.tokens import parse_ttl

SERVICES = {"core": {"port": 5000}, "nexus": {"port": 443}, "codex": {"port": 5010}}


def run_cli(home: Path, *args: str, ok: bool = True) -> str:
    result = CliRunner().invoke(main, list(args), env={"HIVEMATRIX_HOME": str(home)})
    if ok:
        assert result.exit_code == 0, result.output
    return result.output


def test_only_the_gateway_may_face_the_network() -> None:
    report = audit.audit(SERVICES, [
        Listener("0.0.0.0", 443), Listener("127.0.0.1", 5000),
        Listener("0.0.0.0", 5010, 7, "python3"),
        Listener("0.0.0.0", 22), Listener("::", 9100, 8, "node_exporter"),
        Listener("::1", 6379)], firewall="inactive")
    by_service = {f.service: f for f in report.findings if f.service}
    assert by_service["nexus"].severity == "none"
    assert by_service["core"].severity == "none"
    assert by_service["codex"].severity == "high"
    assert "0.0.0.0:5010" in by_service["codex"].message
    others = [f for f in report.findings if f.service is None]
    assert any("9100 (node_exporter)" in f.message and f.severity == "low" for f in others)
    assert not any(":22" in f.message for f in others)  # SSH is expected
    assert any("firewall is inactive" in f.message for f in others)
    assert report.severity == "high"


def test_a_firewall_lowers_an_exposure_and_stopped_services_are_listed() -> None:
    report = audit.audit(SERVICES, [Listener("10.0.0.5", 5010)], firewall="active")
    assert report.severity == "medium"
    assert {f.service for f in report.findings if "not running" in f.message} == {"core",
                                                                                  "nexus"}


def test_firewall_scripts_allow_ssh_and_nexus_only() -> None:
    ufw = audit.ufw_script(SERVICES, [80])
    assert "ufw default deny incoming" in ufw
    assert "ufw allow 22/tcp" in ufw and "ufw allow 443/tcp" in ufw and "ufw allow 80/tcp" in ufw
    assert "ufw deny 5000/tcp comment 'HiveMatrix core (internal)'" in ufw
    assert "ufw allow 5010" not in ufw
    iptables = audit.iptables_script(SERVICES)
    assert "iptables -P INPUT DROP" in iptables and "ip6tables -P INPUT DROP" in iptables
    assert "--dport 443 -j ACCEPT" in iptables and "--dport 5000" not in iptables


def test_the_audit_sees_a_real_socket_listening_everywhere(hm_home: Path) -> None:
    port = free_port()
    (hm_home / "services.json").write_text(json.dumps({"template": {"port": port}}))
    with socket.socket() as exposed:
        exposed.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        exposed.bind(("0.0.0.0", port))
        exposed.listen()
        result = CliRunner().invoke(main, ["security", "audit"], env={
            "HIVEMATRIX_HOME": str(hm_home), "COLUMNS": "200"})
    assert result.exit_code in (0, 2), result.output
    assert f"0.0.0.0:{port}" in result.output and "must listen on 127.0.0.1" in result.output
    if audit.firewall_status() != "active":
        assert result.exit_code == 2


def test_generated_scripts_are_written(hm_home: Path, tmp_path: Path) -> None:
    (hm_home / "services.json").write_text(json.dumps(SERVICES))
    target = tmp_path / "firewall.sh"
    CliRunner().invoke(main, ["security", "audit", "--generate-firewall", str(target)],
                       env={"HIVEMATRIX_HOME": str(hm_home)})
    assert "ufw allow 443/tcp" in target.read_text()
    assert target.stat().st_mode & 0o777 == 0o700


def test_ttl_parsing() -> None:
    assert parse_ttl("30m") == timedelta(minutes=30)
    assert parse_ttl("1d") == timedelta(days=1)
    for bad in ("", "1w", "0h", "25h", "h"):
        with pytest.raises(ValueError, match=r"duration|longest"):
            parse_ttl(bad)


def test_a_test_token_verifies_with_cores_published_keys(hm_home: Path) -> None:
    ring = KeyRing.open(hm_home / "keys", publish_for=tokens.USER_TOKEN_LIFETIME)
    output = run_cli(hm_home, "token", "create", "--level", "admin", "--ttl", "10m",
                     "--user", "alice")
    token = output.strip().splitlines()[-1]
    key = ring.find(jwt.get_unverified_header(token)["kid"])
    assert key is not None
    claims = jwt.decode(token, key.private_key.public_key(), algorithms=["RS256"],
                        audience="hivematrix", issuer="hivematrix-core")
    assert claims["permission_level"] == "admin" and claims["preferred_username"] == "alice"
    assert claims["test_token"] is True
    assert 590 <= claims["exp"] - claims["iat"] <= 600


def test_test_tokens_are_refused_in_production_unless_forced(hm_home: Path) -> None:
    KeyRing.open(hm_home / "keys", publish_for=tokens.USER_TOKEN_LIFETIME)
    (hm_home / "configs").mkdir(exist_ok=True)
    (hm_home / "configs" / "master_config.json").write_text(
        json.dumps({"system": {"environment": "production"}}))
    refused = run_cli(hm_home, "token", "create", ok=False)
    assert "production" in refused
    assert run_cli(hm_home, "token", "create", "--force").strip()
    assert "25h" in run_cli(hm_home, "token", "create", "--force", "--ttl", "25h", ok=False)
