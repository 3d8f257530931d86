"""Per-service secrets that services present to obtain service tokens.

Core keeps only SHA-256 hashes, in ``$HIVEMATRIX_HOME/core/service-secrets.json`` (mode 0600).
A plain hash suffices because the secrets are long random strings, not passwords people chose.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
from pathlib import Path

from hivematrix.common.registry import write_json

SERVICE_NAME = re.compile(r"^[a-z0-9_-]{1,50}$")


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def new_secret() -> str:
    return secrets.token_urlsafe(48)


class ServiceSecrets:
    """The hash file, re-read when it changes (``hivematrix service-secret`` writes it)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._hashes: dict[str, str] = {}
        self._version: tuple[int, int, int] | None = None

    def _current(self) -> dict[str, str]:
        try:
            info = self.path.stat()
        except FileNotFoundError:
            return {}
        # Not the mtime alone: with coarse file timestamps two quick writes share one. Every
        # write replaces the file, so the inode changes too.
        version = (info.st_ino, info.st_mtime_ns, info.st_size)
        if version != self._version:
            self._hashes = json.loads(self.path.read_text(encoding="utf-8"))
            self._version = version
        return self._hashes

    def verify(self, service: str, secret: str) -> bool:
        """True when ``secret`` is ``service``'s secret (constant-time comparison)."""
        expected = self._current().get(service)
        return expected is not None and hmac.compare_digest(expected, hash_secret(secret))

    def known(self, service: str) -> bool:
        return service in self._current()

    def store(self, service: str, secret: str) -> None:
        """Record (or replace) a service's secret."""
        if not SERVICE_NAME.match(service):
            raise ValueError(f"invalid service name {service!r}")
        hashes = dict(self._current())
        hashes[service] = hash_secret(secret)
        write_json(self.path, hashes, mode=0o600)
