"""The Claude Code CLI backend: one ``claude`` process per turn, our MCP tools only.

Upstream passed the whole prompt and the user's message as argv (a message starting with "-"
became a flag, and long histories hit the argv size limit), gave the CLI Bash with
``dontAsk`` and the service's whole environment, and parsed its output so that a silent
process was never stopped and the last lines could be lost. Here:

- argv holds only flags and file paths; the message and the history go through **stdin** as
  one stream-json user message, and the system prompt is a file (``--system-prompt-file``);
- built-in tools are off (``--tools ""`` and ``--disallowedTools`` for each of them), the only
  MCP server is ours (``--mcp-config`` in a private file + ``--strict-mcp-config``) and
  permission prompts go to its ``approve`` tool, which allows only our own tools; the human
  approval of writes happens in the executor behind the tool socket;
- the child's environment starts empty: PATH, a private temporary HOME, LANG and a few
  switches of the CLI's own, never a secret of the service (the bridge's socket token lives
  in the private mcp-config file);
- stdout is read to EOF by a thread, so the idle timeout fires on a truly silent process,
  ``should_stop`` is honoured within a tenth of a second (SIGTERM, SIGKILL 2 s later) and
  nothing is lost when the process exits; a nonzero exit is an error event.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from hivematrix.brainhair.backends.base import (
    Event,
    HistoryMessage,
    StopRequested,
    ToolExecutor,
)
from hivematrix.brainhair.mcp_bridge import PERMISSION_TOOL, PREFIX, SERVER_NAME
from hivematrix.brainhair.tool_socket import TOKEN_ENV, ToolSocket
from hivematrix.brainhair.tools.base import Tool

#: Claude Code's built-in tools, all refused (besides ``--tools ""``, which removes them).
BUILTIN_TOOLS = (
    "Bash", "BashOutput", "KillShell", "Read", "Write", "Edit", "MultiEdit", "NotebookEdit",
    "NotebookRead", "Glob", "Grep", "LS", "WebFetch", "WebSearch", "Task", "TodoWrite",
    "ExitPlanMode", "SlashCommand", "Skill",
)
#: Seconds between SIGTERM and SIGKILL.
KILL_GRACE_SECONDS = 2.0
#: How often the turn loop looks at ``should_stop`` and the idle clock.
TICK_SECONDS = 0.1
_STDERR_LINES = 20
# Messages say "the model" rather than the product's name: the PHI filter, which every
# message passes, can read "Claude Code" in a short sentence as a person and shorten it.
_STATUS_CHARS = 500


def stdin_message(history: Sequence[HistoryMessage], message: str) -> bytes:
    """The turn as the CLI's stream-json input: one user message, the history first."""
    blocks: list[dict[str, str]] = []
    if history:
        transcript = "\n\n".join(
            f"{'User' if item.role == 'user' else 'Assistant'}: {item.content}"
            for item in history)
        blocks.append({"type": "text", "text": "The conversation so far, for context:\n"
                       f"<conversation>\n{transcript}\n</conversation>"})
    blocks.append({"type": "text", "text": message})
    line = {"type": "user", "message": {"role": "user", "content": blocks},
            "parent_tool_use_id": None, "session_id": "default"}
    return json.dumps(line).encode() + b"\n"


def _tool_name(name: str) -> str:
    return name[len(PREFIX):] if name.startswith(PREFIX) else name


