"""Installing and uninstalling third-party services: ``hivematrix install`` / ``uninstall``.

A third-party service is a Python distribution (built from the template service) that
registers a :class:`~hivematrix.common.registry.ServiceSpec` under the entry-point group
``hivematrix.services``. Installing one means: pip installs it into the platform's
virtualenv (the interpreter running this code), the entry points that appeared are found,
each new service is registered in ``apps_registry.json`` on a free port, its files are
generated, its database created and migrated, and it is started. Uninstalling reverses that,
keeping the service's data unless asked to purge it.

Each step records how to undo itself; when a later step fails (or the operator interrupts),
the steps done so far are undone in reverse order, so a failed install leaves nothing behind.

Which entry points a package added is decided by a fresh interpreter scanning the
environment before and after pip runs (:func:`scan`): this process's import and metadata
caches predate the install, and a package that fails to import must not take the CLI with it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import importlib
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from hivematrix.common.config import master_config_path
from hivematrix.common.files import write_atomic
from hivematrix.common.registry import ENTRY_POINT_GROUP, ServiceSpec, write_json
from hivematrix.helm import apps, configs, lifecycle
from hivematrix.helm.supervisor import child_pid_file, pid_file, state_file

#: Shipped in the ``hivematrix`` distribution itself: never uninstalled by Helm.
BUILTIN_SERVICES = frozenset({"core", "identity", "nexus", "helm", "template"})
#: A service name becomes a folder, a log file name and part of a PostgreSQL name.
SERVICE_NAME = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
#: Names of processes Helm supervises that are not services (embedded dependencies).
RESERVED_NAMES = frozenset({"falkordb"})
#: Records what Helm created for a service, so ``--purge`` removes only that.
CREATED_FILE = "helm-created.json"
_BUILTIN_DISTRIBUTION = "hivematrix"
_PIP_TIMEOUT = 1800.0
_SCAN_TIMEOUT = 300.0


class InstallError(Exception):
    """A step failed; what had been done was undone. The message says what and why."""


class Reporter:
    """Where progress goes; the CLI shows it with rich. The default says nothing."""

    def step(self, message: str) -> None:
        """A step begins or has a result worth telling."""

    def detail(self, line: str) -> None:
        """A line of a long-running tool's output (pip)."""


# --- what is installed ---------------------------------------------------------------------

