"""The per-turn Unix socket through which the MCP bridge reaches the turn's tools.

The Claude Code CLI starts our MCP bridge as its own child, so the bridge cannot call the
turn's :class:`ToolExecutor` directly. Instead the backend opens this socket for the turn in a
private directory (mode 0700, so no other user can even reach it) and hands the bridge a random
token through the bridge's environment. Every request must carry that token, and the peer must
run as our own user. The bridge may only list the turn's tools and call one of them; approvals,
permissions and filtering all happen inside the executor, which may block while a write waits
for the human's decision.

The wire format is one JSON object per line: one request, one answer, per connection.
"""

from __future__ import annotations

import hmac
import json
import os
import secrets
import shutil
import socket
import socketserver
import struct
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from hivematrix.brainhair.backends.base import ToolExecutor, ToolResult
from hivematrix.brainhair.tools.base import Tool

#: The environment variable that carries the token to the bridge.
TOKEN_ENV = "BRAINHAIR_TOOL_TOKEN"  # noqa: S105 - a variable name, not a secret
#: A request larger than this is refused (tool inputs are small JSON objects).
MAX_REQUEST_BYTES = 1024 * 1024


class ToolSocketError(Exception):
    """The socket refused a request or could not be reached."""


def describe_tools(tools: Sequence[Tool]) -> list[dict[str, Any]]:
    """What the model is told about each tool: name, description and input schema."""
    return [{"name": tool.name, "description": tool.description,
             "input_schema": dict(tool.input_schema)} for tool in tools]


