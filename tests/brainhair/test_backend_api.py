"""The Anthropic API backend against the Messages API contract fake (real HTTP, real SDK)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Any

from hivematrix.brainhair.backends.anthropic_api import AnthropicBackend, api_messages
from hivematrix.brainhair.backends.base import Event, HistoryMessage, ToolResult
from hivematrix.brainhair.tools.base import Proposal, Tool
from tests.fakes.anthropic_api import API_KEY, FakeAnthropic, serve

SCHEMA = {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}


def _tools() -> list[Tool]:
    return [
        Tool(name="get_company", description="Read one company by name.", input_schema=SCHEMA,
             run=lambda ctx, data: {}),
        Tool(name="rename_company", description="Rename a company (needs approval).",
             input_schema=SCHEMA, run=lambda ctx, data: {},
             propose=lambda ctx, data: Proposal("rename")),
    ]


class Executor:
    """Records calls; ``rename_company`` waits for ``approve`` (a human deciding)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.threads: set[int] = set()
        self.approve = threading.Event()

    def __call__(self, name: str, tool_input: dict[str, Any]) -> ToolResult:
        self.calls.append((name, tool_input))
        self.threads.add(threading.get_ident())
        if name == "rename_company":
            if not self.approve.wait(10):
                return ToolResult("denied", is_error=True)
            return ToolResult(json.dumps({"name": tool_input["name"], "status": "renamed"}))
        return ToolResult(json.dumps({"name": tool_input.get("name"), "account": "620547"}))


def _backend(url: str, key: str = API_KEY) -> AnthropicBackend:
    return AnthropicBackend(api_key=key, model="claude-test-model", base_url=url,
                            timeout_seconds=10, max_retries=0)


def _run(backend: AnthropicBackend, executor: Executor, message: str = "Acme's account?",
         history: list[HistoryMessage] | None = None,
         should_stop: Callable[[], bool] = lambda: False) -> list[Event]:
    return list(backend.run_turn(system_prompt="You are Brainhair.", history=history or [],
                                 message=message, tools=_tools(), execute=executor,
                                 should_stop=should_stop))


def _text(events: list[Event]) -> str:
    return "".join(event.text for event in events if event.kind == "text")


def test_tool_loop_until_end_turn() -> None:
    fake = FakeAnthropic(replies=[
        [{"text": "Looking up Acme."}, {"tool": "get_company", "input": {"name": "Acme"}}],
        [{"text_from_result": "Acme's account number is {account}."}],
    ])
    executor = Executor()
    history = [HistoryMessage("user", "Hello"),
               HistoryMessage("assistant", "Hi, how can I help?")]
    with serve(fake) as url:
        events = _run(_backend(url), executor, history=history)
    kinds = [event.kind for event in events]
    assert "error" not in kinds, events
    assert _text(events) == "Looking up Acme.Acme's account number is 620547."
    assert kinds.count("text") > 3  # streamed word by word
    start, end = kinds.index("tool_start"), kinds.index("tool_end")
    assert start < end
    assert events[start].tool == "get_company" and events[start].input == {"name": "Acme"}
    assert json.loads(events[end].output)["account"] == "620547"
    assert executor.calls == [("get_company", {"name": "Acme"})]
    assert executor.threads == {threading.get_ident()}  # tools run in the turn's thread
    # The requests: our tools as schemas, the history, then the tool result.
    first, second = fake.requests
    assert first["model"] == "claude-test-model" and first["stream"] is True
    assert first["system"] == "You are Brainhair."
    assert [tool["name"] for tool in first["tools"]] == ["get_company", "rename_company"]
    assert first["tools"][0]["input_schema"] == SCHEMA
    assert [m["role"] for m in first["messages"]] == ["user", "assistant", "user"]
    assert first["messages"][-1]["content"] == "Acme's account?"
    result_block = second["messages"][-1]["content"][0]
    assert result_block["type"] == "tool_result" and result_block["is_error"] is False
    assert second["messages"][-2]["content"][1]["type"] == "tool_use"
    assert API_KEY in (fake.headers[0].get("X-Api-Key"), fake.headers[0].get("Authorization",
                                                                                "")[7:])
    assert fake.headers[0]["Anthropic-Version"]