def canonical_name(name: str) -> str:
    """A distribution name as pip compares them (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass(frozen=True)
class Distribution:
    name: str
    version: str
    #: Installed inside this virtualenv (pip may uninstall it from here).
    inside: bool


@dataclass(frozen=True)
class FoundService:
    """One ``hivematrix.services`` entry point of the scanned environment."""

    entry_point: str
    value: str
    distribution: str | None
    spec: ServiceSpec | None
    source: str
    #: Why it could not be loaded, if it could not.
    error: str | None = None

    @property
    def key(self) -> tuple[str, str, str]:
        return (canonical_name(self.distribution or ""), self.entry_point, self.value)


@dataclass(frozen=True)
class Environment:
    """The result of :func:`scan`."""

    distributions: dict[str, Distribution]
    services: tuple[FoundService, ...]

    def specs(self) -> dict[str, ServiceSpec]:
        """Loadable services by name (what :func:`discover_services` returns there)."""
        found = {item.spec.name: item.spec for item in self.services if item.spec is not None}
        return dict(sorted(found.items(), key=lambda item: (item[1].port, item[0])))

    def sources(self) -> dict[str, str]:
        return {item.spec.name: item.source for item in self.services if item.spec is not None}

    def provider(self, service: str) -> FoundService | None:
        return next((item for item in self.services
                     if item.spec is not None and item.spec.name == service), None)


def _inside(location: Path, prefix: Path) -> bool:
    try:
        resolved = location.resolve()
    except OSError:
        return False
    return resolved == prefix or prefix in resolved.parents


def _scan_here() -> dict[str, Any]:
    """What this interpreter has installed (run by :func:`scan` in a fresh one)."""
    from importlib.metadata import distributions, entry_points

    prefix = Path(sys.prefix).resolve()
    found: dict[str, Any] = {}
    for dist in distributions():
        name = dist.metadata["Name"]
        if name and canonical_name(name) not in found:  # the first one is what imports see
            found[canonical_name(name)] = {
                "name": name, "version": dist.version,
                "inside": _inside(Path(str(dist.locate_file(""))), prefix)}
    sources = apps.installed_sources()
    services = []
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        item: dict[str, Any] = {"entry_point": entry.name, "value": entry.value,
                                "distribution": entry.dist.metadata["Name"] if entry.dist
                                else None}
        try:
            spec = entry.load()
        except Exception as exc:  # a broken package is reported, not fatal to the scan
            item["error"] = f"{type(exc).__name__}: {exc}"
        else:
            if isinstance(spec, ServiceSpec):
                item["spec"] = dataclasses.asdict(spec)
                item["source"] = sources.get(spec.name, apps.UNKNOWN_SOURCE)
            else:
                item["error"] = f"{entry.value} is a {type(spec).__name__}, not a ServiceSpec"
        services.append(item)
    return {"distributions": found, "services": services}


def _spec_from_json(data: Mapping[str, Any]) -> ServiceSpec:
    values = dict(data)
    values["depends_on"] = tuple(values.get("depends_on", ()))
    return ServiceSpec(**values)


def scan(python: str | None = None) -> Environment:
    """The distributions and service entry points installed for ``python`` (default: this
    interpreter), as a fresh process sees them."""
    argv = [python or sys.executable, "-m", "hivematrix.helm.installer", "scan"]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=_SCAN_TIMEOUT,  # noqa: S603
                              check=False)
    except subprocess.TimeoutExpired as exc:
        raise InstallError("listing the installed services took too long") from exc
    if done.returncode != 0:
        raise InstallError(f"could not list the installed services: {_tail(done.stderr)}")
    raw = json.loads(done.stdout)
    distributions = {key: Distribution(**value) for key, value in raw["distributions"].items()}
    services = tuple(
        FoundService(entry_point=item["entry_point"], value=item["value"],
                     distribution=item.get("distribution"),
                     spec=_spec_from_json(item["spec"]) if "spec" in item else None,
                     source=item.get("source", apps.UNKNOWN_SOURCE), error=item.get("error"))
        for item in raw["services"])
    return Environment(distributions=distributions, services=services)


# --- what to install, where it listens -----------------------------------------------------

def pip_requirement(spec: str, cwd: Path | None = None) -> str:
    """What to hand pip for the operator's ``spec``: a pip requirement, a VCS URL, or a path.

    A path that exists is installed as that path (made absolute, so pip never mistakes
    ``mypackage`` for a name on the index); an ``https://...git`` URL gets pip's ``git+``
    prefix. Anything starting with ``-`` is refused: it would be an option to pip.
    """
    text = spec.strip()
    if not text:
        raise InstallError("nothing to install: give a pip requirement, a git URL or a path")
    if text.startswith("-"):
        raise InstallError(f"{spec!r} looks like an option, not a package")
    candidate = (cwd or Path.cwd()) / Path(text).expanduser()
    if "://" not in text and candidate.exists():
        return str(candidate.resolve())
    if "://" not in text and (text.startswith((".", "~")) or os.sep in text):
        raise InstallError(f"no such file or folder: {candidate}")
    scheme = urlsplit(text).scheme
    if scheme in ("http", "https") and urlsplit(text).path.endswith(".git"):
        return f"git+{text}"
    return text


def port_in_use(port: int) -> bool:
    """Whether some process listens on ``port`` of 127.0.0.1 (or it cannot be bound at all)."""
    try:
        return lifecycle.port_holder(port) is not None
    except OSError:  # e.g. a privileged port: no use to a service either
        return True


def choose_port(wanted: int, used: set[int],
                in_use: Callable[[int], bool] = port_in_use) -> int:
    """The service's own port when no registry entry has it and no process holds it; else
    the lowest such port from :data:`apps.FIRST_FREE_PORT` up. The same state gives the same
    port: nothing is random."""
    if 0 < wanted <= apps.MAX_PORT and wanted not in used and not in_use(wanted):
        return wanted
    port = apps.FIRST_FREE_PORT
    while port in used or in_use(port):
        port += 1
        if port > apps.MAX_PORT:
            raise InstallError(f"no free port left from {apps.FIRST_FREE_PORT} to "
                               f"{apps.MAX_PORT}")
    return port


# --- undoing -------------------------------------------------------------------------------

@dataclass
class _Undo:
    """Steps to undo, newest first."""

    steps: list[tuple[str, Callable[[], object]]] = field(default_factory=list)

    def push(self, what: str, action: Callable[[], object]) -> None:
        self.steps.append((what, action))

    def run(self, reporter: Reporter) -> list[str]:
        """Undo everything; returns what could not be undone."""
        failed = []
        while self.steps:
            what, action = self.steps.pop()
            reporter.step(f"undoing: {what}")
            try:
                action()
            except Exception as exc:  # keep undoing the rest
                failed.append(f"{what} ({type(exc).__name__}: {exc})")
        return failed


@contextlib.contextmanager
def _undone_on_failure(reporter: Reporter) -> Iterator[_Undo]:
    """Undo the recorded steps when the block fails; :class:`InstallError` says what happened."""
    undo = _Undo()
    try:
        yield undo
    except BaseException as exc:
        failed = undo.run(reporter)
        if not isinstance(exc, Exception):  # Ctrl-C: undone, then let it through
            raise
        reason = str(exc) if isinstance(exc, InstallError) else f"{type(exc).__name__}: {exc}"
        message = f"{reason}\nEverything done before that was undone."
        if failed:
            message = f"{reason}\nCould not undo: {'; '.join(failed)}"
        raise InstallError(message) from exc


@contextlib.contextmanager
def _locked(home: Path) -> Iterator[None]:
    """One install or uninstall at a time per home (a lock on ``run/``, leaving no file)."""
    folder = home / "run"
    folder.mkdir(parents=True, exist_ok=True)
    handle = os.open(folder, os.O_RDONLY)
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise InstallError("another install or uninstall is running; try again when it "
                               "is done") from None
        yield
    finally:
        os.close(handle)  # releases the lock


def _snapshot(paths: list[Path]) -> Callable[[], None]:
    """A way back to the files as they are now (absent ones are removed again)."""
    saved = {path: (path.read_bytes() if path.exists() else None,
                    path.stat().st_mode & 0o777 if path.exists() else 0o644) for path in paths}

    def restore() -> None:
        for path, (data, mode) in saved.items():
            if data is None:
                path.unlink(missing_ok=True)
            else:
                write_atomic(path, data, mode)

    return restore


def _registry_files(home: Path) -> list[Path]:
    return [apps.Registry.path_for(home), home / apps.SERVICES_FILE,
            home / apps.MASTER_SERVICES_FILE]


# --- pip -----------------------------------------------------------------------------------

def _tail(text: str, lines: int = 12) -> str:
    kept = [line for line in text.strip().splitlines() if line.strip()][-lines:]
    return "\n".join(kept) or "(no output)"


def _pip(arguments: list[str], reporter: Reporter) -> None:
    """Run pip of this interpreter, its output streamed to ``reporter``."""
    argv = [sys.executable, "-m", "pip", *arguments, "--disable-pip-version-check",
            "--no-input"]
    output: list[str] = []
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,  # noqa: S603
                               stdin=subprocess.DEVNULL, text=True)
    assert process.stdout is not None
    with process:
        for line in process.stdout:
            output.append(line)
            reporter.detail(line.rstrip())
        try:
            code = process.wait(timeout=_PIP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            raise InstallError(f"pip {arguments[0]} did not finish") from None
    if code != 0:
        raise InstallError(f"pip {arguments[0]} failed:\n{_tail(''.join(output))}")


def _pip_uninstall(names: list[str], reporter: Reporter) -> None:
    if names:
        _pip(["uninstall", "--yes", *names], reporter)


def _new_distributions(before: Environment, after: Environment) -> list[str]:
    return sorted(after.distributions[key].name for key in after.distributions
                  if key not in before.distributions and after.distributions[key].inside)


# --- install -------------------------------------------------------------------------------

@dataclass(frozen=True)
class InstalledService:
    name: str
    port: int
    url: str
    distribution: str
    source: str
    started: bool


def _new_services(before: Environment, after: Environment,
                  registry: apps.Registry) -> list[FoundService]:
    """The service entry points the install added; refused when unusable or clashing."""
    known = {item.key for item in before.services}
    added = [item for item in after.services if item.key not in known]
    broken = [item for item in added if item.spec is None]
    if broken:
        raise InstallError("; ".join(f"entry point {item.entry_point!r} of "
                                     f"{item.distribution} cannot be loaded: {item.error}"
                                     for item in broken))
    existing = before.specs()
    seen: set[str] = set()
    for item in added:
        assert item.spec is not None
        name = item.spec.name
        if not SERVICE_NAME.match(name):
            raise InstallError(f"{item.distribution} names its service {name!r}: a service "
                               "name is lower-case letters, digits and _ (up to 40), "
                               "starting with a letter")
        if name in RESERVED_NAMES:
            raise InstallError(f"{item.distribution} names its service {name!r}, which Helm "
                               "uses for an embedded dependency; rename it")
        if name in BUILTIN_SERVICES or name in existing:
            owner = before.provider(name)
            by = owner.distribution if owner else _BUILTIN_DISTRIBUTION
            raise InstallError(f"{item.distribution} provides a service named {name!r}, but "
                               f"{by} already does; rename one of them")
        entry = registry.services.get(name)
        if entry is not None and entry.url:
            raise InstallError(f"{name!r} is already registered as an external service at "
                               f"{entry.url}; remove it from {apps.REGISTRY_FILE} first")
        if name in seen:
            raise InstallError(f"{item.distribution} provides two services named {name!r}")
        seen.add(name)
    return added


def _register(home: Path, added: list[FoundService], after: Environment,
              undo: _Undo, reporter: Reporter) -> dict[str, dict[str, Any]]:
    """Registry entries on free ports, then ``services.json`` and ``master_services.json``."""
    undo.push(f"restore {apps.REGISTRY_FILE} and {apps.SERVICES_FILE}",
              _snapshot(_registry_files(home)))
    registry = apps.Registry.load(home)
    used = {entry.port for name, entry in registry.services.items()}
    for item in added:
        assert item.spec is not None
        spec = item.spec
        kept = registry.services.get(spec.name)  # left by an earlier uninstall's package
        if kept is not None:
            used.discard(kept.port)
        port = choose_port(kept.port if kept else spec.port, used)
        used.add(port)
        registry.services[spec.name] = apps.AppEntry(
            port=port, enabled=kept.enabled if kept else True,
            depends_on=tuple(spec.depends_on), source=item.source)
        reporter.step(f"{spec.name}: port {port}" + (
            f" (its own {spec.port} is taken)" if port != spec.port else ""))
    registry.save()
    specs = after.specs()
    registry = apps.sync_registry(home, specs, sources=after.sources())
    return apps.write_service_documents(home, registry, specs)


def _forget_service_secret(home: Path, service: str) -> None:
    """Core no longer accepts the service's secret (it is not running here any more)."""
    from hivematrix.cli.home import core_service_secrets

    path = core_service_secrets(home).path
    try:
        hashes = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return
    if isinstance(hashes, dict) and service in hashes:
        del hashes[service]
        write_json(path, hashes, mode=0o600)


