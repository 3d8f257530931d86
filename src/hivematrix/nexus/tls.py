"""Nexus's TLS certificate: a self-signed one to start with, a real one installed later.

Files live in ``$HIVEMATRIX_HOME/nexus/tls/`` (``cert.pem``, and ``key.pem`` with mode 0600).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from hivematrix.common.files import write_atomic


class CertificateError(ValueError):
    """The certificate or key cannot be used; the message says why."""


@dataclass(frozen=True)
class CertificateInfo:
    subject: str
    names: list[str]
    not_after: datetime
    self_signed: bool


def tls_dir(home: Path) -> Path:
    return home / "nexus" / "tls"


def cert_path(home: Path) -> Path:
    return tls_dir(home) / "cert.pem"


def key_path(home: Path) -> Path:
    return tls_dir(home) / "key.pem"


def _san(names: list[str]) -> x509.SubjectAlternativeName:
    entries: list[x509.GeneralName] = []
    for name in names:
        try:
            entries.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            entries.append(x509.DNSName(name))
    return x509.SubjectAlternativeName(entries)


def self_signed(hostname: str, extra_names: list[str] | None = None,
                days: int = 825) -> tuple[bytes, bytes]:
    """A certificate and key (PEM) for ``hostname`` and ``extra_names`` (names or IPs)."""
    key = ec.generate_private_key(ec.SECP256R1())
    names = list(dict.fromkeys([hostname, *(extra_names or [])]))
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname),
                         x509.NameAttribute(NameOID.ORGANIZATION_NAME, "HiveMatrix")])
    now = datetime.now(UTC)
    cert = (x509.CertificateBuilder()
            .subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(now + timedelta(days=days))
            .add_extension(_san(names), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


def check_pair(cert_pem: bytes, key_pem: bytes) -> CertificateInfo:
    """Parse both, and make sure the key belongs to the certificate and it is still valid.

    :raises CertificateError: they are unreadable, do not match, or the certificate expired.
    """
    try:
        chain = x509.load_pem_x509_certificates(cert_pem)
    except ValueError as exc:
        raise CertificateError(f"the certificate is not PEM: {exc}") from exc
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError) as exc:
        raise CertificateError(f"the key is not an unencrypted PEM private key: {exc}") from exc
    cert = chain[0]
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise CertificateError("only RSA and EC keys are supported")
    public = serialization.PublicFormat.SubjectPublicKeyInfo
    if (key.public_key().public_bytes(serialization.Encoding.DER, public)
            != cert.public_key().public_bytes(serialization.Encoding.DER, public)):
        raise CertificateError("the key does not belong to the certificate")
    if cert.not_valid_after_utc <= datetime.now(UTC):
        raise CertificateError(f"the certificate expired on {cert.not_valid_after_utc:%Y-%m-%d}")
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = [str(n) for n in san.get_values_for_type(x509.DNSName)]
        names += [str(ip) for ip in san.get_values_for_type(x509.IPAddress)]
    except x509.ExtensionNotFound:
        names = []
    return CertificateInfo(cert.subject.rfc4514_string(), names, cert.not_valid_after_utc,
                           cert.issuer == cert.subject)


def install(home: Path, cert_pem: bytes, key_pem: bytes) -> CertificateInfo:
    """Check and install a pair (replacing the current one atomically, file by file)."""
    info = check_pair(cert_pem, key_pem)
    # Written as PKCS#8 whatever it came as (certbot's RSA keys are PKCS#1): the server wants it.
    key = serialization.load_pem_private_key(key_pem, password=None)
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    write_atomic(key_path(home), key_pem, 0o600)
    write_atomic(cert_path(home), cert_pem, 0o644)
    return info


def installed(home: Path) -> CertificateInfo | None:
    """The installed pair, if any. :raises CertificateError: it is broken."""
    if not cert_path(home).exists():
        return None
    return check_pair(cert_path(home).read_bytes(), key_path(home).read_bytes())
