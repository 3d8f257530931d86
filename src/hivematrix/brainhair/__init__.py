"""Brainhair: the AI assistant — chat sessions over tools that call the other services on
behalf of the chatting user, PHI/CJIS filtering of everything the model sees and says, and
human approval of every write.

The pieces, each plain Python testable without Flask:

- :mod:`~hivematrix.brainhair.phi` — the Presidio filter (entity sets, allow-lists, batches);
- :mod:`~hivematrix.brainhair.approvals` — approvals stored in the database, decided only by
  the session's owner, audited;
- :mod:`~hivematrix.brainhair.buffer` — a turn's chunks in the database, so any worker answers
  a poll;
- :mod:`~hivematrix.brainhair.sessions` — chats owned by one user, searched, closed when idle
  by one process per deployment;
- :mod:`~hivematrix.brainhair.chat` — the turn runner: a user message in, filtered chunks and
  stored messages out;
- :mod:`~hivematrix.brainhair.tools` — the one tool registry, served to the Claude Code CLI
  over MCP and to the Anthropic API as tool-use schemas;
- :mod:`~hivematrix.brainhair.backends` — the model backends behind one interface.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from apiflask import APIFlask

from hivematrix.common import create_service_app
from hivematrix.common.registry import ServiceSpec

SERVICE = ServiceSpec(
    name="brainhair",
    factory="hivematrix.brainhair:create_app",
    port=5050,
    title="Brainhair",
    description="AI assistant with PHI/CJIS filtering and human approval of writes",
    migrations="hivematrix.brainhair",
    depends_on=("core", "codex", "ledger", "knowledgetree"),
)


def create_app(settings: Mapping[str, Any] | None = None) -> APIFlask:
    """Build the Brainhair app; ``settings`` override files and environment (tests)."""
    from hivematrix.brainhair.api import blueprints
    from hivematrix.brainhair.settings import DEFAULTS

    app = create_service_app(SERVICE.name, settings, title="HiveMatrix Brainhair",
                             blueprints=blueprints(), defaults=DEFAULTS)
    from hivematrix.brainhair.phi import health_check

    app.extensions["hivematrix.health"].add("phi_filter", health_check, critical=False)
    if app.config["BRAINHAIR_SCHEDULER"] and not app.testing:
        from hivematrix.brainhair.sessions import IdleCloser

        app.extensions["brainhair.idle_closer"] = IdleCloser(app).start()
    return app