def _configure(home: Path, spec: ServiceSpec, core_url: str, undo: _Undo,
               reporter: Reporter) -> None:
    """``.flaskenv`` (secrets, registered with Core) and ``instance/<svc>.conf``."""
    from hivematrix.cli.home import core_service_secrets, ensure_flaskenv

    folder = home / spec.name
    if not folder.exists():
        undo.push(f"remove {folder}", lambda: shutil.rmtree(folder, ignore_errors=True))
    if not core_service_secrets(home).known(spec.name):
        undo.push(f"forget {spec.name}'s service secret",
                  lambda: _forget_service_secret(home, spec.name))
    undo.push("restore master_config.json", _snapshot([master_config_path(home)]))
    ensure_flaskenv(home, spec, core_url)
    config = configs.load(home)
    configs.validate(config)
    configs.write_dotenv(home, spec, config)
    conf = configs.write_conf(home, spec, config)
    reporter.step(f"{spec.name}: wrote {folder / '.flaskenv'}"
                  + (f" and {conf}" if conf else ""))


def _created_path(home: Path, service: str) -> Path:
    return home / service / "instance" / CREATED_FILE


def _read_created(home: Path, service: str) -> dict[str, str]:
    try:
        data = json.loads(_created_path(home, service).read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        return {}
    return {key: str(value) for key, value in data.items()} if isinstance(data, dict) else {}


def _postgresql_names(home: Path, service: str) -> tuple[str, str] | None:
    """``(database, role)`` when the service is set to PostgreSQL."""
    from sqlalchemy.engine import make_url

    config = configs.load(home)
    app = config.get("apps", {}).get(service, {})
    if not isinstance(app, dict) or app.get("database") != "postgresql":
        return None
    url = make_url(configs.app_database(home, config, service))
    return str(url.database), str(url.username)


def _admin_connection(home: Path, admin_password: str | None) -> Any:
    import psycopg

    config = configs.load(home)
    server = config.get("databases", {}).get("postgresql", {})
    return psycopg.connect(host=server.get("host", "127.0.0.1"), port=server.get("port", 5432),
                           dbname="postgres", user=server.get("admin_user", "postgres"),
                           password=admin_password, autocommit=True, connect_timeout=10)


def _postgresql_exists(home: Path, database: str, role: str,
                       admin_password: str | None) -> tuple[bool, bool]:
    with _admin_connection(home, admin_password) as connection:
        has_database = connection.execute("SELECT 1 FROM pg_database WHERE datname = %s",
                                          [database]).fetchone() is not None
        has_role = connection.execute("SELECT 1 FROM pg_roles WHERE rolname = %s",
                                      [role]).fetchone() is not None
    return has_database, has_role


def _drop_postgresql(home: Path, database: str | None, role: str | None,
                     admin_password: str | None) -> None:
    from psycopg import sql

    with _admin_connection(home, admin_password) as connection:
        if database:
            connection.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(database)))
        if role:
            connection.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


