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
import logging
import threading
import time
from collections.abc import Callable, Mapping
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
from hivematrix.knowledgetree.search_index import SearchIndex

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
    # The search index (tantivy) beside the graph; unset: $HIVEMATRIX_HOME/knowledgetree/search.
    # Every process of the service must see the same folder.
    "KT_SEARCH_DIR": None,
    # False: no index, search is the graph's full-text call only.
    "KT_SEARCH_INDEX": True,
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


def search_dir(config: Mapping[str, Any]) -> Path | None:
    """The search index's folder, or None when ``KT_SEARCH_INDEX`` is off."""
    enabled = config.get("KT_SEARCH_INDEX", True)
    if isinstance(enabled, str):
        enabled = enabled.strip().lower() not in ("0", "false", "no", "off", "")
    if not enabled:
        return None
    configured = config.get("KT_SEARCH_DIR")
    if configured:
        return Path(str(configured))
    return Path(config["HIVEMATRIX_HOME"]) / "knowledgetree" / "search"


def allowed_extensions(config: Mapping[str, Any]) -> frozenset[str]:
    raw = config.get("KT_ALLOWED_EXTENSIONS") or ""
    if isinstance(raw, str):
        raw = raw.split(",")
    return frozenset(str(ext).strip().lower().lstrip(".") for ext in raw if str(ext).strip())


log = logging.getLogger("hivematrix.knowledgetree.settings")

#: Seconds between two background rebuilds a process starts on its own.
REBUILD_PAUSE = 30.0
#: At start, a ready index whose number of items differs from the graph's is rebuilt unless
#: a rebuild finished less than this many seconds ago.
RECOUNT_PAUSE = 600.0


class TreeHolder:
    """The process's :class:`KnowledgeTree`: the store is opened and the schema ensured on
    first use (never at import or app creation), once even when threads race for it; after a
    failure the next use tries again.

    The first use also looks at the search index: not ready (never built, empty, stale) means
    a rebuild in a background thread, while searches use the graph; so does a search that
    finds the index unusable later (at most every ``REBUILD_PAUSE`` seconds per process)."""

    def __init__(self, config: Mapping[str, Any], *, rebuild_on_start: bool = True) -> None:
        self.rebuild_on_start = rebuild_on_start
        self.target = graph_target(config)
        self.files_dir = files_dir(config)
        self.timeout = float(config["KT_GRAPH_TIMEOUT"])
        directory = search_dir(config)
        self.search_index = SearchIndex(directory) if directory is not None else None
        self._lock = threading.Lock()
        self._store: GraphStore | None = None
        self._tree: KnowledgeTree | None = None
        self._rebuilding: threading.Thread | None = None
        self._last_rebuild = -REBUILD_PAUSE
        self.last_rebuild: dict[str, Any] | None = None

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
        first = False
        with self._lock:
            if self._tree is None:
                tree = KnowledgeTree(store, self.files_dir, self.search_index)
                tree.ensure_ready()
                from hivematrix.knowledgetree.context import ACCOUNT_SCHEMA

                store.ensure_schema(ACCOUNT_SCHEMA)
                tree.rebuild_due = self.rebuild_in_background
                self._tree = tree
                first = True
            ready = self._tree
        if first and self.rebuild_on_start:
            self._check_index(ready)
        return ready

    def _check_index(self, tree: KnowledgeTree) -> None:
        """At start: not ready means a rebuild (searches use the graph meanwhile); ready but
        holding another number of items than the graph (a process that died between its
        graph write and the index update, a graph restored from a backup) means a rebuild
        too, while the index keeps answering."""
        index = self.search_index
        if index is None:
            return
        if index.state() != "ready":
            self.rebuild_in_background()
            return
        def differs() -> bool:
            return index.count() != tree.item_count()

        def recent() -> bool:
            # Counts differ for a while whenever a write is between its graph statement and
            # its index commit (a sync's company batch): workers starting together, or
            # restarting, rebuild once per RECOUNT_PAUSE at most.
            age = index.rebuilt_seconds_ago()
            return age is not None and age < RECOUNT_PAUSE

        try:
            if recent() or not differs():
                return
        except GraphError:
            return
        log.warning("the search index holds %d items, the graph %d: rebuilding it",
                    index.count(), tree.item_count())
        self.rebuild_in_background(force=True, skip_if=lambda: recent() or not differs())

    def rebuild_in_background(self, *, force: bool = False,
                              skip_if: Callable[[], bool] | None = None) -> bool:
        """Start rebuilding the search index from the graph in a thread, unless one runs or
        (without ``force``) one started less than ``REBUILD_PAUSE`` seconds ago; True when one
        was started. Without ``force`` it does nothing once the lock is held and the index is
        ready: other processes doing the same wait for the writer lock, then find it ready;
        ``skip_if`` is asked then too."""
        if self.search_index is None:
            return False
        tree = self.tree() if force else self._tree
        if tree is None:
            return False
        with self._lock:
            running = self._rebuilding is not None and self._rebuilding.is_alive()
            if running or (not force
                           and time.monotonic() - self._last_rebuild < REBUILD_PAUSE):
                return False
            self._last_rebuild = time.monotonic()
            thread = threading.Thread(target=self._rebuild, args=(tree, not force, skip_if),
                                      name="knowledgetree-search-rebuild", daemon=True)
            self._rebuilding = thread
        thread.start()
        return True

    def _rebuild(self, tree: KnowledgeTree, only_if_needed: bool,
                 skip_if: Callable[[], bool] | None) -> None:
        started = time.monotonic()
        try:
            added = tree.rebuild_search_index(only_if_needed=only_if_needed, skip_if=skip_if)
        except Exception as exc:  # a background thread: log it, searches keep the graph
            log.error("rebuilding the search index failed: %s", exc)
            self.last_rebuild = {"error": f"{type(exc).__name__}: {exc}"}
            return
        seconds = round(time.monotonic() - started, 3)
        if added is not None:
            log.info("search index rebuilt: %d items in %.1f s", added, seconds)
            self.last_rebuild = {"items": added, "seconds": seconds}

    def wait_for_rebuild(self, timeout: float | None = None) -> None:
        """Until the background rebuild (if any) is done (tests, the CLI)."""
        thread = self._rebuilding
        if thread is not None:
            thread.join(timeout)

    def search_status(self) -> dict[str, Any]:
        """``search_index`` (``disabled``, ``missing``, ``empty``, ``stale``, ``ready``),
        ``rebuilding``, ``documents`` when ready, ``last_rebuild`` by this process."""
        index = self.search_index
        if index is None:
            return {"search_index": "disabled"}
        state = index.state()
        details: dict[str, Any] = {"search_index": state,
                                   "rebuilding": bool(self._rebuilding is not None
                                                      and self._rebuilding.is_alive())}
        if state == "ready":
            details["documents"] = index.count()
        if self.last_rebuild is not None:
            details["last_rebuild"] = self.last_rebuild
        return details

    def search_health(self) -> Check:
        """The search index: ready (or turned off) is healthy, and so is a rebuild under way
        (searches answer from the graph meanwhile; Helm waits for healthy before it calls a
        service started, and a large tree takes a while). Not ready with no rebuild running
        (the last one failed) degrades the service."""
        details = self.search_status()
        healthy = details["search_index"] in ("ready", "disabled") or details["rebuilding"]
        return Check("healthy" if healthy else "degraded", details)

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
        self.wait_for_rebuild()
        with self._lock:
            if self.search_index is not None:
                self.search_index.close()
            if self._store is not None:
                self._store.close()
            self._store = None
            self._tree = None
