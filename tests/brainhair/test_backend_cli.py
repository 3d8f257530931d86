"""The Claude Code CLI backend against the stand-in ``claude`` (tests/fakes/claude_cli.py).

Every turn runs a real process with the real MCP bridge: a tool call goes stand-in CLI ->
MCP (stdio) -> bridge -> tool socket -> the executor here, and its result goes back to the
"model", which echoes a field of it.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from hivematrix.brainhair.backends.base import Event, HistoryMessage, ToolResult
from hivematrix.brainhair.backends.claude_cli import ClaudeCliBackend, StreamParser
from hivematrix.brainhair.tools.base import Proposal, Tool
from tests.fakes import claude_cli as fake

SCHEMA = {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}
SECRETS = {"SECRET_KEY": "sk-flask-7f3a", "SERVICE_SECRET": "svc-secret-91b2",
           "DATABASE_URL": "postgresql://brainhair:pw-44c1@db/brainhair",
           "ANTHROPIC_API_KEY": "sk-ant-api-5e6d"}
ALLOWED_ENV = {"PATH", "HOME", "LANG", "DISABLE_AUTOUPDATER",
               "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "MCP_TOOL_TIMEOUT"}


def _tools() -> list[Tool]:
    return [
        Tool(name="get_company", description="Read one company by name.", input_schema=SCHEMA,
             run=lambda ctx, data: {}),
        Tool(name="rename_company", description="Rename a company (needs approval).",
             input_schema=SCHEMA, run=lambda ctx, data: {},
             propose=lambda ctx, data: Proposal("rename")),
    ]


class Executor:
    """Records calls; ``rename_company`` blocks until ``approve`` is set (a human deciding)."""

    def __init__(self, approve_after: float | None = None) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.threads: set[int] = set()
        self.approve = threading.Event()
        self.approve_after = approve_after

    def __call__(self, name: str, tool_input: dict[str, Any]) -> ToolResult:
        self.calls.append((name, tool_input))
        self.threads.add(threading.get_ident())
        if name == "rename_company":
            if self.approve_after is not None:
                threading.Timer(self.approve_after, self.approve.set).start()
            if not self.approve.wait(30):
                return ToolResult("denied", is_error=True)
            return ToolResult(json.dumps({"name": tool_input["name"], "status": "renamed"}))
        return ToolResult(json.dumps({"name": tool_input.get("name"), "account": "620547"}))


@pytest.fixture(autouse=True)
def _service_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    """The service's process environment holds secrets the CLI must never see."""
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)


def _backend(wrapper: Path, idle: float = 20.0) -> ClaudeCliBackend:
    return ClaudeCliBackend(executable=str(wrapper), model="claude-test-model",
                            idle_seconds=idle, install_dir=None)


def _run(backend: ClaudeCliBackend, executor: Executor, message: str = "What is Acme's account?",
         history: list[HistoryMessage] | None = None,
         should_stop: Callable[[], bool] = lambda: False) -> list[Event]:
    return list(backend.run_turn(system_prompt="You are Brainhair, the MSP's assistant.",
                                 history=history or [], message=message, tools=_tools(),
                                 execute=executor, should_stop=should_stop))


def _text(events: list[Event]) -> str:
    return "".join(event.text for event in events if event.kind == "text")


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_reply_streams_and_tool_result_reaches_the_model(tmp_path: Path) -> None:
    wrapper = fake.install(tmp_path, {"steps": [
        {"tool": "get_company", "input": {"name": "Acme"}, "say_before": "Looking up Acme. "},
        {"say_from_result": "Acme's account number is {account}."},
    ]})
    executor = Executor()
    events = _run(_backend(wrapper), executor)
    kinds = [event.kind for event in events]
    assert "error" not in kinds, events
    assert _text(events) == "Looking up Acme. Acme's account number is 620547."
    # Streamed in pieces, in order: text, the tool call, its result, the rest of the text.
    assert kinds.count("text") > 3
    start = kinds.index("tool_start")
    end = kinds.index("tool_end")
    assert kinds.index("text") < start < end < len(kinds) - 1 - kinds[::-1].index("text")
    assert events[start].tool == "get_company" and events[start].input == {"name": "Acme"}
    assert events[end].tool_id == events[start].tool_id
    assert json.loads(events[end].output) == {"name": "Acme", "account": "620547"}
    assert executor.calls == [("get_company", {"name": "Acme"})]
    # The executor runs in the thread that runs the turn (its database session lives there).
    assert executor.threads == {threading.get_ident()}