def _peer_uid(connection: socket.socket) -> int | None:
    """The connecting process's user id (Linux ``SO_PEERCRED``), ``None`` where unsupported."""
    option = getattr(socket, "SO_PEERCRED", None)
    if option is None:
        return None
    raw = connection.getsockopt(socket.SOL_SOCKET, option, struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", raw)
    return int(uid)


def run_tool(execute: ToolExecutor, name: str, tool_input: dict[str, Any]) -> ToolResult:
    """The executor's result; an exception becomes an error result without its details."""
    try:
        return execute(name, tool_input)
    except Exception as exc:  # the model hears that the tool failed, not why
        return ToolResult(content=f"The tool {name} failed ({type(exc).__name__}).",
                          is_error=True)


class PendingCall:
    """A tool call handed to another thread (the one running the turn) to execute."""

    def __init__(self, name: str, tool_input: dict[str, Any]) -> None:
        self.name = name
        self.input = tool_input
        self._done = threading.Event()
        self._result: ToolResult | None = None

    def run(self, execute: ToolExecutor) -> None:
        self.resolve(run_tool(execute, self.name, self.input))

    def resolve(self, result: ToolResult) -> None:
        if not self._done.is_set():
            self._result = result
            self._done.set()

    def wait(self) -> ToolResult:
        self._done.wait()
        assert self._result is not None
        return self._result


class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True  # a handler blocked on an approval never holds up shutdown
    owner: ToolSocket


class _Handler(socketserver.StreamRequestHandler):
    server: _Server

    def handle(self) -> None:
        owner = self.server.owner
        uid = _peer_uid(self.connection)
        if uid is not None and uid != os.getuid():
            self._answer({"ok": False, "error": "refused"})
            return
        line = self.rfile.readline(MAX_REQUEST_BYTES + 1)
        if len(line) > MAX_REQUEST_BYTES:
            self._answer({"ok": False, "error": "request too large"})
            return
        try:
            request = json.loads(line)
        except ValueError:
            self._answer({"ok": False, "error": "not JSON"})
            return
        self._answer(owner.answer(request))

    def _answer(self, payload: dict[str, Any]) -> None:
        try:
            self.wfile.write(json.dumps(payload).encode() + b"\n")
            self.wfile.flush()
        except OSError:
            pass  # the bridge went away (its CLI was stopped): nobody is waiting for this


class ToolSocket:
    """Serves one turn's tools on a Unix socket in a fresh private directory.

    Use as a context manager; :attr:`path` and :attr:`token` go to the bridge.
    :attr:`calls_in_flight` and :attr:`last_activity` let the backend tell a silent process
    from one waiting for a tool (an approval may take minutes).

    Without ``handoff`` a call runs the executor in the socket's own handler thread. With it,
    each call is handed over as a :class:`PendingCall` (to a queue, say) for the thread that
    runs the turn to execute, so the executor always runs where the turn runs (its database
    session and app context); calls still open at :meth:`close` are answered as errors.
    """

    def __init__(self, tools: Sequence[Tool], execute: ToolExecutor,
                 directory: Path | None = None,
                 handoff: Callable[[PendingCall], None] | None = None) -> None:
        self._handoff = handoff
        self._pending: list[PendingCall] = []
        self._closed = False
        self._tools = {tool.name: tool for tool in tools}
        self._listing = describe_tools(tools)
        self._execute = execute
        self._own_directory = directory is None
        self.directory = Path(tempfile.mkdtemp(prefix="brainhair-tools-")) \
            if directory is None else directory
        os.chmod(self.directory, 0o700)
        self.path = self.directory / "tools.sock"
        self.token = secrets.token_urlsafe(32)
        self._lock = threading.Lock()
        self._in_flight = 0
        self.last_activity = time.monotonic()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def calls_in_flight(self) -> int:
        with self._lock:
            return self._in_flight

    def start(self) -> ToolSocket:
        server = _Server(str(self.path), _Handler)
        server.owner = self
        os.chmod(self.path, 0o600)
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever,
                                        kwargs={"poll_interval": 0.05},
                                        name="brainhair-tool-socket", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        with self._lock:
            self._closed = True
            pending, self._pending = self._pending, []
        for call in pending:
            call.resolve(ToolResult("The chat turn ended before this tool ran.", is_error=True))
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None
        if self._own_directory:
            shutil.rmtree(self.directory, ignore_errors=True)
        else:
            self.path.unlink(missing_ok=True)

    def __enter__(self) -> ToolSocket:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def answer(self, request: Any) -> dict[str, Any]:
        """One request's answer (public so it can be tested without a socket)."""
        if not isinstance(request, dict):
            return {"ok": False, "error": "a request is a JSON object"}
        token = request.get("token")
        if not isinstance(token, str) or not hmac.compare_digest(token, self.token):
            return {"ok": False, "error": "refused"}
        op = request.get("op")
        if op == "list_tools":
            return {"ok": True, "tools": self._listing}
        if op == "call_tool":
            return self._call(request.get("name"), request.get("input"))
        return {"ok": False, "error": f"unknown op {op!r}"}

    def _call(self, name: Any, tool_input: Any) -> dict[str, Any]:
        if not isinstance(name, str) or name not in self._tools:
            return {"ok": True, "content": f"There is no tool named {name!r} in this chat.",
                    "is_error": True}
        if tool_input is None:
            tool_input = {}
        if not isinstance(tool_input, dict):
            return {"ok": True, "content": "The tool's input must be a JSON object.",
                    "is_error": True}
        with self._lock:
            self._in_flight += 1
            self.last_activity = time.monotonic()
        try:
            if self._handoff is None:
                result = run_tool(self._execute, name, tool_input)
            else:
                call = PendingCall(name, tool_input)
                with self._lock:
                    closed = self._closed
                    if not closed:
                        self._pending.append(call)
                if closed:
                    call.resolve(ToolResult("The chat turn has ended.", is_error=True))
                else:
                    self._handoff(call)
                result = call.wait()
                with self._lock:
                    if call in self._pending:
                        self._pending.remove(call)
        finally:
            with self._lock:
                self._in_flight -= 1
                self.last_activity = time.monotonic()
        return {"ok": True, "content": result.content, "is_error": result.is_error}


def request(path: str | Path, token: str, payload: dict[str, Any],
            timeout: float | None = None) -> dict[str, Any]:
    """Send one request to a :class:`ToolSocket`; its answer (``ok`` true) or an error.

    ``timeout`` ``None`` waits as long as the tool runs (a write waiting for approval).
    """
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
        client.settimeout(timeout)
        try:
            client.connect(str(path))
            client.sendall(json.dumps({**payload, "token": token}).encode() + b"\n")
            with client.makefile("rb") as reader:
                line = reader.readline()
        except OSError as exc:
            raise ToolSocketError(f"the tool socket cannot be reached: {exc}") from exc
    try:
        answer = json.loads(line)
    except ValueError as exc:
        raise ToolSocketError("the tool socket gave no answer") from exc
    if not isinstance(answer, dict) or not answer.get("ok"):
        error = answer.get("error") if isinstance(answer, dict) else None
        raise ToolSocketError(f"the tool socket refused the request: {error or 'no reason'}")
    return answer
