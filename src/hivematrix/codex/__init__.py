"""Codex: the master data hub — companies, contacts, assets, network gear, tickets, agents.

PSA (Freshservice, ConnectWise Manage) and RMM (Datto RMM) connectors keep it in step with
the vendors; Ledger, Beacon and the assistant read it through its API.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from apiflask import APIFlask

from hivematrix.common import create_service_app
from hivematrix.common.registry import ServiceSpec

SERVICE = ServiceSpec(
    name="codex",
    factory="hivematrix.codex:create_app",
    port=5010,
    title="Codex",
    description="Companies, contacts, assets, network equipment and tickets",
    migrations="hivematrix.codex",
    depends_on=("core",),
)


def create_app(settings: Mapping[str, Any] | None = None) -> APIFlask:
    """Build the Codex app; ``settings`` override files and environment (tests)."""
    from hivematrix.codex.settings import DEFAULTS
    from hivematrix.codex.views import blueprints

    app = create_service_app(SERVICE.name, settings, title="HiveMatrix Codex",
                             blueprints=blueprints(), defaults=DEFAULTS)
    if app.config["CODEX_SCHEDULER"] and not app.testing:
        from hivematrix.codex.scheduler import Scheduler

        app.extensions["codex.scheduler"] = Scheduler(
            app.config, app.extensions["hivematrix.db"]).start()
    return app