def test_argv_env_and_files_the_cli_is_given(tmp_path: Path) -> None:
    wrapper = fake.install(tmp_path, {"steps": [{"say": "Hello."}]})
    events = _run(_backend(wrapper), Executor(), message="What is Acme's account?")
    assert _text(events) == "Hello."
    seen = fake.record_of(wrapper)
    argv = seen["argv"]
    assert "What is Acme's account?" not in " ".join(argv)
    assert seen["messages"][-1] == "What is Acme's account?"
    assert json.loads(seen["stdin"])["type"] == "user"
    # Built-in tools off both ways, our MCP server only, permission prompts to our bridge.
    assert argv[argv.index("--tools") + 1] == ""
    assert {"Bash", "Read", "Write", "WebFetch", "WebSearch"} <= set(
        argv[argv.index("--disallowedTools") + 1].split(","))
    assert "--strict-mcp-config" in argv
    assert argv[argv.index("--permission-prompt-tool") + 1] == "mcp__brainhair__approve"
    assert argv[argv.index("--model") + 1] == "claude-test-model"
    assert list(seen["mcp_config"]) == ["brainhair"]
    assert seen["system_prompt"] == "You are Brainhair, the MSP's assistant."
    assert "You are Brainhair" not in " ".join(argv)
    # The environment: only what the CLI needs, none of the service's secrets.
    env = seen["env"]
    assert set(env) <= ALLOWED_ENV | {"PWD", "SHLVL", "_"}  # the last three: /bin/sh's own
    for value in SECRETS.values():
        assert value not in json.dumps(env) and value not in " ".join(argv)
        assert value not in json.dumps(seen["mcp_config"])
    assert env["HOME"] != os.environ.get("HOME")
    assert not Path(env["HOME"]).exists()  # the private home is removed after the turn
    assert not Path(seen["cwd"]).exists()


def test_message_starting_with_a_dash_goes_through_stdin(tmp_path: Path) -> None:
    wrapper = fake.install(tmp_path, {"steps": [{"echo_message": True}]})
    message = "--dangerously-skip-permissions please list every password"
    history = [HistoryMessage("user", "-p hello"), HistoryMessage("assistant", "Hi there.")]
    events = _run(_backend(wrapper), Executor(), message=message, history=history)
    assert "error" not in [event.kind for event in events], events
    assert _text(events) == message
    seen = fake.record_of(wrapper)
    assert message not in seen["argv"] and "-p hello" not in seen["argv"]
    assert "--dangerously-skip-permissions" not in seen["argv"]
    assert "User: -p hello" in seen["messages"][0] and "Assistant: Hi there." in seen["messages"][0]


def test_long_history_does_not_hit_the_argv_limit(tmp_path: Path) -> None:
    wrapper = fake.install(tmp_path, {"steps": [{"say": "Read it all."}]})
    long_text = "ticket notes " * 25_000  # 325 KB, beyond Linux's 128 KB for one argument
    history = [HistoryMessage("user", long_text), HistoryMessage("assistant", "Noted.")]
    events = _run(_backend(wrapper), Executor(), history=history)
    assert "error" not in [event.kind for event in events], events
    assert long_text.strip() in fake.record_of(wrapper)["messages"][0]


def test_write_waiting_for_approval_is_not_an_idle_process(tmp_path: Path) -> None:
    wrapper = fake.install(tmp_path, {"steps": [
        {"tool": "rename_company", "input": {"name": "Acme Two"}},
        {"say_from_result": "Done: {name} is {status}."},
    ]})
    # The CLI starts in about 2 s here (more on a busy machine); the human decides 10 s after
    # the write was asked, longer than the idle limit.
    executor = Executor(approve_after=10.0)
    events = _run(_backend(wrapper, idle=8.0), executor)
    assert "error" not in [event.kind for event in events], events
    assert _text(events) == "Done: Acme Two is renamed."
    assert executor.calls == [("rename_company", {"name": "Acme Two"})]


def test_builtin_tools_are_not_available(tmp_path: Path) -> None:
    wrapper = fake.install(tmp_path, {"steps": [
        {"tool": "Bash", "input": {"command": "env"}},
        {"say_from_result": "Bash said: {text}"},
    ]})
    executor = Executor()
    events = _run(_backend(wrapper), executor)
    end = next(event for event in events if event.kind == "tool_end")
    assert end.is_error and "No such tool" in end.output
    assert executor.calls == []


def test_idle_timeout_kills_a_silent_process(tmp_path: Path) -> None:
    wrapper = fake.install(tmp_path, {"steps": [{"say": "Thinking"}, {"hang": True}]})
    started = time.monotonic()
    events = _run(_backend(wrapper, idle=8.0), Executor())
    elapsed = time.monotonic() - started
    assert _text(events) == "Thinking"
    assert events[-1].kind == "error" and "no output" in events[-1].text
    assert 8 < elapsed < 20
    seen = fake.record_of(wrapper)
    assert _gone(int(seen["pid"]))


def test_stop_terminates_then_kills(tmp_path: Path) -> None:
    wrapper = fake.install(tmp_path, {"steps": [
        {"ignore_sigterm": True}, {"say": "Working on it"}, {"hang": True}]})
    stop = threading.Event()
    events: list[Event] = []
    started = time.monotonic()
    for event in _backend(wrapper).run_turn(
            system_prompt="s", history=[], message="m", tools=_tools(), execute=Executor(),
            should_stop=stop.is_set):
        events.append(event)
        if event.kind == "text":
            stop.set()
            started = time.monotonic()
    elapsed = time.monotonic() - started
    assert [event.kind for event in events if event.kind == "error"] == []
    assert 1.5 < elapsed < 6  # SIGTERM ignored, SIGKILL after the 2 s grace
    assert _gone(int(fake.record_of(wrapper)["pid"]))


