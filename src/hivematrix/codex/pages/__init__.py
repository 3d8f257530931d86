"""Codex's web pages: server-rendered, thin views over the same business modules as the API.

One blueprint (``codex_pages``); each module below adds its routes to it when imported.
"""

from __future__ import annotations

from hivematrix.codex.pages import (  # noqa: F401 - imported for their routes
    assets,
    companies,
    contacts,
    imports,
    settings,
    sync,
)
from hivematrix.codex.pages.base import bp

__all__ = ["bp"]