def _create_postgresql(home: Path, spec: ServiceSpec, names: tuple[str, str],
                       admin_password: str | None, undo: _Undo, reporter: Reporter) -> None:
    """The service's role and database, remembering which of them Helm made."""
    import psycopg

    database, role = names
    try:
        had_database, had_role = _postgresql_exists(home, database, role, admin_password)
        configs.create_database(home, spec.name, admin_password=admin_password)
    except psycopg.Error as exc:
        raise InstallError(f"PostgreSQL refused to create {database}: {exc}") from exc
    made = {key: value for key, value, had in (("database", database, had_database),
                                                ("role", role, had_role)) if not had}
    if made:
        undo.push(f"drop {', '.join(made.values())}",
                  lambda: _drop_postgresql(home, made.get("database"), made.get("role"),
                                           admin_password))
        path = _created_path(home, spec.name)
        undo.push(f"restore {path}", _snapshot([path]))
        write_json(path, {**_read_created(home, spec.name), **made}, mode=0o600)
    reporter.step(f"{spec.name}: PostgreSQL database {database} "
                  + ("created" if "database" in made else "already there"))


def _create_database(home: Path, spec: ServiceSpec, admin_password: str | None, undo: _Undo,
                     reporter: Reporter) -> None:
    """Create and migrate the service's database (what ``hivematrix db upgrade`` does)."""
    if not spec.migrations:
        return
    names = _postgresql_names(home, spec.name)
    if names is not None:
        _create_postgresql(home, spec, names, admin_password, undo, reporter)
    else:
        sqlite = home / spec.name / f"{spec.name}.db"
        if not sqlite.exists():
            undo.push(f"remove {sqlite}", lambda: sqlite.unlink(missing_ok=True))
    reporter.step(f"{spec.name}: applying database migrations")
    # A fresh interpreter: it imports the new package the way `hivematrix run` will.
    done = subprocess.run(  # noqa: S603 - our own command, fixed arguments
        [sys.executable, "-m", "hivematrix.cli", "db", "upgrade", spec.name],
        capture_output=True, text=True, env={**os.environ, "HIVEMATRIX_HOME": str(home)},
        timeout=_PIP_TIMEOUT, check=False)
    if done.returncode != 0:
        raise InstallError(f"{spec.name}: database migrations failed:\n{_tail(done.stderr)}")


