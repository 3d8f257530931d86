"""The backend used when no AI model is configured: it says so plainly, as the reply.

Everything around the model — sessions, tools, filtering, approvals — still works and is
testable with it.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from hivematrix.brainhair.backends.base import (
    Event,
    HistoryMessage,
    StopRequested,
    ToolExecutor,
)
from hivematrix.brainhair.tools.base import Tool

NOT_CONFIGURED = ("No AI model is configured for Brainhair, so there is no one to answer. "
                  "An administrator can set BRAINHAIR_BACKEND to claude-cli (the Claude Code "
                  "CLI) or anthropic-api (with ANTHROPIC_API_KEY).")


class NoneBackend:
    """Answers every turn with one sentence: why there is no answer."""

    name = "none"

    def __init__(self, reason: str = NOT_CONFIGURED) -> None:
        self.reason = reason

    def available(self) -> str | None:
        return None  # it always "answers": with the reason

    def run_turn(self, *, system_prompt: str, history: Sequence[HistoryMessage],
                 message: str, tools: Sequence[Tool], execute: ToolExecutor,
                 should_stop: StopRequested) -> Iterator[Event]:
        yield Event(kind="text", text=self.reason)
