"""Helm's resource charts: the sample history's bound, the SVG chart module, and the metrics
and service detail pages."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from hivematrix.common.db import Database
from hivematrix.helm import jobs
from hivematrix.helm.models import ServiceSample


def add_samples(database: Database, service: str, times: list[datetime],
                cpu: float | None = 1.0, memory: float | None = 50.0,
                state: str = "running") -> None:
    with database.sessionmaker() as session:
        session.add_all(ServiceSample(service=service, timestamp=when, cpu_percent=cpu,
                                      memory_mb=memory, uptime_seconds=10.0, state=state)
                        for when in times)
        session.commit()


def test_old_samples_are_pruned_in_batches(helm_db: Database) -> None:
    now = datetime(2026, 6, 1, 12, tzinfo=UTC)
    add_samples(helm_db, "core", [now - timedelta(hours=hours) for hours in range(1, 11)])
    with helm_db.sessionmaker() as session:
        assert jobs.prune_samples(session, 0, now=now) == 0  # 0 keeps them
        assert jobs.prune_samples(session, 4.5, now=now, batch_size=2) == 6
    with helm_db.sessionmaker() as session:
        left = sorted(session.scalars(select(ServiceSample.timestamp)))
    assert left == [now - timedelta(hours=hours) for hours in (4, 3, 2, 1)]
