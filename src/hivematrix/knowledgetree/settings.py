"""KnowledgeTree's settings, where its graph is, and the one lazily opened tree per process.

The graph comes from ``KT_GRAPH_URL`` when set:

- ``falkordb://[:password@]host:port/graph`` (``redis://`` is accepted too), or
- ``bolt://user:password@host:7687`` (also ``neo4j://``, ``bolt+s://``, ``neo4j+s://``).

Without it, from Helm's ``databases.graph`` in ``configs/master_config.json`` (checked by
:func:`hivematrix.helm.embedded.graph_settings`): the embedded FalkorDB on 127.0.0.1 with its
port and password, or a Neo4j at ``databases.graph.url`` (``user``/``password`` beside it).
Nothing configured means the embedded default, FalkorDB on 127.0.0.1:6380.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from hivematrix.common.config import SettingsError, master_config_path
from hivematrix.common.health import Check
from hivematrix.knowledgetree.graph import GraphError, GraphStore
from hivematrix.knowledgetree.items import KnowledgeTree

# The scheduler does not import this module, so taking its defaults here makes no cycle.
from hivematrix.knowledgetree.scheduler import DEFAULTS as SCHEDULER_DEFAULTS

#: Attachment types accepted by default (by extension; the bytes are never served inline).
DEFAULT_EXTENSIONS = ("txt,md,log,csv,json,xml,pdf,png,jpg,jpeg,gif,doc,docx,xls,xlsx,ppt,"
                      "pptx,odt,ods,zip")

DEFAULTS: dict[str, Any] = {
    # Where the graph is (see the module docstring); unset: Helm's databases.graph.
    "KT_GRAPH_URL": None,
    "KT_GRAPH_TIMEOUT": 10.0,
    # Attachment bytes; unset: $HIVEMATRIX_HOME/knowledgetree/files.
    "KT_FILES_DIR": None,
    # Import documents between the admin's dry run and confirmation; unset:
    # $HIVEMATRIX_HOME/knowledgetree/pending-imports (never a shared temporary folder).
    "KT_PENDING_IMPORTS_DIR": None,
    "KT_MAX_UPLOAD_BYTES": 25 * 1024 * 1024,
    "KT_ALLOWED_EXTENSIONS": DEFAULT_EXTENSIONS,
    # The body of POST /api/import (a whole tree's export); every other request is limited
    # to the largest upload.
    "KT_MAX_IMPORT_BYTES": 256 * 1024 * 1024,
    # Context export: the budget when the caller names none, and the most one may ask for.
    "KT_CONTEXT_DEFAULT_CHARS": 60_000,
    "KT_CONTEXT_MAX_CHARS": 400_000,
    # The scheduled Codex sync (KT_SCHEDULER, KT_SYNC_*): only settings named in the defaults
    # are read from the environment and typed.
    **SCHEDULER_DEFAULTS,
}

FALKORDB_SCHEMES = ("falkordb", "redis")
NEO4J_SCHEMES = ("bolt", "bolt+s", "bolt+ssc", "neo4j", "neo4j+s", "neo4j+ssc")
DEFAULT_GRAPH = "knowledgetree"


@dataclass(frozen=True)
class GraphTarget:
    """Where the graph is; ``password`` is never part of ``describe()``."""

    backend: str
    host: str
    port: int
    graph: str = DEFAULT_GRAPH
    user: str | None = None
    password: str | None = None
    #: For Neo4j: the Bolt URI without credentials.
    uri: str | None = None

    def describe(self) -> str:
        if self.backend == "neo4j":
            return str(self.uri)
        return f"falkordb://{self.host}:{self.port}/{self.graph}"


def parse_graph_url(url: str) -> GraphTarget:
    """:raises SettingsError: naming ``KT_GRAPH_URL`` when the URL cannot be used."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise SettingsError(f"setting KT_GRAPH_URL: {exc}") from None
    scheme = parts.scheme.lower()
    host = parts.hostname or "127.0.0.1"
    password = unquote(parts.password) if parts.password else None
    user = unquote(parts.username) if parts.username else None
    if scheme in FALKORDB_SCHEMES:
        graph = unquote(parts.path.strip("/")) or DEFAULT_GRAPH
        if "/" in graph:
            raise SettingsError("setting KT_GRAPH_URL: the path is one graph name")
        return GraphTarget(backend="falkordb", host=host, port=port or 6380, graph=graph,
                           password=password)
    if scheme in NEO4J_SCHEMES:
        uri = f"{scheme}://{host}:{port or 7687}"
        return GraphTarget(backend="neo4j", host=host, port=port or 7687, user=user,
                           password=password, uri=uri)
    raise SettingsError(f"setting KT_GRAPH_URL: the scheme must be one of "
                        f"{', '.join(FALKORDB_SCHEMES + NEO4J_SCHEMES)}")