def _start(home: Path, name: str, url: str, port: int, timeout: float, undo: _Undo,
           reporter: Reporter) -> None:
    reporter.step(f"{name}: starting")
    try:
        lifecycle.start(home, name, port)
    except lifecycle.PortTaken as exc:
        raise InstallError(str(exc)) from exc
    undo.push(f"stop {name}", lambda: lifecycle.stop(home, name))
    if not lifecycle.wait_healthy(home, name, url, timeout):
        raise InstallError(f"{name} did not become healthy within {timeout:.0f} s; its log "
                           f"(kept) is {home / 'logs' / f'{name}.log'}")
    reporter.step(f"{name}: healthy at {url}")


def install(home: Path, package: str, *, start: bool = True, timeout: float = 60.0,
            admin_password: str | None = None,
            reporter: Reporter | None = None) -> list[InstalledService]:
    """Install ``package`` (pip requirement, VCS URL or path) and bring up its services.

    ``admin_password`` is the PostgreSQL administrator's, needed only when the service is
    set to PostgreSQL in master_config.json before installing and libpq has no other source.

    :raises InstallError: naming the failed step; everything done before it is undone.
    """
    report = reporter or Reporter()
    requirement = pip_requirement(package)
    for folder in ("configs", "logs", "run"):
        (home / folder).mkdir(parents=True, exist_ok=True)
    with _locked(home), _undone_on_failure(report) as undo:
        try:
            registry = apps.Registry.load(home)
        except ValueError as exc:
            raise InstallError(str(exc)) from exc
        report.step("listing the installed services")
        before = scan()
        report.step(f"installing {requirement} with pip")
        # pip may fail half-way, having installed some of the dependencies already.
        undo.push(f"uninstall what pip installed for {requirement}",
                  lambda: _pip_uninstall(_new_distributions(before, scan()), Reporter()))
        _pip(["install", requirement], report)
        importlib.invalidate_caches()
        after = scan()
        added = _new_services(before, after, registry)
        if not added:
            hint = ("; it was installed already (see `hivematrix list`)"
                    if not _new_distributions(before, after) else "")
            raise InstallError(f"{requirement} provides no new service: no entry point in the "
                               f"group {ENTRY_POINT_GROUP!r}{hint}")
        for item in added:
            assert item.spec is not None
            report.step(f"found service {item.spec.name} ({item.spec.title}) in "
                        f"{item.distribution}")
        document = _register(home, added, after, undo, report)
        core = document.get("core", {})
        core_url = str(core.get("url", "http://127.0.0.1:5000"))
        specs = {item.spec.name: item.spec for item in added if item.spec is not None}
        for spec in specs.values():
            _configure(home, spec, core_url, undo, report)
            _create_database(home, spec, admin_password, undo, report)
        for name in apps.start_order(specs) if start else ():
            entry = document[name]
            _start(home, name, entry["url"], entry["port"], timeout, undo, report)
        sources = after.sources()
        return [InstalledService(name=name, port=document[name]["port"],
                                 url=document[name]["url"],
                                 distribution=_distribution_of(after, name),
                                 source=sources.get(name, apps.UNKNOWN_SOURCE), started=start)
                for name in specs]


