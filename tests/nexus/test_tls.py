"""Nexus's certificate handling, and Nexus serving HTTPS with a plain-HTTP redirect."""

from __future__ import annotations

import ssl
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from hivematrix.cli import main
from hivematrix.common.testing import ServiceProcess, free_port
from hivematrix.nexus import tls


def expired_pair() -> tuple[bytes, bytes]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "old.example.test")])
    now = datetime.now(UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(1)
            .not_valid_before(now - timedelta(days=30)).not_valid_after(now - timedelta(days=1))
            .sign(key, hashes.SHA256()))
    return (cert.public_bytes(serialization.Encoding.PEM),
            key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()))


def test_self_signed_names_hosts_and_addresses() -> None:
    cert, key = tls.self_signed("hm.example.test", ["10.1.2.3", "localhost"])
    info = tls.check_pair(cert, key)
    assert info.self_signed and "CN=hm.example.test" in info.subject
    assert set(info.names) == {"hm.example.test", "localhost", "10.1.2.3"}
    assert info.not_after > datetime.now(UTC) + timedelta(days=300)


@pytest.mark.parametrize(("pair", "message"), [
    (lambda: (tls.self_signed("a.test")[0], tls.self_signed("b.test")[1]), "does not belong"),
    (expired_pair, "expired"),
    (lambda: (b"not a certificate", tls.self_signed("a.test")[1]), "not PEM"),
    (lambda: (tls.self_signed("a.test")[0], b"nope"), "private key"),
])
def test_unusable_pairs_are_refused(pair, message: str) -> None:
    cert, key = pair()
    with pytest.raises(tls.CertificateError, match=message):
        tls.check_pair(cert, key)


def test_cli_installs_a_pair_with_a_private_key_file(hm_home: Path, tmp_path: Path) -> None:
    cert, key = tls.self_signed("hm.example.test")
    (tmp_path / "cert.pem").write_bytes(cert)
    (tmp_path / "key.pem").write_bytes(key)
    result = CliRunner().invoke(main, ["tls", "install", str(tmp_path / "cert.pem"),
                                       str(tmp_path / "key.pem")])
    assert result.exit_code == 0, result.output
    assert tls.cert_path(hm_home).read_bytes() == cert
    assert tls.key_path(hm_home).stat().st_mode & 0o777 == 0o600
    assert "hm.example.test" in CliRunner().invoke(main, ["tls", "show"]).output

    (tmp_path / "other.pem").write_bytes(tls.self_signed("other.test")[1])
    refused = CliRunner().invoke(main, ["tls", "install", str(tmp_path / "cert.pem"),
                                        str(tmp_path / "other.pem")])
    assert refused.exit_code != 0 and "does not belong" in refused.output
    assert tls.key_path(hm_home).read_bytes() == key  # nothing half-replaced


@pytest.mark.processes
def test_nexus_serves_https_with_hsts_and_redirects_plain_http(hm_home: Path) -> None:
    assert CliRunner().invoke(main, ["init"]).exit_code == 0
    redirect_port = free_port()
    env = {"NEXUS_TLS": "true", "NEXUS_HOSTNAME": "hm.example.test",
           "NEXUS_HTTP_REDIRECT_PORT": str(redirect_port)}
    with ServiceProcess("nexus", hm_home, env=env, https=True) as nexus:
        info = tls.installed(hm_home)
        assert info is not None and "127.0.0.1" in info.names  # made on first start
        context = ssl.create_default_context(cafile=str(tls.cert_path(hm_home)))
        health = httpx.get(f"{nexus.url}/health", verify=context)
        assert health.status_code == 200
        assert health.headers["Strict-Transport-Security"].startswith("max-age=")
        plain = httpx.get(f"http://127.0.0.1:{redirect_port}/template/?a=1")
        assert plain.status_code == 308
        assert plain.headers["Location"] == f"https://127.0.0.1:{nexus.port}/template/?a=1"
