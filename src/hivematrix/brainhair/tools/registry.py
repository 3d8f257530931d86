"""The one registry of Brainhair's tools, served over MCP and as API tool-use schemas."""

from __future__ import annotations

import importlib
from typing import Any

from hivematrix.brainhair.tools import beacon, codex, contract, helm, knowledge, ledger, rmm
from hivematrix.brainhair.tools.base import Registry, Tool


def _session_tools(database: Any) -> list[Tool]:
    """The session tools (the chat title), when that module is installed: its ``TOOLS``, or
    its ``title_tool`` bound to Brainhair's database when one is given."""
    try:
        module = importlib.import_module("hivematrix.brainhair.tools.session")
    except ImportError:
        return []
    tools = list(getattr(module, "TOOLS", ()))
    title_tool = getattr(module, "title_tool", None)
    if not tools and database is not None and callable(title_tool):
        tools.append(title_tool(database))
    return tools


def default_registry(database: Any = None) -> Registry:
    """Every tool, grouped by service, then the session tools."""
    return Registry([*codex.TOOLS, *rmm.TOOLS, *beacon.TOOLS, *ledger.TOOLS, *knowledge.TOOLS,
                     *helm.TOOLS, *contract.TOOLS, *_session_tools(database)])