def _distribution_of(environment: Environment, service: str) -> str:
    provider = environment.provider(service)
    return str(provider.distribution) if provider and provider.distribution else "?"


# --- uninstall -----------------------------------------------------------------------------

@dataclass(frozen=True)
class UninstallPlan:
    """What :func:`uninstall` will do, for the operator to confirm."""

    name: str
    #: The distribution pip removes; ``None`` when the package is gone already.
    distribution: str | None
    version: str | None
    registered: bool
    #: Services in the registry that list this one in ``depends_on``.
    dependents: tuple[str, ...]
    #: What ``--purge`` would remove.
    data: tuple[str, ...]


def _data_of(home: Path, name: str) -> list[str]:
    found = [str(path) for path in [home / name, *sorted((home / "logs").glob(f"{name}.log*"))]
             if path.exists()]
    created = _read_created(home, name)
    found.extend(f"PostgreSQL {kind} {value} (created by Helm)"
                 for kind, value in sorted(created.items()))
    return found


def plan_uninstall(home: Path, name: str) -> UninstallPlan:
    """Check that ``name`` can be uninstalled and say what that involves.

    A service neither installed nor registered any more, whose data an earlier uninstall
    kept, has a plan too: only its data, for ``--purge``.

    :raises InstallError: a built-in service, or nothing of that name.
    """
    return _plan(home, name)[0]


