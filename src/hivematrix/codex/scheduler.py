"""Scheduled syncs that run exactly once per due time, however many workers or hosts run Codex.

Every process runs the same small loop; each schedule's due times are fixed slots (every N
minutes from the Unix epoch, so all processes agree). To run a slot a process inserts a
:class:`~hivematrix.codex.models.ScheduleClaim` row whose primary key is (schedule, slot):
the database lets exactly one insert succeed, and the others skip that slot. A slot missed
while every process was down is not caught up; the next one runs.

Intervals are settings (``CODEX_SCHEDULE_<KIND>_MINUTES``; 0 turns a schedule off, and
``CODEX_SCHEDULE_<KIND>_SECONDS`` above 0 wins, for tests); kinds whose vendor is not
configured are skipped. Each process looks every ``CODEX_SCHEDULER_TICK_SECONDS``.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.exc import IntegrityError

from hivematrix.codex.connectors.factory import NotConfigured
from hivematrix.codex.models import ScheduleClaim
from hivematrix.codex.sync import runner, service
from hivematrix.common.db import Database, utcnow

log = logging.getLogger("hivematrix.codex.scheduler")
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
TICK_SECONDS = 30.0
DEFAULT_MINUTES = {"tickets": 5, "psa": 1440, "rmm": 60, "agents": 1440}

Runner = Callable[[Mapping[str, Any], Database, str, str], tuple[str, str]]


def interval(config: Mapping[str, Any], kind: str) -> timedelta | None:
    seconds = float(config.get(f"CODEX_SCHEDULE_{kind.upper()}_SECONDS") or 0)
    if seconds > 0:
        return timedelta(seconds=seconds)
    raw = config.get(f"CODEX_SCHEDULE_{kind.upper()}_MINUTES", DEFAULT_MINUTES[kind])
    minutes = int(raw)
    return timedelta(minutes=minutes) if minutes > 0 else None


def slot(now: datetime, every: timedelta) -> datetime:
    """The latest due time at or before ``now``."""
    steps = (now - EPOCH) // every
    return EPOCH + steps * every


def claim(database: Database, name: str, due_at: datetime, who: str) -> bool:
    """Take a slot; False when another process already has it."""
    try:
        with database.transaction() as session:
            session.add(ScheduleClaim(name=name, due_at=due_at, claimed_by=who))
    except IntegrityError:
        return False
    return True


def _record_job(database: Database, name: str, due_at: datetime, job_id: str) -> None:
    with database.transaction() as session:
        row = session.get(ScheduleClaim, (name, due_at))
        if row is not None:
            row.job_id = job_id


def _run(config: Mapping[str, Any], database: Database, kind: str, who: str) -> tuple[str, str]:
    return service.run(config, database, kind, triggered_by=f"schedule ({who})")


def tick(config: Mapping[str, Any], database: Database, now: datetime, who: str,
         run: Runner = _run) -> list[tuple[str, str, str]]:
    """Run every schedule whose current slot nobody claimed yet: (kind, job id, status)."""
    done = []
    for kind in service.KINDS:
        every = interval(config, kind)
        if every is None:
            continue
        try:
            service.provider_of(config, kind)
        except NotConfigured:
            continue
        if kind == "agents" and not config.get("CODEX_SYNC_AGENTS", True):
            continue
        due_at = slot(now, every)
        if not claim(database, kind, due_at, who):
            continue
        try:
            job_id, status = run(config, database, kind, who)
        except runner.JobRunning as exc:
            log.info(f"scheduled {kind} sync skipped: {exc}")
            continue
        except Exception as exc:
            log.error(f"scheduled {kind} sync could not start: {exc}")
            continue
        _record_job(database, kind, due_at, job_id)
        done.append((kind, job_id, status))
    return done


class Scheduler:
    """The loop, in a daemon thread of each Codex process."""

    def __init__(self, config: Mapping[str, Any], database: Database) -> None:
        self.config = config
        self.database = database
        self.who = f"{socket.gethostname()}:{os.getpid()}"
        self.tick_seconds = float(config.get("CODEX_SCHEDULER_TICK_SECONDS") or TICK_SECONDS)
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, name="codex-scheduler", daemon=True)

    def start(self) -> Scheduler:
        self.thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def _loop(self) -> None:
        while not self._stop.wait(self.tick_seconds):
            try:
                tick(self.config, self.database, utcnow(), self.who)
            except Exception:  # the loop must outlive any one failure
                log.exception("scheduler tick failed")
