"""Core's signing keys on disk: the current key plus recently retired ones, still published.

``$HIVEMATRIX_HOME/keys/`` holds one ``<kid>.pem`` per key (mode 0600) and ``keyring.json``
naming the current key and when the others were retired. A retired key stays in the JWKS until
every token it signed has expired, then it is deleted. Missing or corrupt files are an error at
start-up, never a late failure on the first signature.
"""

from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from hivematrix.common.keys import SigningKey, jwks_document
from hivematrix.common.registry import write_json

KEYRING_FILE = "keyring.json"


class KeyRingError(RuntimeError):
    """The key files are missing, unreadable or inconsistent; Core must not start."""


@dataclass
class _Entry:
    key: SigningKey
    created_at: datetime
    retired_at: datetime | None


class KeyRing:
    """Loads, publishes and rotates Core's RSA keys. Safe to share between threads."""

    def __init__(self, folder: Path, *, publish_for: timedelta) -> None:
        self.folder = folder
        self.publish_for = publish_for
        self._entries: dict[str, _Entry] = {}
        self._current = ""
        self._loaded_version: tuple[int, int, int] | None = None
        self._checked_at = 0.0
        self._lock = threading.Lock()

    # --- loading ---------------------------------------------------------------------------

    @classmethod
    def open(cls, folder: Path, *, publish_for: timedelta, create: bool = True) -> KeyRing:
        """Load the keys; on a first start (no files at all) create the first one.

        :raises KeyRingError: files exist but cannot be used.
        """
        ring = cls(folder, publish_for=publish_for)
        if not (folder / KEYRING_FILE).exists():
            if any(folder.glob("*.pem")):
                raise KeyRingError(f"{folder} holds keys but no {KEYRING_FILE}; restore it from "
                                   "a backup or move the .pem files away to start afresh")
            if not create:
                raise KeyRingError(f"no signing keys in {folder}")
            ring._initialise()
        ring._load()
        return ring

    def _initialise(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.folder.chmod(0o700)
        key = SigningKey.generate()
        self._write_key(key)
        self._write_index({key.kid: _Entry(key, datetime.now(UTC), None)}, key.kid)

    def _load(self) -> None:
        index_path = self.folder / KEYRING_FILE
        try:
            index = json.loads(index_path.read_text(encoding="utf-8"))
            current = index["current"]
            entries = {}
            for item in index["keys"]:
                entries[item["kid"]] = _Entry(
                    self._read_key(item["kid"]),
                    datetime.fromisoformat(item["created_at"]),
                    datetime.fromisoformat(item["retired_at"]) if item.get("retired_at") else None,
                )
        except KeyRingError:
            raise
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise KeyRingError(f"{index_path} is unreadable: {exc}") from exc
        if current not in entries:
            raise KeyRingError(f"{index_path} names current key {current!r} but does not list it")
        self._entries, self._current = entries, current
        self._loaded_version = self._index_version()

    def _read_key(self, kid: str) -> SigningKey:
        path = self.folder / f"{kid}.pem"
        try:
            key = SigningKey.from_pem(path.read_bytes())
        except FileNotFoundError:
            raise KeyRingError(f"signing key file {path} is missing") from None
        except ValueError as exc:
            raise KeyRingError(f"signing key file {path} is corrupt: {exc}") from exc
        if key.kid != kid:
            raise KeyRingError(f"{path} holds key {key.kid}, not {kid}")
        return key

    def reload_if_changed(self) -> None:
        """Pick up a rotation made by ``hivematrix keys rotate`` (checked at most once a second)."""
        now = time.monotonic()
        if now - self._checked_at < 1.0:
            return
        with self._lock:
            self._checked_at = now
            try:
                version = self._index_version()
            except OSError:
                return
            if version != self._loaded_version:
                self._load()

    def _index_version(self) -> tuple[int, int, int]:
        # The index is replaced atomically, so a new inode means a new version even where
        # timestamps are coarse.
        info = (self.folder / KEYRING_FILE).stat()
        return info.st_ino, info.st_mtime_ns, info.st_size

    # --- use -------------------------------------------------------------------------------

    @property
    def current(self) -> SigningKey:
        """The key new tokens are signed with."""
        self.reload_if_changed()
        return self._entries[self._current].key

    def published(self, now: datetime | None = None) -> list[SigningKey]:
        """The current key and the retired keys whose tokens may still be valid."""
        self.reload_if_changed()
        now = now or datetime.now(UTC)
        return [entry.key for entry in self._entries.values()
                if entry.retired_at is None or now < entry.retired_at + self.publish_for]

    def find(self, kid: str) -> SigningKey | None:
        """A published key by ``kid``."""
        return next((key for key in self.published() if key.kid == kid), None)

    def jwks(self) -> dict[str, Any]:
        return jwks_document(self.published())

    # --- rotation --------------------------------------------------------------------------

    def rotate(self, now: datetime | None = None) -> SigningKey:
        """Make a new current key; retire the old one; delete keys nobody can need any more."""
        now = now or datetime.now(UTC)
        with self._lock:
            key = SigningKey.generate()
            self._write_key(key)
            entries = dict(self._entries)
            entries[self._current].retired_at = now
            expired = [kid for kid, entry in entries.items()
                       if entry.retired_at and now >= entry.retired_at + self.publish_for]
            for kid in expired:
                del entries[kid]
            entries[key.kid] = _Entry(key, now, None)
            self._write_index(entries, key.kid)
            for kid in expired:
                (self.folder / f"{kid}.pem").unlink(missing_ok=True)
            self._load()
        return key

    def _write_key(self, key: SigningKey) -> None:
        path = self.folder / f"{key.kid}.pem"
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "wb") as out:
            out.write(key.private_pem())

    def _write_index(self, entries: dict[str, _Entry], current: str) -> None:
        write_json(self.folder / KEYRING_FILE, {
            "current": current,
            "keys": [{"kid": kid, "created_at": entry.created_at.isoformat(),
                      "retired_at": entry.retired_at.isoformat() if entry.retired_at else None}
                     for kid, entry in entries.items()],
        }, mode=0o600)