def _result_text(content: Any) -> str:
    """A tool_result's content (a string or a list of text blocks) as text."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(block.get("text", "")) for block in content
                       if isinstance(block, dict) and block.get("type") == "text")
    return ""


@dataclass
class _OpenTool:
    tool_id: str
    name: str
    json_parts: list[str] = field(default_factory=list)


class StreamParser:
    """Turns the CLI's stream-json lines into :class:`Event` values (no process involved)."""

    def __init__(self) -> None:
        self._blocks: dict[int, _OpenTool] = {}
        self._names: dict[str, str] = {}
        self._started: set[str] = set()
        self._partial = False
        self.result: dict[str, Any] | None = None

    def feed(self, line: str) -> list[Event]:
        line = line.strip()
        if not line:
            return []
        try:
            data = json.loads(line)
        except ValueError:
            return [Event(kind="status", text=line[:_STATUS_CHARS])]
        if not isinstance(data, dict):
            return [Event(kind="status", text=line[:_STATUS_CHARS])]
        kind = data.get("type")
        if kind == "stream_event" and isinstance(data.get("event"), dict):
            self._partial = True
            return self._stream_event(data["event"])
        if kind == "system" and data.get("subtype") == "init":
            return self._init(data)
        if kind == "assistant":
            return self._assistant(data.get("message"))
        if kind == "user":
            return self._user(data.get("message"))
        if kind == "result":
            self.result = data
            if data.get("is_error") or data.get("subtype") not in (None, "success"):
                reason = data.get("result") or data.get("subtype") or "unknown error"
                return [Event(kind="error", text=f"The model could not finish: {reason}")]
        return []

    def _init(self, data: dict[str, Any]) -> list[Event]:
        for server in data.get("mcp_servers") or []:
            if isinstance(server, dict) and server.get("name") == SERVER_NAME \
                    and server.get("status") not in (None, "connected"):
                return [Event(kind="status",
                              text=f"The assistant's tools did not start ({server['status']}).")]
        return [Event(kind="status", text="The model is starting.")]

    def _stream_event(self, event: dict[str, Any]) -> list[Event]:
        kind = event.get("type")
        index = event.get("index")
        if kind == "content_block_start":
            block = event.get("content_block") or {}
            if block.get("type") == "tool_use" and isinstance(index, int):
                self._blocks[index] = _OpenTool(str(block.get("id", "")),
                                                str(block.get("name", "")))
            return []
        if kind == "content_block_delta":
            delta = event.get("delta") or {}
            if delta.get("type") == "text_delta" and delta.get("text"):
                return [Event(kind="text", text=str(delta["text"]))]
            if delta.get("type") == "input_json_delta" and index in self._blocks:
                self._blocks[index].json_parts.append(str(delta.get("partial_json", "")))
            return []
        if kind == "content_block_stop" and index in self._blocks:
            open_tool = self._blocks.pop(index)
            try:
                tool_input = json.loads("".join(open_tool.json_parts) or "{}")
            except ValueError:
                tool_input = {}
            return self._tool_start(open_tool.tool_id, open_tool.name,
                                    tool_input if isinstance(tool_input, dict) else {})
        if kind == "message_start":
            self._blocks.clear()
        return []

    def _tool_start(self, tool_id: str, name: str, tool_input: dict[str, Any]) -> list[Event]:
        if tool_id in self._started:
            return []
        self._started.add(tool_id)
        self._names[tool_id] = _tool_name(name)
        return [Event(kind="tool_start", tool=_tool_name(name), tool_id=tool_id,
                      input=tool_input)]

    def _assistant(self, message: Any) -> list[Event]:
        """A whole assistant message: its text only when no partial deltas carried it."""
        if not isinstance(message, dict) or not isinstance(message.get("content"), list):
            return []
        events: list[Event] = []
        for block in message["content"]:
            if not isinstance(block, dict):
                continue
            if block.get("type") == "text" and not self._partial and block.get("text"):
                events.append(Event(kind="text", text=str(block["text"])))
            elif block.get("type") == "tool_use":
                tool_input = block.get("input")
                events += self._tool_start(str(block.get("id", "")), str(block.get("name", "")),
                                           tool_input if isinstance(tool_input, dict) else {})
        return events

    def _user(self, message: Any) -> list[Event]:
        if not isinstance(message, dict) or not isinstance(message.get("content"), list):
            return []
        events = []
        for block in message["content"]:
            if isinstance(block, dict) and block.get("type") == "tool_result":
                tool_id = str(block.get("tool_use_id", ""))
                events.append(Event(kind="tool_end", tool=self._names.get(tool_id, ""),
                                    tool_id=tool_id, output=_result_text(block.get("content")),
                                    is_error=bool(block.get("is_error"))))
        return events


def _pump(stream: IO[bytes], into: queue.Queue[tuple[str, Any]]) -> None:
    """Read stdout to EOF, line by line, then say ``eof``."""
    try:
        for raw in iter(stream.readline, b""):
            into.put(("line", raw.decode("utf-8", errors="replace")))
    finally:
        into.put(("eof", None))


def _collect(stream: IO[bytes], tail: deque[str]) -> None:
    """Keep the last lines of stderr (for the error message of a failed exit)."""
    for raw in iter(stream.readline, b""):
        tail.append(raw.decode("utf-8", errors="replace").rstrip())


