"""Which services exist, who may see them, and where a user lands: ``services.json`` read live."""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hivematrix.common.registry import read_services

#: Never reachable through the gateway (identity's public OIDC paths go through /keycloak).
NOT_PROXIED = frozenset({"core", "identity", "nexus"})


@dataclass(frozen=True)
class ServiceEntry:
    name: str
    url: str
    title: str
    visible: bool
    admin_only: bool
    billing_or_admin_only: bool
    proxied: bool

    @classmethod
    def from_json(cls, name: str, entry: dict[str, Any]) -> ServiceEntry | None:
        url = entry.get("url")
        if not isinstance(url, str) or not url:
            return None
        return cls(name=name, url=url.rstrip("/"),
                   title=str(entry.get("title") or name.replace("-", " ").title()),
                   visible=bool(entry.get("visible", True)),
                   admin_only=bool(entry.get("admin_only", False)),
                   billing_or_admin_only=bool(entry.get("billing_or_admin_only", False)),
                   proxied=name not in NOT_PROXIED and entry.get("proxy", True) is not False)

    def allows(self, permission_level: str | None) -> bool:
        """Whether a user at this level may use the service (enforced at the edge)."""
        if self.admin_only:
            return permission_level == "admin"
        if self.billing_or_admin_only:
            return permission_level in ("admin", "billing")
        return permission_level is not None


class ServiceDirectory:
    """``services.json``, re-read when the file changes (no restart needed)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._stamp: tuple[int, int] | None = None
        self._entries: dict[str, ServiceEntry] = {}
        self._checked_at = float("-inf")
        self._lock = threading.Lock()

    #: How often the file is looked at (a stat per request adds up at the gateway).
    CHECK_SECONDS = 1.0

    def entries(self) -> dict[str, ServiceEntry]:
        if time.monotonic() - self._checked_at < self.CHECK_SECONDS:
            return self._entries
        self._checked_at = time.monotonic()
        try:
            stat = os.stat(self.path)
            stamp = (stat.st_mtime_ns, stat.st_ino)
        except FileNotFoundError:
            stamp = (0, 0)
        with self._lock:
            if stamp != self._stamp:
                raw = read_services(self.path)
                entries = (ServiceEntry.from_json(name, value) for name, value in raw.items()
                           if isinstance(value, dict))
                self._entries = {entry.name: entry for entry in entries if entry is not None}
                self._stamp = stamp
            return self._entries

    def get(self, name: str) -> ServiceEntry | None:
        return self.entries().get(name)

    def navigation(self, permission_level: str | None) -> list[ServiceEntry]:
        """The side navigation's entries for a user, in services.json order."""
        return [entry for entry in self.entries().values()
                if entry.visible and entry.proxied and entry.allows(permission_level)]

    def home(self, permission_level: str | None, preferred: str | None = None) -> str | None:
        """Where ``/`` sends a user: their preference if they may use it, else the first entry."""
        choices = self.navigation(permission_level)
        names = [entry.name for entry in choices]
        if preferred in names:
            return preferred
        return names[0] if names else None
