"""A stand-in ``claude`` executable: the Claude Code CLI's documented print-mode contract.

Tests call :func:`install` to write a scenario (JSON) and a tiny wrapper script that runs this
file with the scenario's path baked in, so nothing has to pass through the environment the
backend scrubs. Run as the wrapper, it:

- parses the CLI's flags as the real one does (unknown options are refused with exit 1;
  ``--print`` with stream-json output needs ``--verbose``; ``--include-partial-messages``
  needs stream-json output; stream-json input needs stream-json output);
- reads stdin as the documented input (one stream-json user message per line, or text);
- starts the MCP servers of ``--mcp-config`` (only those with ``--strict-mcp-config``) as a
  real MCP client over stdio, and names their tools ``mcp__<server>__<tool>``;
- follows the scenario's steps, printing the documented stream-json sequence: a ``system``
  ``init`` line, ``stream_event`` lines (message_start, content_block_start/delta/stop with
  text_delta and input_json_delta, message_delta, message_stop), ``assistant`` messages,
  ``user`` messages carrying tool_result blocks, and a final ``result``. A tool call first
  asks the ``--permission-prompt-tool`` (unless ``--allowedTools`` allows it), then calls the
  MCP tool and hands its result back;
- records what it saw (argv, environment, stdin, the files it was given) in
  ``<scenario>.record.json`` before it starts, so tests can check argv and env.

Scenario steps (``{"steps": [...]}``): ``{"say": text}``; ``{"tool": name, "input": {...},
"say_before": text}`` (a bare name means one of the brainhair server's tools; ``Bash`` etc.
are built-in names); ``{"say_from_result": template}`` (``{field}`` from the last tool
result's JSON, ``{result}`` its whole text); ``{"echo_message": true}``; ``{"raw": line}`` (a
non-JSON stdout line); ``{"sleep": s}``;
``{"hang": true}`` (silent forever); ``{"ignore_sigterm": true}``; ``{"exit": code,
"stderr": text}``; ``{"fail": text}`` (an error result).
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
import uuid
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

BUILTIN = ["Task", "Bash", "Glob", "Grep", "LS", "ExitPlanMode", "Read", "Edit", "MultiEdit",
           "Write", "NotebookEdit", "WebFetch", "TodoWrite", "WebSearch", "BashOutput",
           "KillShell", "SlashCommand"]

#: The options this stand-in knows, with their arity (a subset of the real CLI's).
FLAGS: dict[str, str] = {
    "--print": "bool", "--verbose": "bool", "--output-format": "one", "--input-format": "one",
    "--include-partial-messages": "bool", "--model": "one", "--system-prompt": "one",
    "--system-prompt-file": "one", "--append-system-prompt": "one",
    "--append-system-prompt-file": "one", "--tools": "many", "--allowedTools": "many",
    "--disallowedTools": "many", "--mcp-config": "many", "--strict-mcp-config": "bool",
    "--permission-prompt-tool": "one", "--permission-mode": "one", "--max-turns": "one",
    "--setting-sources": "one", "--debug": "bool",
}
ALIASES = {"-p": "--print", "--allowed-tools": "--allowedTools",
           "--disallowed-tools": "--disallowedTools", "-d": "--debug"}


def install(directory: Path, scenario: dict[str, Any], name: str = "claude") -> Path:
    """Write ``scenario`` and an executable wrapper named ``name`` into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    scenario_path = directory / f"{name}.scenario.json"
    scenario_path.write_text(json.dumps(scenario))
    wrapper = directory / name
    wrapper.write_text(f"#!/bin/sh\nexec '{sys.executable}' '{Path(__file__).resolve()}' "
                       f"'{scenario_path}' \"$@\"\n")
    wrapper.chmod(0o755)
    return wrapper


def record_of(wrapper: Path) -> dict[str, Any]:
    """What the stand-in behind ``wrapper`` recorded on its last run."""
    path = wrapper.parent / f"{wrapper.name}.scenario.record.json"
    return dict(json.loads(path.read_text()))


class UsageError(Exception):
    pass


