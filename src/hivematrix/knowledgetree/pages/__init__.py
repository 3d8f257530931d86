"""KnowledgeTree's web pages: server-rendered, thin views over the same model as the API.

One blueprint (``knowledgetree_pages``); each module below adds its routes to it when
imported. Plain logic the pages need is in :mod:`.logic`; rendering articles is
:mod:`hivematrix.common.markdown`.
"""

from __future__ import annotations

from hivematrix.knowledgetree.pages import (  # noqa: F401 - imported for their routes
    admin,
    editor,
    explorer,
)
from hivematrix.knowledgetree.pages.base import bp

__all__ = ["bp"]