def _write_stdin(stream: IO[bytes], payload: bytes) -> None:
    try:
        stream.write(payload)
        stream.flush()
    except OSError:
        pass  # the CLI exited before reading; its exit code says why
    finally:
        with contextlib.suppress(OSError):
            stream.close()


def _package_root() -> str:
    """The directory holding the ``hivematrix`` package, for the bridge's interpreter."""
    import hivematrix

    return str(Path(hivematrix.__file__).resolve().parent.parent)


def _private_file(path: Path, text: str) -> Path:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    return path


@dataclass
class ClaudeCliBackend:
    """One ``claude --print`` process per turn; the executor runs in the turn's thread."""

    executable: str = "claude"
    model: str = "claude-sonnet-4-5"
    idle_seconds: float = 120.0
    #: Where ``hivematrix brainhair install-cli`` puts the CLI (searched when not on PATH).
    install_dir: Path | None = None
    #: A long-lived token from ``claude setup-token``, for a CLI with a private HOME.
    oauth_token: str = ""
    #: Longest a tool call may take (an approval wait), for the CLI's MCP client.
    tool_timeout_seconds: float = 900.0
    name: str = "claude-cli"

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> ClaudeCliBackend:
        from hivematrix.common.config import hivematrix_home

        approval = float(config.get("BRAINHAIR_APPROVAL_SECONDS") or 120)
        return cls(
            executable=str(config.get("BRAINHAIR_CLI_PATH") or "claude"),
            model=str(config.get("BRAINHAIR_MODEL") or "claude-sonnet-4-5"),
            idle_seconds=float(config.get("BRAINHAIR_TURN_IDLE_SECONDS") or 120),
            install_dir=hivematrix_home() / "brainhair" / "cli",
            oauth_token=str(config.get("BRAINHAIR_CLI_OAUTH_TOKEN") or ""),
            tool_timeout_seconds=approval + 60,
        )

    def resolve(self) -> str | None:
        """The CLI's path: the setting (a path or a name on PATH), then the installed copy."""
        found = shutil.which(self.executable)
        if found:
            return found
        if self.install_dir is not None and os.sep not in self.executable:
            installed = self.install_dir / "node_modules" / ".bin" / self.executable
            if os.access(installed, os.X_OK):
                return str(installed)
        return None

    def available(self) -> str | None:
        if self.resolve() is None:
            return (f"The Claude Code CLI ({self.executable}) is not installed; an administrator "
                    "can install it with `hivematrix brainhair install-cli`.")
        return None

    def argv(self, executable: str, system_prompt_file: Path, mcp_config: Path) -> list[str]:
        """Flags and file paths only: nothing the user wrote ever lands here."""
        return [
            executable, "--print", "--verbose",
            "--output-format", "stream-json", "--include-partial-messages",
            "--input-format", "stream-json",
            "--model", self.model,
            "--system-prompt-file", str(system_prompt_file),
            "--tools", "",
            "--disallowedTools", ",".join(BUILTIN_TOOLS),
            "--mcp-config", str(mcp_config), "--strict-mcp-config",
            "--permission-prompt-tool", PERMISSION_TOOL,
        ]

    def environment(self, home: Path) -> dict[str, str]:
        """The child's whole environment: started empty, nothing of the service's."""
        env = {
            "PATH": os.environ.get("PATH") or os.defpath,
            "HOME": str(home),
            "LANG": os.environ.get("LANG") or "C.UTF-8",
            "DISABLE_AUTOUPDATER": "1",
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
            "MCP_TOOL_TIMEOUT": str(int(self.tool_timeout_seconds * 1000)),
        }
        if self.oauth_token:
            env["CLAUDE_CODE_OAUTH_TOKEN"] = self.oauth_token
        return env

    def run_turn(self, *, system_prompt: str, history: Sequence[HistoryMessage],
                 message: str, tools: Sequence[Tool], execute: ToolExecutor,
                 should_stop: StopRequested) -> Iterator[Event]:
        executable = self.resolve()
        if executable is None:
            yield Event(kind="error", text=self.available() or "The CLI cannot be found.")
            return
        turn_dir = Path(tempfile.mkdtemp(prefix="brainhair-turn-"))
        os.chmod(turn_dir, 0o700)
        # Stdout lines and tool calls arrive here; tools run in this (the turn's) thread.
        inbox: queue.Queue[tuple[str, Any]] = queue.Queue()
        tool_socket = ToolSocket(tools, execute, directory=turn_dir,
                                 handoff=lambda call: inbox.put(("call", call)))
        process: subprocess.Popen[bytes] | None = None
        try:
            try:
                argv, env = self._prepare(executable, turn_dir, system_prompt, tool_socket)
                process = subprocess.Popen(  # noqa: S603 - argv is flags and our own paths
                    argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE, cwd=turn_dir / "work", env=env,
                    start_new_session=True)
            except OSError as exc:
                yield Event(kind="error", text=f"The model's CLI could not be started: {exc}")
                return
            yield from self._follow(process, stdin_message(history, message), inbox,
                                    tool_socket, execute, should_stop)
        finally:
            if process is not None:
                _stop(process)
            tool_socket.close()
            shutil.rmtree(turn_dir, ignore_errors=True)

    def _prepare(self, executable: str, turn_dir: Path, system_prompt: str,
                 tool_socket: ToolSocket) -> tuple[list[str], dict[str, str]]:
        """The turn's private files (home, work directory, prompt, mcp-config), argv, env."""
        home = turn_dir / "home"
        home.mkdir(mode=0o700)
        (turn_dir / "work").mkdir(mode=0o700)
        prompt_file = _private_file(turn_dir / "system-prompt.md", system_prompt)
        tool_socket.start()
        config = {"mcpServers": {SERVER_NAME: {
            "type": "stdio", "command": sys.executable,
            "args": ["-m", "hivematrix.brainhair.mcp_bridge", "--socket",
                     str(tool_socket.path)],
            # The token, and where this package lives (also when run from a source tree).
            "env": {TOKEN_ENV: tool_socket.token, "PYTHONPATH": _package_root()},
        }}}
        mcp_file = _private_file(turn_dir / "mcp.json", json.dumps(config))
        return self.argv(executable, prompt_file, mcp_file), self.environment(home)

    def _follow(self, process: subprocess.Popen[bytes], payload: bytes,
                inbox: queue.Queue[tuple[str, Any]], tool_socket: ToolSocket,
                execute: ToolExecutor, should_stop: StopRequested) -> Iterator[Event]:
        assert process.stdin and process.stdout and process.stderr
        threading.Thread(target=_write_stdin, args=(process.stdin, payload), daemon=True).start()
        threading.Thread(target=_pump, args=(process.stdout, inbox), daemon=True).start()
        stderr_tail: deque[str] = deque(maxlen=_STDERR_LINES)
        stderr_reader = threading.Thread(target=_collect, args=(process.stderr, stderr_tail),
                                         daemon=True)
        stderr_reader.start()
        parser = StreamParser()
        failed = False
        last_output = time.monotonic()
        while True:
            if should_stop():
                _stop(process)
                return
            try:
                kind, item = inbox.get(timeout=TICK_SECONDS)
            except queue.Empty:
                quiet = time.monotonic() - max(last_output, tool_socket.last_activity)
                if tool_socket.calls_in_flight == 0 and quiet > self.idle_seconds:
                    _stop(process)
                    yield Event(kind="error", text=(
                        f"The model gave no output for {self.idle_seconds:.0f} s and was "
                        "stopped."))
                    return
                continue
            if kind == "call":
                item.run(execute)  # may block while a write waits for the human's decision
                continue
            if kind == "eof":
                break
            last_output = time.monotonic()
            for event in parser.feed(item):
                failed = failed or event.kind == "error"
                yield event
        code = _wait(process)
        stderr_reader.join(2)
        if code != 0 and not failed:
            detail = " ".join(line for line in stderr_tail if line)[-_STATUS_CHARS:]
            yield Event(kind="error", text=f"The model's CLI exited with code {code}"
                        + (f": {detail}" if detail else "."))
        elif code == 0 and parser.result is None and not failed:
            yield Event(kind="error", text="The model's CLI ended without a result.")


def _wait(process: subprocess.Popen[bytes]) -> int:
    """Its exit code, once stdout is closed (it normally exits at once)."""
    try:
        return process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        _stop(process)
        return process.wait()


def _signal_group(process: subprocess.Popen[bytes], signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signum)


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the CLI and its children (the bridge), SIGKILL after the grace period."""
    if process.poll() is None:
        _signal_group(process, signal.SIGTERM)
        try:
            process.wait(timeout=KILL_GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            _signal_group(process, signal.SIGKILL)
            process.wait()
    # Children that outlived the CLI (it exited, they did not) go too.
    _signal_group(process, signal.SIGKILL)
