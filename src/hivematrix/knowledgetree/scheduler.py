"""The scheduled Codex sync: once per due time per deployment, and never two syncs at once.

KnowledgeTree has no SQL database, so both guarantees live in the graph every process already
shares (FalkorDB or Neo4j), each as one conditional write on one small node:

- **the slot claim** (``SyncSchedule``): due times are fixed slots (every N minutes from the
  Unix epoch, so all processes agree); a process runs a slot only if its write moved the
  node's ``last_slot`` forward. A slot missed while every process was down is not caught up.
- **the lease** (``SyncLease``): whoever runs a sync (the schedule or ``hivematrix
  knowledgetree sync``) holds it; it expires after ``KT_SYNC_LEASE_SECONDS`` unless renewed,
  so a crashed holder does not block syncs for ever. The holder writes its progress there
  (done, total, current company) and the last result, so any web worker can show them.

Both statements first touch the node they test (``SET n.touched = ...``): FalkorDB runs write
queries one at a time anyway, and on Neo4j that write lock makes the test-and-set atomic, as
the tree's own structural writes do with root.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from hivematrix.common.config import coerce
from hivematrix.knowledgetree import sync
from hivematrix.knowledgetree.graph import ConstraintViolation, GraphError, GraphStore, Schema
from hivematrix.knowledgetree.items import KnowledgeError, KnowledgeTree

log = logging.getLogger("hivematrix.knowledgetree.scheduler")

#: Settings the sync and its schedule read (the service's defaults should include them).
DEFAULTS: dict[str, Any] = {
    "KT_SCHEDULER": True,
    # Minutes between scheduled syncs (0 = off); seconds above 0 win (tests).
    "KT_SYNC_SCHEDULE_MINUTES": 60,
    "KT_SYNC_SCHEDULE_SECONDS": 0.0,
    "KT_SCHEDULER_TICK_SECONDS": 30.0,
    "KT_SYNC_LEASE_SECONDS": 600.0,
}
SYNC_LEASE = "codex-sync"
SCHEDULE_SCHEMA = Schema(label="SyncSchedule", indexed=("name",), unique=("name",))
LEASE_SCHEMA = Schema(label="SyncLease", indexed=("name",), unique=("name",))
#: Progress is written at most this often (the last step always).
PROGRESS_EVERY = 1.0


def who_am_i(role: str) -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{role}"


def interval(config: Mapping[str, Any]) -> timedelta | None:
    seconds = float(config.get("KT_SYNC_SCHEDULE_SECONDS") or 0)
    if seconds > 0:
        return timedelta(seconds=seconds)
    minutes = int(config.get("KT_SYNC_SCHEDULE_MINUTES", DEFAULTS["KT_SYNC_SCHEDULE_MINUTES"]))
    return timedelta(minutes=minutes) if minutes > 0 else None


def slot(now: datetime, every: timedelta) -> int:
    """The latest due time at or before ``now``, in whole seconds since the epoch."""
    step = max(1, int(every.total_seconds()))
    return int(now.timestamp()) // step * step


def claim(store: GraphStore, name: str, due: int, who: str) -> bool:
    """Take slot ``due`` of schedule ``name``; False when another process already has it."""
    try:
        rows = store.write(
            "MERGE (s:SyncSchedule {name: $name}) "
            "SET s.touched = coalesce(s.touched, 0) + 1 "
            "WITH s WHERE coalesce(s.last_slot, -1) < $due "
            "SET s.last_slot = $due, s.claimed_by = $who, s.claimed_at = $now "
            "RETURN s.claimed_by AS who",
            {"name": name, "due": due, "who": who, "now": time.time()})
    except ConstraintViolation:  # Neo4j: another process created the node at the same moment
        return False
    return bool(rows)


class Lease:
    """The right to run the sync, held by one process at a time (see the module docstring)."""

    def __init__(self, store: GraphStore, name: str, who: str, seconds: float = 600.0) -> None:
        self.store = store
        self.name = name
        self.who = who
        self.seconds = seconds
        self._renewed = 0.0
        self._reported = 0.0
        store.ensure_schema(LEASE_SCHEMA)

    def acquire(self) -> bool:
        now = time.time()
        try:
            rows = self.store.write(
                "MERGE (l:SyncLease {name: $name}) "
                "SET l.touched = coalesce(l.touched, 0) + 1 "
                "WITH l WHERE l.holder IS NULL OR l.until < $now OR l.holder = $who "
                "SET l.holder = $who, l.until = $until, l.started_at = $now, l.done = 0, "
                "l.total = 0, l.current = '' "
                "RETURN l.holder AS holder",
                {"name": self.name, "who": self.who, "now": now, "until": now + self.seconds})
        except ConstraintViolation:
            return False
        self._renewed = now
        return bool(rows)

    def _mine(self, assignments: str, params: Mapping[str, Any]) -> bool:
        rows = self.store.write(
            "MATCH (l:SyncLease {name: $name}) WHERE l.holder = $who "
            f"SET {assignments} RETURN l.holder AS holder",
            {"name": self.name, "who": self.who, **params})
        return bool(rows)

    def progress(self, done: int, total: int, current: str) -> None:
        """Record progress (rate-limited) and keep the lease alive while the sync works."""
        now = time.time()
        if done < total and now - self._reported < PROGRESS_EVERY:
            return
        self._reported = now
        self._renewed = now
        self._mine("l.done = $done, l.total = $total, l.current = $current, l.until = $until",
                   {"done": done, "total": total, "current": current,
                    "until": now + self.seconds})

    def release(self, result: sync.SyncResult | None = None, error: str | None = None) -> None:
        """Give the lease up, recording how the run ended."""
        outcome = ({**result.counts(), "messages": result.messages} if result is not None
                   else {"error": error or "the sync did not finish"})
        self._mine("l.holder = null, l.until = 0, l.current = '', l.finished_at = $now, "
                   "l.last_result = $outcome",
                   {"now": time.time(), "outcome": json.dumps(outcome, sort_keys=True)})

    def holder(self) -> str | None:
        rows = self.store.query("MATCH (l:SyncLease {name: $name}) "
                                "WHERE l.until >= $now RETURN l.holder AS holder",
                                {"name": self.name, "now": time.time()})
        return rows[0]["holder"] if rows else None


def status(store: GraphStore, name: str = SYNC_LEASE) -> dict[str, Any]:
    """What the admin page shows: whether a sync runs, its progress, the last result."""
    try:
        rows = store.query("MATCH (l:SyncLease {name: $name}) RETURN properties(l) AS lease",
                           {"name": name})
    except GraphError as exc:
        if "empty key" not in str(exc):
            raise
        rows = []  # FalkorDB: the graph holds nothing yet, so no sync ever ran
    lease = rows[0]["lease"] if rows else {}
    running = bool(lease.get("holder")) and float(lease.get("until") or 0) >= time.time()
    last = lease.get("last_result")
    return {"running": running, "holder": lease.get("holder") if running else None,
            "done": int(lease.get("done") or 0), "total": int(lease.get("total") or 0),
            "current": lease.get("current") or "",
            "finished_at": lease.get("finished_at"),
            "last_result": json.loads(last) if last else None}


ReaderFactory = Callable[[], sync.CodexReader]


def run_locked(tree: KnowledgeTree, reader: sync.CodexReader, who: str, *,
               companies: bool = True, tickets: bool = True,
               lease_seconds: float = 600.0,
               progress: sync.Progress | None = None) -> sync.SyncResult | None:
    """Run the sync under the lease; ``None`` when another process holds it.

    :raises sync.CodexError: Codex could not be read (recorded on the lease as well).
    """
    lease = Lease(tree.store, SYNC_LEASE, who, lease_seconds)
    if not lease.acquire():
        return None

    def report(done: int, total: int, current: str) -> None:
        lease.progress(done, total, current)
        if progress is not None:
            progress(done, total, current)

    try:
        result = sync.run(tree, reader, companies=companies, tickets=tickets, progress=report)
    except BaseException as exc:
        lease.release(error=str(exc) or type(exc).__name__)
        raise
    lease.release(result)
    return result


def tick(config: Mapping[str, Any], tree: KnowledgeTree, reader: ReaderFactory,
         now: datetime, who: str) -> sync.SyncResult | None:
    """Run the sync if its current slot is unclaimed and nobody is syncing; its result."""
    every = interval(config)
    if every is None:
        return None
    tree.store.ensure_schema(SCHEDULE_SCHEMA)
    if not claim(tree.store, SYNC_LEASE, slot(now, every), who):
        return None
    try:
        result = run_locked(tree, reader(), who,
                            lease_seconds=float(config.get("KT_SYNC_LEASE_SECONDS") or 600))
    except (sync.CodexError, KnowledgeError, GraphError) as exc:
        log.error(f"scheduled Codex sync failed: {exc}")
        return None
    if result is None:
        log.info("scheduled Codex sync skipped: another sync is running")
    elif result.errors:
        log.warning(f"scheduled Codex sync finished with {result.errors} errors: "
                    f"{result.counts()}")
    else:
        log.info(f"scheduled Codex sync done: {result.counts()}")
    return result


class Scheduler:
    """The loop, in a daemon thread of each KnowledgeTree process; ``tree`` is called each
    tick (the graph opens lazily and may be down for a while)."""

    def __init__(self, config: Mapping[str, Any], tree: Callable[[], KnowledgeTree],
                 reader: ReaderFactory) -> None:
        self.config = config
        self.tree = tree
        self.reader = reader
        self.who = who_am_i("scheduler")
        self.tick_seconds = float(config.get("KT_SCHEDULER_TICK_SECONDS")
                                  or DEFAULTS["KT_SCHEDULER_TICK_SECONDS"])
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, name="knowledgetree-scheduler",
                                       daemon=True)

    def start(self) -> Scheduler:
        self.thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def _loop(self) -> None:
        while not self._stop.wait(self.tick_seconds):
            try:
                tick(self.config, self.tree(), self.reader, datetime.now(UTC), self.who)
            except Exception:  # the loop must outlive any one failure
                log.exception("knowledgetree scheduler tick failed")


def start_for(app: Any) -> Scheduler | None:
    """Start the app's scheduler (not in tests, not when ``KT_SCHEDULER`` is off)."""
    # Typed here as well: until the service's defaults include these, a value from the
    # instance file arrives as text ("false" must not read as true).
    config = {**app.config, **{key: coerce(key, app.config.get(key, default), default)
                               for key, default in DEFAULTS.items()}}
    if not config["KT_SCHEDULER"] or app.testing:
        return None
    holder = app.extensions["knowledgetree"]
    client = app.extensions["hivematrix.service_client"]
    started = Scheduler(config, holder.tree, lambda: sync.HttpCodexReader(client)).start()
    app.extensions["knowledgetree.scheduler"] = started
    return started
