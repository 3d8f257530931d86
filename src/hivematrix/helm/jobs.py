"""Helm's background jobs: the log tailer, log retention and the metrics sampler.

Each job is a daemon thread that runs one step every ``interval`` seconds. Several gunicorn
workers may each create the app, but a job runs in one process only: before its first step
a job takes an exclusive lock on ``$HIVEMATRIX_HOME/run/helm-<job>.lock`` (``flock``, released
by the kernel when the process ends, so a crashed worker never leaves a stale lock); the
jobs of the other workers keep trying and take over when that process goes away.

The steps are plain functions (:func:`hivematrix.helm.tailer.tail_once`,
:func:`hivematrix.helm.logstore.retention_once`, :func:`sample_services`), so tests drive
them one call at a time.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from hivematrix.common.db import Database
from hivematrix.common.registry import read_services
from hivematrix.helm import lifecycle
from hivematrix.helm.logstore import retention_once
from hivematrix.helm.models import ServiceSample
from hivematrix.helm.tailer import tail_once

log = logging.getLogger("hivematrix.helm.jobs")
#: Seconds between attempts to take a lock another process holds.
LOCK_RETRY_SECONDS = 5.0


class FileLock:
    """An exclusive, non-blocking ``flock`` on one file, held until :meth:`release`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> bool:
        """Take the lock if nobody holds it; True when this object holds it now."""
        if self._fd is not None:
            return True
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        return True

    def release(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def sample_services(session: Session, home: Path, services: dict[str, Any],
                    *, now: datetime | None = None) -> int:
    """Store one :class:`ServiceSample` per service in ``services`` (``services.json``)."""
    listed = []
    for name, entry in services.items():
        if isinstance(entry, dict) and entry.get("url") and entry.get("port"):
            listed.append((name, str(entry["url"]), int(entry["port"])))
    when = now or datetime.now(UTC)
    statuses = lifecycle.statuses(home, listed)
    for status in statuses:
        session.add(ServiceSample(service=status.name, timestamp=when,
                                  cpu_percent=status.cpu_percent, memory_mb=status.memory_mb,
                                  uptime_seconds=status.uptime_seconds, state=status.state))
    session.commit()
    return len(statuses)


def prune_samples(session: Session, hours: float, *, now: datetime | None = None,
                  batch_size: int = 5000) -> int:
    """Delete samples older than ``hours`` (``HELM_METRICS_RETENTION_HOURS``; 0 keeps them
    until log retention takes them), committing per batch. Returns the samples removed.

    Charts show a day at most, and a sample every 30 s for every service adds up: without this
    bound ``HELM_LOG_RETENTION_DAYS=0`` would keep them forever.
    """
    if hours <= 0:
        return 0
    cutoff = (now or datetime.now(UTC)) - timedelta(hours=hours)
    removed = 0
    while True:
        doomed = (select(ServiceSample.id).where(ServiceSample.timestamp < cutoff)
                  .limit(batch_size).scalar_subquery())
        result = session.execute(delete(ServiceSample).where(ServiceSample.id.in_(doomed)))
        session.commit()
        count = int(getattr(result, "rowcount", 0) or 0)
        removed += count
        if count < batch_size:
            return removed


class Job(threading.Thread):
    """Runs ``step`` every ``interval`` seconds in the process that holds ``lock``."""

    def __init__(self, name: str, interval: float, step: Callable[[], object],
                 lock: FileLock) -> None:
        super().__init__(name=f"helm-{name}", daemon=True)
        self.job = name
        self.interval = max(0.05, interval)
        self.step = step
        self.lock = lock
        self.stopping = threading.Event()
        self.runs = 0
        self._failed_at = float("-inf")

    def run(self) -> None:
        try:
            while not self.stopping.is_set():
                if not self.lock.acquire():
                    self.stopping.wait(LOCK_RETRY_SECONDS)
                    continue
                self._step()
                self.stopping.wait(self.interval)
        finally:
            self.lock.release()

    def _step(self) -> None:
        try:
            self.step()
            self.runs += 1
        except Exception:
            # Once a minute at most: a job failing every second must not flood the logs
            # (which this very service reads back).
            now = time.monotonic()
            if now - self._failed_at >= 60:
                self._failed_at = now
                log.exception("Helm job %s failed", self.job)

    def stop(self, timeout: float = 5.0) -> None:
        self.stopping.set()
        if self.is_alive():
            self.join(timeout)


def build_jobs(config: dict[str, Any], database: Database) -> list[Job]:
    """The jobs the settings ask for (not started)."""
    home = Path(config["HIVEMATRIX_HOME"])
    run_dir = home / "run"

    def locked(name: str) -> FileLock:
        return FileLock(run_dir / f"helm-{name}.lock")

    def tail() -> None:
        with database.sessionmaker() as session:
            tail_once(session, home / "logs")

    def retain() -> None:
        with database.sessionmaker() as session:
            retention_once(session, int(config["HELM_LOG_RETENTION_DAYS"]))

    def sample() -> None:
        with database.sessionmaker() as session:
            sample_services(session, home, read_services(config["SERVICES_FILE"]))
            prune_samples(session, float(config["HELM_METRICS_RETENTION_HOURS"]))

    jobs = []
    if config["HELM_TAIL_LOGS"]:
        jobs.append(Job("tailer", float(config["HELM_TAIL_INTERVAL_SECONDS"]), tail,
                        locked("tailer")))
    if int(config["HELM_LOG_RETENTION_DAYS"]) > 0:
        jobs.append(Job("retention", float(config["HELM_RETENTION_INTERVAL_SECONDS"]), retain,
                        locked("retention")))
    if float(config["HELM_METRICS_INTERVAL_SECONDS"]) > 0:
        jobs.append(Job("metrics", float(config["HELM_METRICS_INTERVAL_SECONDS"]), sample,
                        locked("metrics")))
    return jobs


def start_jobs(config: dict[str, Any], database: Database) -> list[Job]:
    jobs = build_jobs(config, database)
    for job in jobs:
        job.start()
    return jobs
