"""Which services the platform runs, and on which port: ``$HIVEMATRIX_HOME/apps_registry.json``.

The registry is the source of truth. ``services.json`` and ``master_services.json`` (read by
Nexus, Core and ``call_service``) are generated from it by :func:`write_service_documents`.

``apps_registry.json``::

    {
      "services": {
        "<name>": {"depends_on": ["core"], "enabled": true, "port": 5040, "source": "builtin"}
      },
      "services_json_sha256": "<hex>"
    }

``source`` is ``"builtin"`` for the services shipped in the ``hivematrix`` distribution, else
what the package was installed from (a VCS URL, a path, ``name==version``), ``"unknown"`` when
that cannot be told. ``services_json_sha256`` is bookkeeping: the digest of the
``services.json`` last written from the registry. When there is no registry yet (an older
home being migrated), or ``services.json`` no longer matches that digest (an operator edited it
by hand), the ports it names are taken as the operator's choices and adopted into the
registry; otherwise the registry wins and ``services.json`` is regenerated. Ports are best
changed in ``apps_registry.json`` followed by ``hivematrix update-config``.

Everything here is deterministic: the same registry and installed services give the same bytes.
"""

from __future__ import annotations

import hashlib
import heapq
import importlib.util
import json
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from importlib.metadata import Distribution, entry_points
from pathlib import Path
from typing import Any, TypeGuard
from urllib.parse import urlsplit

from hivematrix.common.registry import (
    ENTRY_POINT_GROUP,
    ServiceSpec,
    master_services_document,
    write_json,
)

REGISTRY_FILE = "apps_registry.json"
SERVICES_FILE = "services.json"
MASTER_SERVICES_FILE = "master_services.json"
#: Where ports for services whose own default port is taken are allocated from (counting up).
FIRST_FREE_PORT = 5100
MAX_PORT = 65535
BUILTIN = "builtin"
UNKNOWN_SOURCE = "unknown"
#: The distribution that ships the built-in services.
_BUILTIN_DISTRIBUTION = "hivematrix"

#: ``services.json`` keys generated from the spec and registry. An operator's hand edits of
#: these are overwritten (except ``port``/``url``, which are adopted into the registry);
#: any other key an operator added to an entry is kept (see :func:`services_json_document`).
_GENERATED_KEYS = frozenset({"url", "port", "title", "visible", "admin_only",
                             "billing_or_admin_only", "path", "run"})


@dataclass(frozen=True)
class AppEntry:
    """One service in the registry."""

    port: int
    enabled: bool = True
    depends_on: tuple[str, ...] = ()
    source: str = UNKNOWN_SOURCE
    #: An external service: reached at this URL, run by someone else (no package here).
    url: str | None = None

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"depends_on": list(self.depends_on), "enabled": self.enabled,
                                "port": self.port, "source": self.source}
        if self.url:
            data["url"] = self.url
        return data

    @classmethod
    def from_json(cls, name: str, raw: object) -> AppEntry:
        where = f"{REGISTRY_FILE}: services.{name}"
        if not isinstance(raw, dict):
            raise ValueError(f"{where} must be an object")
        port = raw.get("port")
        if not _valid_port(port):
            raise ValueError(f"{where}.port must be an integer between 1 and {MAX_PORT}, "
                             f"not {port!r}")
        enabled = raw.get("enabled", True)
        if not isinstance(enabled, bool):
            raise ValueError(f"{where}.enabled must be true or false, not {enabled!r}")
        depends_on = raw.get("depends_on", [])
        if not isinstance(depends_on, list) or not all(isinstance(d, str) for d in depends_on):
            raise ValueError(f"{where}.depends_on must be a list of service names")
        source = raw.get("source", UNKNOWN_SOURCE)
        if not isinstance(source, str):
            raise ValueError(f"{where}.source must be a string")
        url = raw.get("url")
        if url is not None and not (isinstance(url, str)
                                    and urlsplit(url).scheme in ("http", "https")):
            raise ValueError(f"{where}.url must be an http(s) URL, not {url!r}")
        return cls(port=port, enabled=enabled, depends_on=tuple(depends_on), source=source,
                   url=url)


