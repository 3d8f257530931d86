"""``GET /health``: component checks rolled up into healthy, degraded or unhealthy.

A check returns a :class:`Check`. A failing *critical* check makes the service unhealthy (503);
anything else that fails only degrades it (still 200, so one slow dependency does not make
every dependant report itself down). Expensive checks are marked ``deep`` and run only for
``/health?deep=1``.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

Status = Literal["healthy", "degraded", "unhealthy"]
_RANK: dict[Status, int] = {"healthy": 0, "degraded": 1, "unhealthy": 2}

log = logging.getLogger("hivematrix.health")


@dataclass
class Check:
    """The outcome of one component check."""

    status: Status
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Registered:
    run: Callable[[], Check]
    critical: bool
    deep: bool


class HealthChecks:
    """The checks one service runs for ``/health``."""

    def __init__(self, service: str) -> None:
        self.service = service
        self._checks: dict[str, _Registered] = {}

    def add(self, name: str, run: Callable[[], Check], *, critical: bool = True,
            deep: bool = False) -> None:
        """Register a check; ``critical`` failures make the service unhealthy."""
        self._checks[name] = _Registered(run, critical, deep)

    def run(self, *, deep: bool = False) -> dict[str, Any]:
        """Run the checks and return the health document."""
        overall: Status = "healthy"
        results: dict[str, Any] = {}
        for name, check in self._checks.items():
            if check.deep and not deep:
                continue
            started = time.perf_counter()
            try:
                outcome = check.run()
            except Exception as exc:  # a check must never take /health down with it
                log.warning("health check %s failed", name, exc_info=True)
                outcome = Check("unhealthy", {"error": type(exc).__name__})
            results[name] = {"status": outcome.status, **outcome.details,
                             "latency_ms": round((time.perf_counter() - started) * 1000, 2)}
            effective = outcome.status
            if effective == "unhealthy" and not check.critical:
                effective = "degraded"
            if _RANK[effective] > _RANK[overall]:
                overall = effective
        return {
            "service": self.service,
            "status": overall,
            "timestamp": datetime.now(UTC).isoformat(),
            "checks": results,
        }


def disk_check(path: str, degraded_percent: float = 85.0,
               unhealthy_percent: float = 95.0) -> Callable[[], Check]:
    """A check of free space on the file system holding ``path``."""

    def run() -> Check:
        usage = shutil.disk_usage(path)
        percent = round(usage.used / usage.total * 100, 1)
        status: Status = "healthy"
        if percent >= unhealthy_percent:
            status = "unhealthy"
        elif percent >= degraded_percent:
            status = "degraded"
        return Check(status, {"usage_percent": percent,
                              "free_gb": round(usage.free / 1024**3, 2),
                              "total_gb": round(usage.total / 1024**3, 2)})

    return run
