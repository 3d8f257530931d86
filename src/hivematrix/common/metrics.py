"""Prometheus metrics: request count and latency per endpoint, at ``GET /metrics``.

Each app gets its own registry, so several apps in one process (tests) do not collide. Under
gunicorn with several workers, set ``PROMETHEUS_MULTIPROC_DIR`` and the figures of all workers
are summed.
"""

from __future__ import annotations

import os
import time

from flask import Flask, Response, g, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)


class RequestMetrics:
    """The request counter and latency histogram of one service."""

    def __init__(self, service: str) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "hivematrix_http_requests", "HTTP requests handled",
            ["service", "method", "endpoint", "status"], registry=self.registry)
        self.latency = Histogram(
            "hivematrix_http_request_duration_seconds", "Time to handle a request",
            ["service", "method", "endpoint"], registry=self.registry)
        self.service = service

    def observe(self, method: str, endpoint: str, status: int, seconds: float) -> None:
        self.requests.labels(self.service, method, endpoint, str(status)).inc()
        self.latency.labels(self.service, method, endpoint).observe(seconds)

    def exposition(self) -> bytes:
        """The metrics in Prometheus text format."""
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
            return generate_latest(registry)
        return generate_latest(self.registry)


def init_app(app: Flask) -> RequestMetrics:
    """Time every request and expose ``/metrics``."""
    metrics = RequestMetrics(app.config["SERVICE_NAME"])
    app.extensions["hivematrix.metrics"] = metrics

    @app.before_request
    def start_timer() -> None:
        g.metrics_started = time.perf_counter()

    @app.after_request
    def record(response: Response) -> Response:
        started = g.pop("metrics_started", None)
        if started is not None:
            # The endpoint name, not the path, keeps label cardinality bounded.
            endpoint = request.endpoint or "unmatched"
            metrics.observe(request.method, endpoint, response.status_code,
                            time.perf_counter() - started)
        return response

    return metrics


def metrics_response() -> Response:
    """The ``/metrics`` view body."""
    from flask import current_app

    metrics: RequestMetrics = current_app.extensions["hivematrix.metrics"]
    return Response(metrics.exposition(), mimetype=CONTENT_TYPE_LATEST)
