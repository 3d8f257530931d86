"""Beacon: the ticket wall — active PSA tickets in four sections with SLA indicators.

Stateless: every answer is built from Codex's feed (``/api/tickets/active``); Beacon adds the
views (named sets of PSA groups), the agent filter, the columns and the wall screens.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from apiflask import APIFlask

from hivematrix.common import create_service_app
from hivematrix.common.registry import ServiceSpec

SERVICE = ServiceSpec(
    name="beacon",
    factory="hivematrix.beacon:create_app",
    port=5001,
    title="Beacon",
    description="Ticket wall: active tickets by section with SLA indicators",
    migrations=None,
    depends_on=("core", "codex"),
)


def create_app(settings: Mapping[str, Any] | None = None) -> APIFlask:
    """Build the Beacon app; ``settings`` override files and environment (tests).

    :raises SettingsError: ``BEACON_VIEWS`` or another Beacon setting cannot be used.
    """
    from hivematrix.beacon import codex
    from hivematrix.beacon import settings as beacon_settings
    from hivematrix.beacon.views import bp

    app = create_service_app(SERVICE.name, settings, title="HiveMatrix Beacon", blueprints=[bp],
                             defaults=beacon_settings.DEFAULTS, database=False)
    # Checked once at start: a wall with a broken configuration should not start at all.
    app.extensions["beacon.settings"] = beacon_settings.load(app.config)
    app.extensions["beacon.codex"] = codex.CodexFeed(
        app.extensions["hivematrix.service_client"],
        cache_seconds=app.config["BEACON_CODEX_CACHE_SECONDS"])
    app.extensions["hivematrix.health"].add(
        "codex", codex.health_check(app.extensions["beacon.codex"]), critical=False, deep=True)
    return app
