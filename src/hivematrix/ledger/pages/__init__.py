"""Ledger's web pages: server-rendered, thin views over the same business modules as the API.

One blueprint (``ledger_pages``); each module below adds its routes to it when imported.
Page paths never collide with the API's (``/api/...``, ``/archive/snapshots...``,
``/archive/jobs...``, ``/archive/scheduler/...``, ``/archive/api/...``).
"""

from __future__ import annotations

# Imported for their routes.
from hivematrix.ledger.pages import archive as archive
from hivematrix.ledger.pages import clients as clients
from hivematrix.ledger.pages import dashboard as dashboard
from hivematrix.ledger.pages import plans as plans
from hivematrix.ledger.pages import scheduler as scheduler
from hivematrix.ledger.pages import settings as settings
from hivematrix.ledger.pages.base import bp

__all__ = ["bp"]