@dataclass
class SyncReport:
    """What :func:`sync_registry` changed or found."""

    #: New entries and the port each was given.
    added: dict[str, int] = field(default_factory=dict)
    #: New entries whose own default port was taken: ``(wanted, given)``.
    relocated: dict[str, tuple[int, int]] = field(default_factory=dict)
    #: Ports taken from a hand-edited ``services.json``: ``(registry's old port, new port)``.
    adopted: dict[str, tuple[int, int]] = field(default_factory=dict)
    #: Entries whose ``depends_on`` changed with their package.
    depends_on_changed: list[str] = field(default_factory=list)
    #: Entries whose package is not installed (kept, but not run or published).
    missing: list[str] = field(default_factory=list)
    #: Ports used by more than one enabled, installed service.
    conflicts: dict[int, list[str]] = field(default_factory=dict)
    #: ``services.json`` was read as the operator's input (first run, or edited by hand).
    read_services_json: bool = False

    def describe(self) -> list[str]:
        """Human-readable lines, one per change or finding."""
        lines = []
        for name, port in self.added.items():
            if name in self.relocated:
                wanted, _ = self.relocated[name]
                lines.append(f"added {name} on port {port} (its default {wanted} is taken)")
            else:
                lines.append(f"added {name} on port {port}")
        for name, (old, new) in self.adopted.items():
            lines.append(f"{name}: port {old} -> {new} (taken from {SERVICES_FILE})")
        lines.extend(f"{name}: depends_on updated" for name in self.depends_on_changed)
        lines.extend(f"{name}: package not installed (kept in {REGISTRY_FILE}, not run)"
                     for name in self.missing)
        lines.extend(f"port {port} is used by {', '.join(names)}"
                     for port, names in self.conflicts.items())
        return lines


@dataclass
class Registry:
    """``apps_registry.json``: the services the platform runs, by name."""

    path: Path
    services: dict[str, AppEntry] = field(default_factory=dict)
    #: Digest of the ``services.json`` last generated from this registry.
    services_json_sha256: str | None = None
    #: Set by :func:`sync_registry`.
    report: SyncReport = field(default_factory=SyncReport)

    @classmethod
    def path_for(cls, home: Path) -> Path:
        return home / REGISTRY_FILE

    @classmethod
    def load(cls, home: Path) -> Registry:
        """Read the registry of ``home``; a missing file is an empty registry."""
        path = cls.path_for(home)
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return cls(path=path)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path} is not valid JSON: {exc}") from exc
        if not isinstance(raw, dict) or not isinstance(raw.get("services", {}), dict):
            raise ValueError(f"{path}: expected {{\"services\": {{...}}}}")
        services = {name: AppEntry.from_json(name, value)
                    for name, value in raw.get("services", {}).items()}
        digest = raw.get("services_json_sha256")
        return cls(path=path, services=services,
                   services_json_sha256=digest if isinstance(digest, str) else None)

    def document(self) -> dict[str, Any]:
        """The file's contents, keys sorted."""
        data: dict[str, Any] = {"services": {name: self.services[name].to_json()
                                             for name in sorted(self.services)}}
        if self.services_json_sha256:
            data["services_json_sha256"] = self.services_json_sha256
        return data

    def save(self) -> bool:
        """Write the file (atomically, only if its bytes change); returns whether it did."""
        return _write_if_changed(self.path, self.document())

    def active(self, specs: Mapping[str, ServiceSpec]) -> dict[str, AppEntry]:
        """Entries that are enabled and installed, by port then name."""
        chosen = {name: entry for name, entry in self.services.items()
                  if entry.enabled and (name in specs or entry.url)}
        return dict(sorted(chosen.items(), key=lambda item: (item[1].port, item[0])))

    @property
    def missing(self) -> list[str]:
        """Entries whose package was not installed at the last :func:`sync_registry`."""
        return self.report.missing


# --- where packages came from -------------------------------------------------------------

def _distribution_source(dist: Distribution | None) -> str:
    """``"builtin"``, or what pip installed ``dist`` from (PEP 610 ``direct_url.json``)."""
    if dist is None:
        return UNKNOWN_SOURCE
    name = dist.metadata["Name"] or ""
    if name.lower() == _BUILTIN_DISTRIBUTION:
        return BUILTIN
    try:
        direct = json.loads(dist.read_text("direct_url.json") or "null")
    except json.JSONDecodeError:
        direct = None
    if isinstance(direct, dict) and isinstance(direct.get("url"), str):
        url: str = direct["url"]
        vcs = direct.get("vcs_info")
        if isinstance(vcs, dict) and isinstance(vcs.get("vcs"), str):
            revision = vcs.get("requested_revision") or vcs.get("commit_id")
            return f"{vcs['vcs']}+{url}" + (f"@{revision}" if revision else "")
        if url.startswith("file://"):
            return urlsplit(url).path or url
        return url
    return f"{name}=={dist.version}" if name else UNKNOWN_SOURCE


