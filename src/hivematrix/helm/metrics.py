"""CPU and memory over time per service, from the metrics sampler's ``ServiceSample`` rows.

Plain Python over a database session (no Flask): the metrics page and the service detail page
ask :func:`service_charts` and render what it returns.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from hivematrix.helm.charts import Chart, line_chart
from hivematrix.helm.models import ServiceSample

#: The range selector's choices.
RANGES = {"1h": timedelta(hours=1), "6h": timedelta(hours=6), "24h": timedelta(hours=24)}
DEFAULT_RANGE = "1h"
RANGE_LABELS = {"1h": "last hour", "6h": "last 6 hours", "24h": "last 24 hours"}


class UnknownRange(ValueError):
    """A range that is not one of :data:`RANGES`."""


@dataclass(frozen=True)
class ServiceCharts:
    service: str
    #: ``None`` when no sample in the range has a value (never sampled, or always stopped).
    cpu: Chart | None
    memory: Chart | None
    #: Samples in the range, with or without values.
    samples: int


def window(range_name: str, now: datetime | None = None) -> tuple[datetime, datetime]:
    """``(start, end)`` of a range ending now. :raises UnknownRange: not a known range."""
    if range_name not in RANGES:
        raise UnknownRange(f"must be one of {', '.join(RANGES)}")
    end = now or datetime.now(UTC)
    return end - RANGES[range_name], end


def service_charts(session: Session, names: Iterable[str], *, start: datetime,
                   end: datetime) -> list[ServiceCharts]:
    """Charts of each service in ``names`` (in that order) between ``start`` and ``end``."""
    wanted = list(dict.fromkeys(names))
    if not wanted:
        return []
    statement = (select(ServiceSample.service, ServiceSample.timestamp,
                        ServiceSample.cpu_percent, ServiceSample.memory_mb)
                 .where(ServiceSample.service.in_(wanted), ServiceSample.timestamp >= start,
                        ServiceSample.timestamp <= end)
                 .order_by(ServiceSample.timestamp))
    cpu: dict[str, list[tuple[datetime, float | None]]] = {name: [] for name in wanted}
    memory: dict[str, list[tuple[datetime, float | None]]] = {name: [] for name in wanted}
    for service, when, cpu_percent, memory_mb in session.execute(statement):
        cpu[service].append((when, cpu_percent))
        memory[service].append((when, memory_mb))
    return [ServiceCharts(
        service=name,
        cpu=line_chart(cpu[name], start=start, end=end, label=f"CPU % of {name}", unit="%",
                       floor=10.0),
        memory=line_chart(memory[name], start=start, end=end, label=f"Memory of {name}",
                          unit="MB", floor=10.0),
        samples=len(cpu[name])) for name in wanted]


def sampled_services(session: Session, since: datetime) -> list[str]:
    """Services with samples since ``since`` (one that left services.json still has some)."""
    statement = (select(ServiceSample.service).where(ServiceSample.timestamp >= since)
                 .distinct().order_by(ServiceSample.service))
    return list(session.scalars(statement))