def test_write_waits_for_the_executor() -> None:
    fake = FakeAnthropic(replies=[
        [{"tool": "rename_company", "input": {"name": "Acme Two"}}],
        [{"text_from_result": "Done: {name} is {status}."}],
    ])
    executor = Executor()
    threading.Timer(1.0, executor.approve.set).start()
    with serve(fake) as url:
        events = _run(_backend(url), executor)
    assert _text(events) == "Done: Acme Two is renamed."
    assert executor.calls == [("rename_company", {"name": "Acme Two"})]


def test_unknown_tool_is_not_executed() -> None:
    fake = FakeAnthropic(replies=[
        [{"tool": "drop_database", "input": {}}],
        [{"text_from_result": "Tool said: {text}"}],
    ])
    executor = Executor()
    with serve(fake) as url:
        events = _run(_backend(url), executor)
    end = next(event for event in events if event.kind == "tool_end")
    assert end.is_error and executor.calls == []
    assert "no tool named" in _text(events)


def test_message_text_is_sent_as_is() -> None:
    fake = FakeAnthropic(replies=[[{"echo_user": True}]])
    with serve(fake) as url:
        events = _run(_backend(url), Executor(), message="--help <img src=x onerror=alert(1)>")
    assert _text(events) == "--help <img src=x onerror=alert(1)>"


def test_stop_ends_the_turn_before_the_next_request() -> None:
    fake = FakeAnthropic(replies=[
        [{"tool": "get_company", "input": {"name": "Acme"}}],
        [{"text": "never sent"}],
    ])
    stop = threading.Event()

    class Stopping(Executor):
        def __call__(self, name: str, tool_input: dict[str, Any]) -> ToolResult:
            stop.set()
            return super().__call__(name, tool_input)

    with serve(fake) as url:
        events = _run(_backend(url), Stopping(), should_stop=stop.is_set)
    assert len(fake.requests) == 1
    assert "never sent" not in _text(events)


def test_stop_is_heard_while_the_api_has_not_answered() -> None:
    fake = FakeAnthropic(replies=[{"delay": 3, "blocks": [{"text": "too late"}]}])
    stop = threading.Event()
    threading.Timer(0.3, stop.set).start()
    with serve(fake) as url:
        started = time.monotonic()
        events = _run(_backend(url), Executor(), should_stop=stop.is_set)
        elapsed = time.monotonic() - started
    assert events == [] and elapsed < 1.5


def test_api_errors_are_error_events() -> None:
    with serve(FakeAnthropic(replies=[[{"text": "x"}]])) as url:
        events = _run(_backend(url, key="sk-ant-wrong"), Executor())
    assert [event.kind for event in events] == ["error"]
    assert "refused the configured key" in events[0].text
    fake = FakeAnthropic(replies=[{"error": 529, "type": "overloaded_error",
                                   "message": "Overloaded"}])
    with serve(fake) as url:
        events = _run(_backend(url), Executor())
    assert events[-1].kind == "error" and "529" in events[-1].text


def test_unreachable_api_is_an_error_event() -> None:
    backend = AnthropicBackend(api_key=API_KEY, base_url="http://127.0.0.1:9", max_retries=0,
                               timeout_seconds=2)
    events = _run(backend, Executor())
    assert [event.kind for event in events] == ["error"]
    assert "cannot be reached" in events[0].text


def test_available_and_from_config() -> None:
    assert AnthropicBackend.from_config({}).available() is not None
    assert "ANTHROPIC_API_KEY" in (AnthropicBackend().available() or "")
    events = list(AnthropicBackend().run_turn(system_prompt="", history=[], message="hi",
                                              tools=[], execute=Executor(),
                                              should_stop=lambda: False))
    assert [event.kind for event in events] == ["error"]
    backend = AnthropicBackend.from_config({"ANTHROPIC_API_KEY": "k", "BRAINHAIR_MODEL": "m",
                                            "ANTHROPIC_BASE_URL": "http://127.0.0.1:1"})
    assert (backend.available(), backend.model, backend.base_url) == (
        None, "m", "http://127.0.0.1:1")


def test_api_messages_alternate_starting_with_user() -> None:
    history = [HistoryMessage("assistant", "Welcome"), HistoryMessage("user", "a"),
               HistoryMessage("user", "b"), HistoryMessage("assistant", "")]
    assert api_messages(history, "c") == [{"role": "user", "content": "a\n\nb\n\nc"}]
