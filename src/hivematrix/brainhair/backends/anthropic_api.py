"""The Anthropic API backend: the Messages API, streamed, with our tools as tool-use schemas.

The same tool registry the CLI reaches over MCP is sent here as ``tools``; the backend runs
the tool loop itself (``tool_use`` -> the executor -> ``tool_result`` -> the next request)
until the model ends its turn. The executor applies approvals, permissions and filtering, as
for the CLI. The API key is the service's own setting and goes nowhere else.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

import anthropic

from hivematrix.brainhair.backends.base import (
    Event,
    HistoryMessage,
    StopRequested,
    ToolExecutor,
    ToolResult,
)
from hivematrix.brainhair.tools.base import Tool

#: Requests in one turn before the loop gives up (a model calling tools without end).
MAX_ROUNDS = 25
#: How often a turn looks at ``should_stop`` while a reply streams.
TICK_SECONDS = 0.1


def api_messages(history: Sequence[HistoryMessage], message: str) -> list[dict[str, Any]]:
    """History plus the new message as the API wants it: starting with the user, alternating
    (neighbours of one role are joined, a leading assistant message is dropped)."""
    messages: list[dict[str, Any]] = []
    for item in [*history, HistoryMessage("user", message)]:
        if not item.content:
            continue
        if not messages and item.role != "user":
            continue
        if messages and messages[-1]["role"] == item.role:
            messages[-1]["content"] += "\n\n" + item.content
        else:
            messages.append({"role": item.role, "content": item.content})
    return messages


def tool_schemas(tools: Sequence[Tool]) -> list[dict[str, Any]]:
    return [{"name": tool.name, "description": tool.description,
             "input_schema": dict(tool.input_schema)} for tool in tools]


def _explain(exc: anthropic.AnthropicError) -> str:
    """A sentence for the user; the API's own message only where it helps an operator."""
    if isinstance(exc, anthropic.AuthenticationError):
        return "The Anthropic API refused the configured key."
    if isinstance(exc, anthropic.RateLimitError):
        return "The Anthropic API is rate limiting this key; try again shortly."
    if isinstance(exc, anthropic.APITimeoutError):
        return "The Anthropic API did not answer in time."
    if isinstance(exc, anthropic.APIConnectionError):
        return "The Anthropic API cannot be reached."
    if isinstance(exc, anthropic.APIStatusError):
        return f"The Anthropic API answered {exc.status_code}: {exc.message}"
    return f"The Anthropic API failed: {exc}"


class _Reply:
    """One streamed request, read by a thread so ``should_stop`` is heard within a tick even
    while the API has not answered yet; closing it closes the stream."""

    def __init__(self, client: anthropic.Anthropic, request: dict[str, Any]) -> None:
        self._client = client
        self._request = dict(request, messages=list(request["messages"]))
        self._queue: queue.Queue[tuple[str, Any]] = queue.Queue()
        self._stream: Any = None
        self._closed = threading.Event()
        self.final: Any = None
        self.error: anthropic.AnthropicError | None = None

    def _read(self) -> None:
        try:
            with self._client.messages.stream(**cast(Any, self._request)) as stream:
                self._stream = stream
                if self._closed.is_set():
                    return
                for event in stream:
                    if event.type == "text" and event.text:
                        self._queue.put(("text", event.text))
                self._queue.put(("final", stream.get_final_message()))
        except anthropic.AnthropicError as exc:
            self._queue.put(("error", exc))
        except Exception as exc:  # a stream closed under the reader after a stop, say
            self._queue.put(("error", anthropic.AnthropicError(str(exc))))

    def follow(self, should_stop: StopRequested) -> Iterator[Event]:
        threading.Thread(target=self._read, name="brainhair-anthropic", daemon=True).start()
        while True:
            if should_stop():
                return
            try:
                kind, item = self._queue.get(timeout=TICK_SECONDS)
            except queue.Empty:
                continue
            if kind == "text":
                yield Event(kind="text", text=item)
            elif kind == "final":
                self.final = item
                return
            else:
                self.error = item
                return

    def close(self) -> None:
        self._closed.set()
        stream = self._stream
        if stream is not None and self.final is None:
            with contextlib.suppress(Exception):
                stream.close()