def test_nonzero_exit_is_an_error_and_output_before_it_is_kept(tmp_path: Path) -> None:
    wrapper = fake.install(tmp_path, {"steps": [
        {"say": "Partial answer"}, {"exit": 3, "stderr": "API Error: overloaded"}]})
    events = _run(_backend(wrapper), Executor())
    assert _text(events) == "Partial answer"
    assert events[-1].kind == "error"
    assert "code 3" in events[-1].text and "overloaded" in events[-1].text


def test_error_result_and_non_json_lines(tmp_path: Path) -> None:
    wrapper = fake.install(tmp_path, {"steps": [
        {"raw": "Update available: 9.9.9"}, {"fail": "rate limited"}]})
    events = _run(_backend(wrapper), Executor())
    assert Event(kind="status", text="Update available: 9.9.9") in events
    errors = [event for event in events if event.kind == "error"]
    assert len(errors) == 1 and "rate limited" in errors[0].text


def test_unknown_flag_is_refused_like_the_real_cli(tmp_path: Path) -> None:
    wrapper = fake.install(tmp_path, {"steps": [{"say": "never"}]})
    done = subprocess.run([str(wrapper), "--print", "--bogus"], input=b"hi",
                          capture_output=True, timeout=30, check=False)
    assert done.returncode == 1 and b"unknown option '--bogus'" in done.stderr
    # A message passed as argv starting with "-" would be read as a flag.
    done = subprocess.run([str(wrapper), "--print", "-rm everything"], input=b"",
                          capture_output=True, timeout=30, check=False)
    assert done.returncode == 1


def test_available_says_how_to_install(tmp_path: Path) -> None:
    missing = ClaudeCliBackend(executable=str(tmp_path / "nowhere" / "claude"),
                               install_dir=tmp_path)
    message = missing.available()
    assert message is not None and "hivematrix brainhair install-cli" in message
    events = list(missing.run_turn(system_prompt="", history=[], message="hi", tools=[],
                                   execute=Executor(), should_stop=lambda: False))
    assert [event.kind for event in events] == ["error"]
    # The copy `install-cli` puts under $HIVEMATRIX_HOME/brainhair/cli is found by name.
    bin_dir = tmp_path / "node_modules" / ".bin"
    bin_dir.mkdir(parents=True)
    fake.install(bin_dir, {"steps": []}, name="claude-hm-test")
    installed = ClaudeCliBackend(executable="claude-hm-test", install_dir=tmp_path)
    assert installed.available() is None
    assert installed.resolve() == str(bin_dir / "claude-hm-test")


def test_from_config_reads_the_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HIVEMATRIX_HOME", str(tmp_path))
    backend = ClaudeCliBackend.from_config({
        "BRAINHAIR_CLI_PATH": "/opt/claude/bin/claude", "BRAINHAIR_MODEL": "claude-opus-4-1",
        "BRAINHAIR_TURN_IDLE_SECONDS": 45, "BRAINHAIR_APPROVAL_SECONDS": 120})
    assert (backend.executable, backend.model, backend.idle_seconds) == (
        "/opt/claude/bin/claude", "claude-opus-4-1", 45.0)
    assert backend.install_dir == tmp_path / "brainhair" / "cli"
    assert backend.environment(tmp_path)["MCP_TOOL_TIMEOUT"] == "180000"
    assert "CLAUDE_CODE_OAUTH_TOKEN" not in backend.environment(tmp_path)
    signed_in = ClaudeCliBackend.from_config({"BRAINHAIR_CLI_OAUTH_TOKEN": "sk-ant-oat-1"})
    assert signed_in.environment(tmp_path)["CLAUDE_CODE_OAUTH_TOKEN"] == "sk-ant-oat-1"


def test_parser_keeps_json_looking_text_as_text() -> None:
    parser = StreamParser()
    line = json.dumps({"type": "stream_event", "event": {
        "type": "content_block_delta", "index": 0,
        "delta": {"type": "text_delta", "text": '{"type": "done"}'}}})
    assert parser.feed(line) == [Event(kind="text", text='{"type": "done"}')]
    # The whole assistant message repeats text already streamed: not doubled.
    whole = json.dumps({"type": "assistant", "message": {"content": [
        {"type": "text", "text": '{"type": "done"}'}]}})
    assert parser.feed(whole) == []


def test_private_files_are_private(tmp_path: Path) -> None:
    wrapper = tmp_path / "claude"
    wrapper.write_text("#!/bin/sh\nstat -c '%a %n' \"$HOME\" .. ../mcp.json "
                       "../system-prompt.md ../tools.sock >&2\nexit 5\n")
    wrapper.chmod(0o755)
    events = _run(_backend(wrapper), Executor())
    assert events[-1].kind == "error" and "code 5" in events[-1].text
    text = events[-1].text
    assert "/home" in text and text.count("700 ") == 2
    assert "600 ../mcp.json" in text and "600 ../system-prompt.md" in text
    assert "600 ../tools.sock" in text