def graph_target(config: Mapping[str, Any]) -> GraphTarget:
    """The graph for these settings: ``KT_GRAPH_URL``, else Helm's ``databases.graph``."""
    if config.get("KT_GRAPH_URL"):
        return parse_graph_url(str(config["KT_GRAPH_URL"]))
    from hivematrix.helm import configs
    from hivematrix.helm.embedded import HOST, graph_settings

    path = master_config_path(Path(config["HIVEMATRIX_HOME"]))
    master: dict[str, Any] = {}
    if path.is_file():
        try:
            master = json.loads(path.read_text(encoding="utf-8"))
        except ValueError as exc:
            raise SettingsError(f"{path}: {exc}") from None
    try:
        chosen = graph_settings(master)
    except configs.ConfigError as exc:
        raise SettingsError(f"{path}: {exc}") from None
    if chosen.backend == "neo4j":
        graph = master["databases"]["graph"]
        if not isinstance(graph.get("url"), str):
            raise SettingsError(f"{path}: databases.graph.url is needed for neo4j "
                                "(or set KT_GRAPH_URL)")
        target = parse_graph_url(graph["url"])
        return GraphTarget(backend="neo4j", host=target.host, port=target.port,
                           user=graph.get("user") or target.user,
                           password=chosen.password or target.password, uri=target.uri)
    return GraphTarget(backend="falkordb", host=HOST, port=chosen.port,
                       password=chosen.password)


def open_store(target: GraphTarget, timeout: float) -> GraphStore:
    """The adapter for ``target`` (FalkorDB's client already asks the server something).

    :raises GraphError: the server cannot be reached (or the driver is missing).
    """
    if target.backend == "neo4j":
        from hivematrix.knowledgetree.graph import Neo4jStore

        return Neo4jStore(str(target.uri), user=target.user, password=target.password)
    import redis

    from hivematrix.knowledgetree.graph import FalkorDBStore

    try:
        return FalkorDBStore(host=target.host, port=target.port, password=target.password,
                             graph=target.graph, timeout=timeout)
    except redis.RedisError as exc:
        raise GraphError(f"FalkorDB at {target.describe()} is unreachable: {exc}") from exc


def files_dir(config: Mapping[str, Any]) -> Path:
    configured = config.get("KT_FILES_DIR")
    if configured:
        return Path(str(configured))
    return Path(config["HIVEMATRIX_HOME"]) / "knowledgetree" / "files"


def allowed_extensions(config: Mapping[str, Any]) -> frozenset[str]:
    raw = config.get("KT_ALLOWED_EXTENSIONS") or ""
    if isinstance(raw, str):
        raw = raw.split(",")
    return frozenset(str(ext).strip().lower().lstrip(".") for ext in raw if str(ext).strip())


class TreeHolder:
    """The process's :class:`KnowledgeTree`: the store is opened and the schema ensured on
    first use (never at import or app creation), once even when threads race for it; after a
    failure the next use tries again."""

    def __init__(self, config: Mapping[str, Any]) -> None:
        self.target = graph_target(config)
        self.files_dir = files_dir(config)
        self.timeout = float(config["KT_GRAPH_TIMEOUT"])
        self._lock = threading.Lock()
        self._store: GraphStore | None = None
        self._tree: KnowledgeTree | None = None

    @property
    def store(self) -> GraphStore:
        with self._lock:
            if self._store is None:
                self._store = open_store(self.target, self.timeout)
            return self._store

    def tree(self) -> KnowledgeTree:
        """The ready tree (indexes operational, root present).

        :raises GraphError: the graph cannot be reached; the next call tries again.
        """
        if self._tree is not None:
            return self._tree
        store = self.store
        with self._lock:
            if self._tree is None:
                tree = KnowledgeTree(store, self.files_dir)
                tree.ensure_ready()
                from hivematrix.knowledgetree.context import ACCOUNT_SCHEMA

                store.ensure_schema(ACCOUNT_SCHEMA)
                self._tree = tree
            return self._tree

    def health(self) -> Check:
        try:
            # A new deployment's graph does not exist until the tree is first made ready, and
            # FalkorDB refuses any query on it until then: getting ready is the check.
            self.tree()
            self.store.query("RETURN 1 AS ok")
        except GraphError as exc:
            return Check("unhealthy", {"graph": self.target.describe(),
                                       "error": type(exc).__name__})
        return Check("healthy", {"graph": self.target.describe(),
                                 "ready": self._tree is not None})

    def close(self) -> None:
        with self._lock:
            if self._store is not None:
                self._store.close()
            self._store = None
            self._tree = None