def parse_flags(argv: list[str]) -> tuple[dict[str, Any], list[str]]:
    """Options and positional arguments, the way the real CLI's parser splits them."""
    options: dict[str, Any] = {}
    positional: list[str] = []
    index = 0
    while index < len(argv):
        token = argv[index]
        index += 1
        if not token.startswith("-") or token == "-":
            positional.append(token)
            continue
        name, _, inline = token.partition("=")
        name = ALIASES.get(name, name)
        arity = FLAGS.get(name)
        if arity is None:
            raise UsageError(f"error: unknown option '{token}'")
        if arity == "bool":
            options[name] = True
        elif arity == "one":
            if inline:
                options[name] = inline
            elif index < len(argv):
                options[name] = argv[index]
                index += 1
            else:
                raise UsageError(f"error: option '{name} <value>' argument missing")
        else:
            values = [inline] if inline else []
            while index < len(argv) and not argv[index].startswith("-"):
                values.append(argv[index])
                index += 1
            if not values:
                raise UsageError(f"error: option '{name} <values...>' argument missing")
            options.setdefault(name, []).extend(values)
    return options, positional


def _split_tools(values: list[str]) -> list[str]:
    names: list[str] = []
    for value in values:
        names += [part for part in value.replace(",", " ").split() if part]
    return names


