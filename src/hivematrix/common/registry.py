"""Finding services: the ``hivematrix.services`` entry points and ``services.json``.

Every service package exposes a :class:`ServiceSpec` and registers it under the entry-point
group ``hivematrix.services``, so the CLI and Helm find built-in and third-party services alike.
``services.json`` (in ``$HIVEMATRIX_HOME``) is the deployed registry: where each service listens.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from hivematrix.common.files import write_atomic

ENTRY_POINT_GROUP = "hivematrix.services"


@dataclass(frozen=True)
class ServiceSpec:
    """What the platform needs to know to run a service."""

    name: str
    #: ``"package.module:create_app"``: the app factory, as gunicorn and the CLI import it.
    factory: str
    port: int
    title: str
    description: str = ""
    #: Shown in Nexus's navigation.
    visible: bool = True
    admin_only: bool = False
    billing_or_admin_only: bool = False
    #: Package holding ``migrations/``; ``None`` for services without a database.
    migrations: str | None = None
    #: Services started before this one when they are installed (order only, not a must).
    depends_on: tuple[str, ...] = ()

    def load_factory(self) -> Callable[..., Any]:
        """Import and return the app factory."""
        from importlib import import_module

        module, _, attribute = self.factory.partition(":")
        factory: Callable[..., Any] = getattr(import_module(module), attribute)
        return factory


def discover_services() -> dict[str, ServiceSpec]:
    """All installed services, by name."""
    found: dict[str, ServiceSpec] = {}
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        spec = entry.load()
        if not isinstance(spec, ServiceSpec):
            raise TypeError(f"entry point {entry.name!r} is not a ServiceSpec: {entry.value}")
        found[spec.name] = spec
    return dict(sorted(found.items(), key=lambda item: (item[1].port, item[0])))


def services_document(specs: dict[str, ServiceSpec], host: str = "127.0.0.1") -> dict[str, Any]:
    """``services.json`` in the seed's extended format."""
    return {
        name: {
            "url": f"http://{host}:{spec.port}",
            "port": spec.port,
            "title": spec.title,
            "visible": spec.visible,
            "admin_only": spec.admin_only,
            "billing_or_admin_only": spec.billing_or_admin_only,
        }
        for name, spec in specs.items()
    }


def master_services_document(services: dict[str, Any]) -> dict[str, Any]:
    """``master_services.json``: just where each service listens."""
    return {name: {"url": entry["url"], "port": entry["port"]} for name, entry in services.items()}


def read_services(path: str | Path) -> dict[str, Any]:
    """Read ``services.json``; a missing file is an empty registry."""
    try:
        data: dict[str, Any] = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    return data


def write_json(path: Path, data: Any, mode: int = 0o644) -> None:
    """Write JSON atomically (readers never see half a file)."""
    write_atomic(path, json.dumps(data, indent=2) + "\n", mode)
