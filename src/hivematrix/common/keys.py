"""RSA signing keys identified by their RFC 7638 thumbprint, as Core publishes them in JWKS."""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def jwk_thumbprint(public_jwk: dict[str, Any]) -> str:
    """RFC 7638 thumbprint (SHA-256) of an RSA public JWK: the required members, sorted."""
    canonical = json.dumps({k: public_jwk[k] for k in ("e", "kty", "n")},
                           separators=(",", ":"), sort_keys=True)
    return _b64url(hashlib.sha256(canonical.encode("ascii")).digest())


@dataclass(frozen=True)
class SigningKey:
    """A private RSA key and its ``kid``."""

    private_key: rsa.RSAPrivateKey
    kid: str

    @classmethod
    def generate(cls, bits: int = 2048) -> SigningKey:
        return cls.from_private_key(rsa.generate_private_key(public_exponent=65537, key_size=bits))

    @classmethod
    def from_private_key(cls, private_key: rsa.RSAPrivateKey) -> SigningKey:
        public = json.loads(RSAAlgorithm.to_jwk(private_key.public_key()))
        return cls(private_key, jwk_thumbprint(public))

    @classmethod
    def from_pem(cls, pem: bytes) -> SigningKey:
        """:raises ValueError: the data is not an unencrypted RSA private key."""
        key = serialization.load_pem_private_key(pem, password=None)
        if not isinstance(key, rsa.RSAPrivateKey):
            raise ValueError("not an RSA private key")
        return cls.from_private_key(key)

    def private_pem(self) -> bytes:
        return self.private_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption())

    def public_pem(self) -> bytes:
        return self.private_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)

    def public_jwk(self) -> dict[str, Any]:
        """The public half as a JWK with ``kid``, ``alg`` and ``use``."""
        jwk: dict[str, Any] = json.loads(RSAAlgorithm.to_jwk(self.private_key.public_key()))
        return {**jwk, "kid": self.kid, "alg": "RS256", "use": "sig"}

    def sign(self, claims: dict[str, Any], headers: dict[str, Any] | None = None) -> str:
        """An RS256 JWT with this key's ``kid`` in the header."""
        return jwt.encode(claims, self.private_key, algorithm="RS256",
                          headers={"kid": self.kid, **(headers or {})})


def jwks_document(keys: list[SigningKey]) -> dict[str, Any]:
    """The JWKS document publishing ``keys``."""
    return {"keys": [key.public_jwk() for key in keys]}