def _plan(home: Path, name: str) -> tuple[UninstallPlan, Environment]:
    if name in BUILTIN_SERVICES:
        raise InstallError(f"{name} is built into HiveMatrix and cannot be uninstalled; to "
                           f"stop running it, set \"enabled\": false for it in "
                           f"{apps.REGISTRY_FILE}")
    if not SERVICE_NAME.match(name):
        raise InstallError(f"{name!r} is not a service name")
    try:
        registry = apps.Registry.load(home)
    except ValueError as exc:
        raise InstallError(str(exc)) from exc
    environment = scan()
    provider = environment.provider(name)
    entry = registry.services.get(name)
    data = tuple(_data_of(home, name))
    if provider is None and entry is None and not data:
        raise InstallError(f"no service named {name!r} is installed or registered")
    if entry is not None and entry.url and provider is None:
        raise InstallError(f"{name} is an external service (at {entry.url}), not installed "
                           f"here; remove it from {apps.REGISTRY_FILE} by hand")
    distribution = version = None
    if provider is not None:
        key = canonical_name(provider.distribution or "")
        if key == _BUILTIN_DISTRIBUTION:
            raise InstallError(f"{name} is built into HiveMatrix and cannot be uninstalled")
        others = sorted(item.spec.name for item in environment.services
                        if item.spec is not None and item.spec.name != name
                        and canonical_name(item.distribution or "") == key)
        if others:
            raise InstallError(f"{provider.distribution} also provides {', '.join(others)}; "
                               "uninstalling it would remove those too, so it is refused")
        installed = environment.distributions.get(key)
        if installed is not None and not installed.inside:
            raise InstallError(f"{provider.distribution} is installed outside this "
                               f"platform's virtualenv ({sys.prefix}); remove it there")
        distribution = provider.distribution
        version = installed.version if installed else None
    dependents = tuple(sorted(other for other, item in registry.services.items()
                              if name in item.depends_on and other != name))
    plan = UninstallPlan(name=name, distribution=distribution, version=version,
                         registered=entry is not None, dependents=dependents, data=data)
    return plan, environment


