"""Ledger: the billing engine — plans, overrides, monthly receipts, QuickBooks invoices and
immutable snapshots of accepted bills.

The calculation itself (:mod:`hivematrix.ledger.calculation`) is a pure function over typed
inputs (:mod:`hivematrix.ledger.inputs`); invoices are rendered from its receipt
(:mod:`hivematrix.ledger.invoice`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from apiflask import APIFlask

from hivematrix.common import create_service_app
from hivematrix.common.registry import ServiceSpec

SERVICE = ServiceSpec(
    name="ledger",
    factory="hivematrix.ledger:create_app",
    port=5030,
    title="Ledger",
    description="Billing plans, monthly bills, QuickBooks invoices and the archive",
    migrations="hivematrix.ledger",
    depends_on=("core", "codex"),
)


def create_app(settings: Mapping[str, Any] | None = None) -> APIFlask:
    """Build the Ledger app; ``settings`` override files and environment (tests)."""
    from hivematrix.ledger.api import blueprints
    from hivematrix.ledger.settings import DEFAULTS

    app = create_service_app(SERVICE.name, settings, title="HiveMatrix Ledger",
                             blueprints=blueprints(), defaults=DEFAULTS)
    if app.config["LEDGER_SCHEDULER"] and not app.testing:
        from hivematrix.ledger.scheduler import Scheduler

        app.extensions["ledger.scheduler"] = Scheduler(app).start()
    return app