@dataclass
class AnthropicBackend:
    api_key: str = ""
    model: str = "claude-sonnet-4-5"
    #: Tests point this at the contract fake; empty means the SDK's default (api.anthropic.com).
    base_url: str = ""
    max_tokens: int = 4096
    #: Seconds without an answer before a request fails.
    timeout_seconds: float = 120.0
    max_retries: int = 2
    name: str = "anthropic-api"

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> AnthropicBackend:
        return cls(api_key=str(config.get("ANTHROPIC_API_KEY") or ""),
                   model=str(config.get("BRAINHAIR_MODEL") or "claude-sonnet-4-5"),
                   base_url=str(config.get("ANTHROPIC_BASE_URL") or ""),
                   timeout_seconds=float(config.get("BRAINHAIR_TURN_IDLE_SECONDS") or 120))

    def available(self) -> str | None:
        if not self.api_key:
            return ("No Anthropic API key is configured (ANTHROPIC_API_KEY in Brainhair's "
                    "settings), so the assistant cannot answer.")
        return None

    def _client(self) -> anthropic.Anthropic:
        return anthropic.Anthropic(api_key=self.api_key, base_url=self.base_url or None,
                                   timeout=self.timeout_seconds, max_retries=self.max_retries)

    def run_turn(self, *, system_prompt: str, history: Sequence[HistoryMessage],
                 message: str, tools: Sequence[Tool], execute: ToolExecutor,
                 should_stop: StopRequested) -> Iterator[Event]:
        reason = self.available()
        if reason:
            yield Event(kind="error", text=reason)
            return
        client = self._client()
        offered = {tool.name for tool in tools}
        messages = api_messages(history, message)
        request: dict[str, Any] = {"model": self.model, "max_tokens": self.max_tokens,
                                   "system": system_prompt, "messages": messages}
        if tools:
            request["tools"] = tool_schemas(tools)
        for _round in range(MAX_ROUNDS):
            reply = _Reply(client, request)
            try:
                yield from reply.follow(should_stop)
            finally:
                reply.close()
            if reply.error is not None:
                yield Event(kind="error", text=_explain(reply.error))
                return
            final = reply.final
            if final is None:  # stopped
                return
            content = [block.model_dump(include={"type", "text", "id", "name", "input"})
                       for block in final.content if block.type in ("text", "tool_use")]
            messages.append({"role": "assistant", "content": content})
            if final.stop_reason == "max_tokens":
                yield Event(kind="status", text="The reply reached its length limit.")
            if final.stop_reason != "tool_use":
                return
            results: list[dict[str, Any]] = []
            yield from self._run_tools(final.content, execute, offered, results)
            if should_stop():
                return
            messages.append({"role": "user", "content": results})
        yield Event(kind="error", text=f"The model kept calling tools ({MAX_ROUNDS} rounds); "
                    "the turn was stopped.")

    def _run_tools(self, blocks: Sequence[Any], execute: ToolExecutor, offered: set[str],
                   results: list[dict[str, Any]]) -> Iterator[Event]:
        """Run the reply's tool calls in order; their results go into ``results``."""
        for block in blocks:
            if block.type != "tool_use":
                continue
            tool_input = block.input if isinstance(block.input, dict) else {}
            yield Event(kind="tool_start", tool=block.name, tool_id=block.id, input=tool_input)
            result = self._execute(execute, offered, block.name, tool_input)
            yield Event(kind="tool_end", tool=block.name, tool_id=block.id,
                        output=result.content, is_error=result.is_error)
            results.append({"type": "tool_result", "tool_use_id": block.id,
                            "content": result.content, "is_error": result.is_error})

    @staticmethod
    def _execute(execute: ToolExecutor, offered: set[str], name: str,
                 tool_input: dict[str, Any]) -> ToolResult:
        if name not in offered:
            return ToolResult(f"There is no tool named {name!r} in this chat.", is_error=True)
        try:
            return execute(name, tool_input)
        except Exception as exc:  # the model hears that the tool failed, not why
            return ToolResult(f"The tool {name} failed ({type(exc).__name__}).", is_error=True)