def _purge(home: Path, name: str, admin_password: str | None, reporter: Reporter) -> None:
    """The service's database (if Helm created it), instance files, logs and settings."""
    created = _read_created(home, name)
    if created:
        reporter.step(f"dropping PostgreSQL {', '.join(created.values())}")
        _drop_postgresql(home, created.get("database"), created.get("role"), admin_password)
    folder = home / name
    if folder.exists():
        reporter.step(f"removing {folder}")
        shutil.rmtree(folder)
    for path in sorted((home / "logs").glob(f"{name}.log*")):
        path.unlink()
    for path in (pid_file(home, name), child_pid_file(home, name), state_file(home, name)):
        path.unlink(missing_ok=True)
    config = configs.load(home)
    settings = config.get("apps", {})
    if isinstance(settings, dict) and name in settings:
        del settings[name]
        configs.save(home, config)


def uninstall(home: Path, name: str, *, purge: bool = False, admin_password: str | None = None,
              reporter: Reporter | None = None) -> UninstallPlan:
    """Stop ``name``, unregister it, pip-uninstall its package; its data stays unless
    ``purge``.

    :raises InstallError: refused (built-in, unknown) or a step failed (undone).
    """
    report = reporter or Reporter()
    with _locked(home):
        plan, environment = _plan(home, name)
        if plan.distribution is None and not plan.registered and not purge:
            raise InstallError(f"{name} is not installed any more; its data is kept "
                               f"({'; '.join(plan.data)}): add --purge to remove it")
        with _undone_on_failure(report) as undo:
            registry = apps.Registry.load(home)
            entry = registry.services.get(name)
            report.step(f"stopping {name}")
            if lifecycle.stop(home, name) and entry is not None:
                port = entry.port
                undo.push(f"start {name} again", lambda: _restart(home, name, port))
            if entry is not None:
                report.step(f"removing {name} from {apps.REGISTRY_FILE}")
                undo.push(f"restore {apps.REGISTRY_FILE} and {apps.SERVICES_FILE}",
                          _snapshot(_registry_files(home)))
                del registry.services[name]
                registry.save()
                specs = {key: spec for key, spec in environment.specs().items() if key != name}
                apps.write_service_documents(home, registry, specs)
            if plan.distribution is not None:
                report.step(f"uninstalling {plan.distribution} with pip")
                _pip_uninstall([plan.distribution], report)
        importlib.invalidate_caches()
        _forget_service_secret(home, name)
        if purge:
            try:
                _purge(home, name, admin_password, report)
            except Exception as exc:
                left = "; ".join(_data_of(home, name)) or "nothing"
                raise InstallError(f"{name} is uninstalled, but removing its data failed "
                                   f"({type(exc).__name__}: {exc}); still there: {left}") from exc
    return plan


def _restart(home: Path, name: str, port: int) -> None:
    lifecycle.start(home, name, port)


def main(argv: list[str]) -> int:
    """``python -m hivematrix.helm.installer scan``: print :func:`_scan_here` as JSON."""
    if argv != ["scan"]:
        print("usage: python -m hivematrix.helm.installer scan", file=sys.stderr)
        return 2
    # Whatever a package prints while its entry point loads must not spoil the JSON.
    with contextlib.redirect_stdout(sys.stderr):
        found = _scan_here()
    print(json.dumps(found))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
