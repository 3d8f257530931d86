"""The one interface every model backend implements.

A backend runs one turn: it gets the conversation so far (already filtered), the tools the
user may use, and a :class:`ToolExecutor` that runs a tool by name (approvals, permission and
filtering all happen behind it), and yields :class:`Event` values as the model produces them.
The chat runner turns events into buffer chunks and stored messages; a backend never touches
the database, the approvals or the filter itself.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from hivematrix.brainhair.tools.base import Tool


@dataclass(frozen=True)
class HistoryMessage:
    role: Literal["user", "assistant"]
    content: str


@dataclass(frozen=True)
class ToolResult:
    """What a tool run gave back to the model: text (JSON for data), filtered already."""

    content: str
    is_error: bool = False


@dataclass(frozen=True)
class Event:
    """One thing a turn produced.

    - ``text``: a piece of the model's reply (``text``);
    - ``tool_start``: the model called ``tool`` with ``input`` (``tool_id`` pairs it);
    - ``tool_end``: that call finished (``output``, ``is_error``);
    - ``status``: a progress line for the user (``text``);
    - ``error``: the turn failed (``text`` says why, for the user).
    """

    kind: Literal["text", "tool_start", "tool_end", "status", "error"]
    text: str = ""
    tool: str = ""
    tool_id: str = ""
    input: dict[str, Any] = field(default_factory=dict)
    output: str = ""
    is_error: bool = False


class ToolExecutor(Protocol):
    """Runs a tool for this turn; blocks while a write waits for the human's decision."""

    def __call__(self, name: str, tool_input: dict[str, Any]) -> ToolResult: ...


class StopRequested(Protocol):
    def __call__(self) -> bool: ...


class Backend(Protocol):
    name: str

    def available(self) -> str | None:
        """``None`` when the backend can answer, else a plain sentence saying why not."""
        ...

    def run_turn(self, *, system_prompt: str, history: Sequence[HistoryMessage],
                 message: str, tools: Sequence[Tool], execute: ToolExecutor,
                 should_stop: StopRequested) -> Iterator[Event]:
        """One turn; returns when the model is done, failed or ``should_stop()`` said so."""
        ...