def installed_sources() -> dict[str, str]:
    """Where each installed service's package came from, by service name."""
    sources: dict[str, str] = {}
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        try:
            spec = entry.load()
        except Exception:  # noqa: S112 - discover_services reports broken packages itself
            continue
        if isinstance(spec, ServiceSpec):
            sources[spec.name] = _distribution_source(entry.dist)
    return sources


# --- keeping the registry in step with what is installed -----------------------------------

def _valid_port(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value <= MAX_PORT


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _operator_ports(home: Path, registry: Registry) -> dict[str, tuple[int, str | None]] | None:
    """Ports named in ``services.json`` when they are the operator's choices: there is no
    registry yet, or the file differs from the one last generated from the registry.

    A registry without a digest (written by hand) wins: which file is newer cannot be told.
    """
    try:
        data = (home / SERVICES_FILE).read_bytes()
    except FileNotFoundError:
        return None
    if registry.path.exists() and registry.services_json_sha256 in (None, _digest(data)):
        return None
    try:
        raw = json.loads(data)
    except ValueError:
        return {}  # unreadable: regenerated from the registry
    ports: dict[str, tuple[int, str | None]] = {}
    for name, entry in (raw.items() if isinstance(raw, dict) else ()):
        if not isinstance(entry, dict):
            continue
        port, url = entry.get("port"), entry.get("url")
        url = url if isinstance(url, str) and urlsplit(url).scheme in ("http", "https") else None
        if not _valid_port(port) and url:
            try:
                port = urlsplit(url).port
            except ValueError:
                port = None
        if _valid_port(port):
            ports[str(name)] = (port, url)
    return ports


def _lowest_free_port(used: set[int]) -> int:
    port = FIRST_FREE_PORT
    while port in used:
        port += 1
    if port > MAX_PORT:
        raise ValueError(f"no free port left from {FIRST_FREE_PORT} to {MAX_PORT}")
    return port


def _add_new_services(registry: Registry, specs: Mapping[str, ServiceSpec],
                      sources: Mapping[str, str], report: SyncReport) -> None:
    """Installed services not yet in the registry: their own port if free, else from 5100."""
    used = {entry.port for entry in registry.services.values()}
    new = sorted((spec for name, spec in specs.items() if name not in registry.services),
                 key=lambda spec: (spec.port, spec.name))
    # Every new service whose default port is free keeps it before any other is moved, so one
    # service moved to 5100 never pushes another off its own default.
    crowded = []
    for spec in new:
        if spec.port in used:
            crowded.append(spec)
            continue
        used.add(spec.port)
        registry.services[spec.name] = AppEntry(
            port=spec.port, depends_on=tuple(spec.depends_on),
            source=sources.get(spec.name, UNKNOWN_SOURCE))
        report.added[spec.name] = spec.port
    for spec in crowded:
        port = _lowest_free_port(used)
        used.add(port)
        registry.services[spec.name] = AppEntry(
            port=port, depends_on=tuple(spec.depends_on),
            source=sources.get(spec.name, UNKNOWN_SOURCE))
        report.added[spec.name] = port
        report.relocated[spec.name] = (spec.port, port)
    report.added = dict(sorted(report.added.items()))


def _adopt_operator_ports(registry: Registry, ports: Mapping[str, tuple[int, str | None]],
                          specs: Mapping[str, ServiceSpec], sources: Mapping[str, str],
                          report: SyncReport) -> None:
    """Take the operator's ports; a service listed with a URL but not installed here is an
    external one (run elsewhere, reached through Nexus all the same)."""
    for name in sorted(ports):
        port, url = ports[name]
        entry = registry.services.get(name)
        external = url if name not in specs else None
        if entry is None:
            spec = specs.get(name)
            registry.services[name] = AppEntry(
                port=port, depends_on=tuple(spec.depends_on) if spec else (),
                source="external" if external else sources.get(name, UNKNOWN_SOURCE),
                url=external)
            report.added[name] = port
        elif entry.port != port or (external and entry.url != external):
            registry.services[name] = replace(entry, port=port, url=external or entry.url)
            report.adopted[name] = (entry.port, port)


def _refresh_installed(registry: Registry, specs: Mapping[str, ServiceSpec],
                       sources: Mapping[str, str], report: SyncReport) -> None:
    for name, entry in sorted(registry.services.items()):
        spec = specs.get(name)
        if spec is None:
            if not entry.url:
                report.missing.append(name)
            continue
        updated = entry
        if tuple(spec.depends_on) != entry.depends_on:
            updated = replace(updated, depends_on=tuple(spec.depends_on))
            if name not in report.added:
                report.depends_on_changed.append(name)
        known = sources.get(name, UNKNOWN_SOURCE)
        # An installer may have recorded a more exact source (a git URL with a ref): keep it.
        if entry.source == UNKNOWN_SOURCE and known != UNKNOWN_SOURCE:
            updated = replace(updated, source=known)
        registry.services[name] = updated


def _port_conflicts(registry: Registry, specs: Mapping[str, ServiceSpec]) -> dict[int, list[str]]:
    by_port: dict[int, list[str]] = {}
    for name, entry in registry.active(specs).items():
        if name in specs:  # an external service's port is on another machine's count
            by_port.setdefault(entry.port, []).append(name)
    return {port: sorted(names) for port, names in sorted(by_port.items()) if len(names) > 1}


def sync_registry(home: Path, specs: Mapping[str, ServiceSpec], *,
                  sources: Mapping[str, str] | None = None) -> Registry:
    """Bring ``apps_registry.json`` in step with the installed services and save it.

    New services are added (enabled) on their own port, or on the lowest port from
    :data:`FIRST_FREE_PORT` up that no entry uses. Existing entries keep their port, enabled
    flag and source; ``depends_on`` follows the installed package. Entries whose package is
    gone stay, listed in ``registry.report.missing``. Ports in a ``services.json`` that was not
    generated from this registry (none exists yet, or it was edited by hand) are adopted.

    ``sources`` (service name -> where its package came from) defaults to what the installed
    distributions say (:func:`installed_sources`).
    """
    registry = Registry.load(home)
    report = SyncReport()
    known_sources = installed_sources() if sources is None else sources
    operator_ports = _operator_ports(home, registry)
    if operator_ports is not None:
        report.read_services_json = True
        _adopt_operator_ports(registry, operator_ports, specs, known_sources, report)
    _add_new_services(registry, specs, known_sources, report)
    _refresh_installed(registry, specs, known_sources, report)
    report.conflicts = _port_conflicts(registry, specs)
    registry.report = report
    registry.save()
    return registry


# --- order --------------------------------------------------------------------------------

def _graph(source: Registry | Mapping[str, ServiceSpec],
           names: Iterable[str] | None) -> tuple[dict[str, int], dict[str, tuple[str, ...]]]:
    """Ports and dependencies of the selected services (unknown names are an error)."""
    ports: dict[str, int] = {}
    depends: dict[str, tuple[str, ...]] = {}
    if isinstance(source, Registry):
        default = [name for name, entry in source.services.items() if entry.enabled]
        for name, entry in source.services.items():
            ports[name], depends[name] = entry.port, entry.depends_on
    else:
        default = list(source)
        for name, spec in source.items():
            ports[name], depends[name] = spec.port, tuple(spec.depends_on)
    selected = list(dict.fromkeys(default if names is None else names))
    unknown = [name for name in selected if name not in ports]
    if unknown:
        raise ValueError(f"unknown service(s): {', '.join(unknown)}")
    chosen = set(selected)
    # Only dependencies that are themselves being started order anything.
    edges = {name: tuple(dep for dep in dict.fromkeys(depends[name])
                         if dep in chosen and dep != name)
             for name in selected}
    return {name: ports[name] for name in selected}, edges


def _find_cycle(nodes: dict[str, int], edges: dict[str, tuple[str, ...]]) -> list[str]:
    """A dependency cycle among ``nodes`` (which are known to contain one)."""
    ordered = sorted(nodes, key=lambda name: (nodes[name], name))
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(name: str) -> list[str] | None:
        state[name] = 1
        path.append(name)
        for dep in sorted((d for d in edges[name] if d in nodes),
                          key=lambda d: (nodes[d], d)):
            if state.get(dep) == 1:
                return [*path[path.index(dep):], dep]
            if dep not in state:
                found = visit(dep)
                if found:
                    return found
        path.pop()
        state[name] = 2
        return None

    for name in ordered:
        if name not in state:
            found = visit(name)
            if found:
                return found
    return ordered  # unreachable when a cycle exists


def start_order(source: Registry | Mapping[str, ServiceSpec],
                names: Iterable[str] | None = None) -> list[str]:
    """``names`` with dependencies before their dependents.

    ``names`` defaults to every service of ``source``: for a :class:`Registry`, the enabled
    entries (pass the installed ones when the registry lists missing packages). Dependencies
    that are not among ``names`` (not installed, disabled, or just not asked for) are ignored.
    Services that could go in either order go by port, then name. A cycle raises
    :class:`ValueError` naming it (``dependency cycle: a -> b -> a``).
    """
    ports, edges = _graph(source, names)
    waiting = {name: len(deps) for name, deps in edges.items()}
    dependents: dict[str, list[str]] = {name: [] for name in edges}
    for name, deps in edges.items():
        for dep in deps:
            dependents[dep].append(name)
    ready = [(ports[name], name) for name, count in waiting.items() if count == 0]
    heapq.heapify(ready)
    order: list[str] = []
    while ready:
        _port, name = heapq.heappop(ready)
        order.append(name)
        for dependent in dependents[name]:
            waiting[dependent] -= 1
            if waiting[dependent] == 0:
                heapq.heappush(ready, (ports[dependent], dependent))
    if len(order) < len(edges):
        left = {name: ports[name] for name in edges if name not in order}
        cycle = _find_cycle(left, edges)
        raise ValueError(f"dependency cycle: {' -> '.join(cycle)}")
    return order


def stop_order(source: Registry | Mapping[str, ServiceSpec],
               names: Iterable[str] | None = None) -> list[str]:
    """:func:`start_order` reversed: dependents stop before what they depend on."""
    return start_order(source, names)[::-1]


# --- services.json and master_services.json -----------------------------------------------

def package_path(spec: ServiceSpec) -> str | None:
    """The directory of the Python package holding the service's app factory."""
    module = spec.factory.partition(":")[0]
    try:
        found = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None
    if found is None:
        return None
    if found.submodule_search_locations:
        return str(Path(next(iter(found.submodule_search_locations))).resolve())
    return str(Path(found.origin).resolve().parent) if found.origin else None


def run_command(name: str, python: str | None = None) -> list[str]:
    """The argv that runs one service in the foreground (gunicorn behind ``hivematrix run``)."""
    return [python or sys.executable, "-m", "hivematrix.cli", "run", name]


def services_json_document(registry: Registry, specs: Mapping[str, ServiceSpec],
                           current: Mapping[str, Any] | None = None, *,
                           host: str = "127.0.0.1",
                           python: str | None = None) -> dict[str, dict[str, Any]]:
    """``services.json`` for the enabled, installed services, by port then name.

    Keys an operator added to an entry of the ``current`` file (Nexus honours ``"proxy":
    false``, for one) are kept: they are settings nothing here generates, and dropping them
    on every ``update-config`` would silently undo the operator's work. The generated keys
    (``_GENERATED_KEYS``) always come from the spec and the registry. Entries of services
    that are disabled or not installed are not published, so their extra keys go with them.
    """
    document: dict[str, dict[str, Any]] = {}
    for name, entry in registry.active(specs).items():
        existing = (current or {}).get(name)
        spec = specs.get(name)
        if spec is None:  # external: its description is the operator's, kept as written
            described = dict(existing) if isinstance(existing, dict) else {}
            merged = {**described, "url": entry.url, "port": entry.port}
            document[name] = {key: merged[key] for key in sorted(merged)}
            continue
        kept = ({key: value for key, value in existing.items() if key not in _GENERATED_KEYS}
                if isinstance(existing, dict) else {})
        generated: dict[str, Any] = {
            "url": f"http://{host}:{entry.port}",
            "port": entry.port,
            "title": spec.title,
            "visible": spec.visible,
            "admin_only": spec.admin_only,
            "billing_or_admin_only": spec.billing_or_admin_only,
            "path": package_path(spec),
            "run": run_command(name, python),
        }
        merged = {**kept, **generated}
        document[name] = {key: merged[key] for key in sorted(merged)}
    return document


def _serialise(data: Any) -> bytes:
    """Exactly the bytes :func:`hivematrix.common.registry.write_json` writes."""
    return (json.dumps(data, indent=2) + "\n").encode("utf-8")


def _write_if_changed(path: Path, data: Any) -> bool:
    try:
        if path.read_bytes() == _serialise(data):
            return False
    except FileNotFoundError:
        pass
    write_json(path, data)
    return True


def _read_json_object(path: Path) -> dict[str, Any]:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        return {}
    return raw if isinstance(raw, dict) else {}


def write_service_documents(home: Path, registry: Registry, specs: Mapping[str, ServiceSpec],
                            *, python: str | None = None) -> dict[str, dict[str, Any]]:
    """Write ``services.json`` and ``master_services.json`` from the registry; returns the former.

    Both are written atomically and only when their bytes change (Nexus reloads on change).
    The registry records the digest of the ``services.json`` written, so a later hand edit is
    recognised (see the module docstring) and saved if that digest changed.
    """
    services_path = home / SERVICES_FILE
    document = services_json_document(registry, specs, _read_json_object(services_path),
                                      python=python)
    _write_if_changed(services_path, document)
    _write_if_changed(home / MASTER_SERVICES_FILE, master_services_document(document))
    digest = _digest(_serialise(document))
    if registry.services_json_sha256 != digest:
        registry.services_json_sha256 = digest
        registry.save()
    return document