class Emitter:
    def __init__(self, model: str, partial: bool) -> None:
        self.session_id = str(uuid.uuid4())
        self.model = model
        self.partial = partial
        self.turns = 0
        self.final_text = ""

    def line(self, payload: dict[str, Any]) -> None:
        sys.stdout.write(json.dumps(payload) + "\n")
        sys.stdout.flush()

    def _event(self, event: dict[str, Any]) -> None:
        if self.partial:
            self.line({"type": "stream_event", "event": event, "session_id": self.session_id,
                       "parent_tool_use_id": None, "uuid": str(uuid.uuid4())})

    def message(self, blocks: list[dict[str, Any]], stop_reason: str) -> None:
        """One assistant message: its stream events, then the whole message."""
        self.turns += 1
        message_id = f"msg_{uuid.uuid4().hex[:24]}"
        self._event({"type": "message_start", "message": {
            "id": message_id, "type": "message", "role": "assistant", "model": self.model,
            "content": [], "stop_reason": None, "stop_sequence": None,
            "usage": {"input_tokens": 12, "output_tokens": 1}}})
        for index, block in enumerate(blocks):
            if block["type"] == "text":
                self._event({"type": "content_block_start", "index": index,
                             "content_block": {"type": "text", "text": ""}})
                for piece in _pieces(block["text"]):
                    self._event({"type": "content_block_delta", "index": index,
                                 "delta": {"type": "text_delta", "text": piece}})
                    time.sleep(0.005)
                self.final_text = block["text"]
            else:
                self._event({"type": "content_block_start", "index": index, "content_block": {
                    "type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}})
                encoded = json.dumps(block["input"])
                middle = len(encoded) // 2
                for part in (encoded[:middle], encoded[middle:]):
                    self._event({"type": "content_block_delta", "index": index,
                                 "delta": {"type": "input_json_delta", "partial_json": part}})
            self._event({"type": "content_block_stop", "index": index})
        self.line({"type": "assistant", "message": {
            "id": message_id, "type": "message", "role": "assistant", "model": self.model,
            "content": blocks, "stop_reason": None, "stop_sequence": None,
            "usage": {"input_tokens": 12, "output_tokens": 8}},
            "parent_tool_use_id": None, "session_id": self.session_id,
            "uuid": str(uuid.uuid4())})
        self._event({"type": "message_delta",
                     "delta": {"stop_reason": stop_reason, "stop_sequence": None},
                     "usage": {"output_tokens": 8}})
        self._event({"type": "message_stop"})

    def tool_result(self, tool_id: str, text: str, is_error: bool) -> None:
        self.line({"type": "user", "message": {"role": "user", "content": [{
            "type": "tool_result", "tool_use_id": tool_id,
            "content": [{"type": "text", "text": text}], "is_error": is_error}]},
            "parent_tool_use_id": None, "session_id": self.session_id,
            "uuid": str(uuid.uuid4())})

    def result(self, error: str | None = None) -> None:
        self.line({"type": "result", "subtype": "error_during_execution" if error else "success",
                   "is_error": bool(error), "duration_ms": 40, "duration_api_ms": 30,
                   "num_turns": self.turns, "result": error or self.final_text,
                   "session_id": self.session_id, "total_cost_usd": 0.0,
                   "usage": {"input_tokens": 12, "output_tokens": 8}})


def _pieces(text: str) -> list[str]:
    words = text.split(" ")
    return [word + (" " if index < len(words) - 1 else "") for index, word in enumerate(words)]


def _read_input(options: dict[str, Any], positional: list[str]) -> tuple[str, list[str]]:
    """Raw stdin and the user messages' texts."""
    raw = "" if sys.stdin.isatty() else sys.stdin.read()
    texts: list[str] = []
    if options.get("--input-format") == "stream-json":
        for line in raw.splitlines():
            if not line.strip():
                continue
            data = json.loads(line)
            if data.get("type") != "user":
                raise UsageError(f"error: expected a user message on stdin, got {data!r}")
            content = data["message"]["content"]
            if isinstance(content, str):
                texts.append(content)
            else:
                texts += [block["text"] for block in content if block.get("type") == "text"]
    elif raw.strip():
        texts.append(raw)
    texts += positional
    if not texts:
        raise UsageError("Error: Input must be provided either through stdin or as a prompt "
                         "argument when using --print")
    return raw, texts


def _validate(argv: list[str]) -> tuple[dict[str, Any], str, list[str]]:
    """The options, raw stdin and user texts, or :class:`UsageError` as the real CLI says."""
    options, positional = parse_flags(argv)
    if not options.get("--print"):
        raise UsageError("this stand-in only knows print mode")
    output = options.get("--output-format", "text")
    if output == "stream-json" and not options.get("--verbose"):
        raise UsageError("Error: When using --print, --output-format=stream-json requires "
                         "--verbose")
    if options.get("--include-partial-messages") and output != "stream-json":
        raise UsageError("Error: --include-partial-messages requires --print and "
                         "--output-format=stream-json")
    if options.get("--input-format") == "stream-json" and output != "stream-json":
        raise UsageError("Error: --input-format=stream-json requires "
                         "output-format=stream-json.")
    raw_stdin, texts = _read_input(options, positional)
    return options, raw_stdin, texts


class StandIn:
    """One print-mode run: the MCP servers, the tools, the scenario's steps."""

    def __init__(self, options: dict[str, Any], texts: list[str]) -> None:
        self.options = options
        self.texts = texts
        tools_flag = options.get("--tools")
        builtin = [] if tools_flag == [""] else (_split_tools(tools_flag) if tools_flag
                                                 else list(BUILTIN))
        self.disallowed = set(_split_tools(options.get("--disallowedTools", [])))
        self.allowed = set(_split_tools(options.get("--allowedTools", [])))
        self.available = [name for name in builtin if name not in self.disallowed]
        self.emitter = Emitter(options.get("--model", "claude-sonnet-4-5"),
                               bool(options.get("--include-partial-messages")))
        self.sessions: dict[str, Any] = {}
        self.last_result: dict[str, Any] = {}

    async def connect(self, stack: AsyncExitStack, configs: dict[str, Any]) -> None:
        from mcp import ClientSession, StdioServerParameters, stdio_client

        statuses = []
        for server_name, server in configs.items():
            params = StdioServerParameters(command=server["command"],
                                           args=server.get("args", []),
                                           env=server.get("env") or None)
            try:
                read, write = await stack.enter_async_context(stdio_client(params))
                session = await stack.enter_async_context(ClientSession(read, write))
                await session.initialize()
                listed = await session.list_tools()
            except Exception:  # the real CLI reports a failed server and goes on
                statuses.append({"name": server_name, "status": "failed"})
                continue
            self.sessions[server_name] = session
            statuses.append({"name": server_name, "status": "connected"})
            self.available += [f"mcp__{server_name}__{tool.name}" for tool in listed.tools
                               if f"mcp__{server_name}__{tool.name}" not in self.disallowed]
        self.emitter.line({
            "type": "system", "subtype": "init", "cwd": os.getcwd(),
            "session_id": self.emitter.session_id, "tools": self.available,
            "mcp_servers": statuses, "model": self.emitter.model,
            "permissionMode": self.options.get("--permission-mode", "default"),
            "apiKeySource": "none"})

    async def call(self, server_name: str, tool: str,
                   arguments: dict[str, Any]) -> tuple[str, bool]:
        result = await self.sessions[server_name].call_tool(tool, arguments)
        text = "".join(getattr(block, "text", "") for block in result.content)
        return text, bool(result.is_error)

    async def use_tool(self, name: str, tool_input: dict[str, Any],
                       tool_id: str) -> tuple[str, bool]:
        if name not in self.available:
            return f"Error: No such tool available: {name}", True
        if not name.startswith("mcp__"):
            return f"Error: the stand-in cannot run built-in tool {name}", True
        server_name, _, tool = name[len("mcp__"):].partition("__")
        prompt_tool = self.options.get("--permission-prompt-tool")
        if name not in self.allowed and f"mcp__{server_name}" not in self.allowed:
            if not prompt_tool:
                return (f"Claude requested permissions to use {name}, but you haven't "
                        "granted it yet."), True
            prompt_server, _, prompt_name = prompt_tool[len("mcp__"):].partition("__")
            answer_text, _ = await self.call(prompt_server, prompt_name, {
                "tool_name": name, "input": tool_input, "tool_use_id": tool_id})
            answer = json.loads(answer_text)
            if answer.get("behavior") != "allow":
                return str(answer.get("message", "Permission denied")), True
            tool_input = answer.get("updatedInput", tool_input)
        return await self.call(server_name, tool, tool_input)

    async def tool_step(self, step: dict[str, Any]) -> None:
        name = step["tool"]
        if not name.startswith("mcp__") and name not in BUILTIN:
            name = f"mcp__brainhair__{name}"
        tool_id = f"toolu_{uuid.uuid4().hex[:20]}"
        blocks: list[dict[str, Any]] = []
        if step.get("say_before"):
            blocks.append({"type": "text", "text": step["say_before"]})
        blocks.append({"type": "tool_use", "id": tool_id, "name": name,
                       "input": step.get("input", {})})
        self.emitter.message(blocks, "tool_use")
        text, is_error = await self.use_tool(name, step.get("input", {}), tool_id)
        self.emitter.tool_result(tool_id, text, is_error)
        try:
            parsed = json.loads(text)
            self.last_result = parsed if isinstance(parsed, dict) else {"value": parsed}
        except ValueError:
            self.last_result = {"text": text}
        self.last_result.setdefault("is_error", is_error)
        self.last_result.setdefault("result", text)

    def say(self, text: str) -> None:
        self.emitter.message([{"type": "text", "text": text}], "end_turn")

    async def step(self, step: dict[str, Any]) -> int | None:
        """Run one step; an exit code ends the run."""
        if "say" in step:
            self.say(step["say"])
        elif "echo_message" in step:
            self.say(self.texts[-1])
        elif "say_from_result" in step:
            self.say(step["say_from_result"].format(**self.last_result))
        elif "tool" in step:
            await self.tool_step(step)
        elif "raw" in step:
            sys.stdout.write(step["raw"] + "\n")
            sys.stdout.flush()
        elif "sleep" in step or "hang" in step:
            time.sleep(float(step.get("sleep", 3600)))
        elif "ignore_sigterm" in step:
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
        elif "exit" in step:
            if step.get("stderr"):
                print(step["stderr"], file=sys.stderr)
            sys.stdout.flush()
            os._exit(int(step["exit"]))
        elif "fail" in step:
            self.emitter.result(error=step["fail"])
            return 1
        return None


async def _run(scenario_path: Path, argv: list[str]) -> int:
    scenario = json.loads(scenario_path.read_text())
    try:
        options, raw_stdin, texts = _validate(argv)
    except UsageError as exc:
        print(exc, file=sys.stderr)
        return 1
    configs: dict[str, Any] = {}
    for value in options.get("--mcp-config", []):
        text = Path(value).read_text() if Path(value).exists() else value
        configs.update(json.loads(text).get("mcpServers", {}))
    prompt_file = options.get("--system-prompt-file")
    record = {
        "argv": argv, "env": dict(os.environ), "pid": os.getpid(), "cwd": os.getcwd(),
        "stdin": raw_stdin, "messages": texts, "mcp_config": configs,
        "system_prompt": Path(prompt_file).read_text() if prompt_file else None,
    }
    scenario_path.with_suffix(".record.json").write_text(json.dumps(record))
    run = StandIn(options, texts)
    async with AsyncExitStack() as stack:
        await run.connect(stack, configs)
        for step in scenario.get("steps", []):
            code = await run.step(step)
            if code is not None:
                return code
        run.emitter.result()
    return 0


def main() -> int:
    import anyio

    scenario_path = Path(sys.argv[1])
    code: int = anyio.run(_run, scenario_path, sys.argv[2:])
    return code


if __name__ == "__main__":
    sys.exit(main())
