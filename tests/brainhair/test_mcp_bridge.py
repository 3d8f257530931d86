"""The MCP bridge and the per-turn tool socket, driven by a real MCP client over stdio."""

from __future__ import annotations

import json
import os
import socket
import stat
import sys
import threading
import time
from typing import Any

import anyio
import pytest
from mcp import ClientSession, StdioServerParameters, stdio_client

from hivematrix.brainhair.backends.base import ToolResult
from hivematrix.brainhair.mcp_bridge import PREFIX, permission_answer
from hivematrix.brainhair.tool_socket import TOKEN_ENV, ToolSocket, ToolSocketError, request
from hivematrix.brainhair.tools.base import Proposal, Tool

SCHEMA = {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}


def _tools() -> list[Tool]:
    return [
        Tool(name="get_company", description="Read one company.", input_schema=SCHEMA,
             run=lambda ctx, data: {}),
        Tool(name="rename_company", description="Rename a company.", input_schema=SCHEMA,
             run=lambda ctx, data: {}, propose=lambda ctx, data: Proposal("rename")),
    ]


class Executor:
    """Records calls; ``rename_company`` waits for ``approved`` like a write awaiting a human."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.approved = threading.Event()
        self.waiting = threading.Event()

    def __call__(self, name: str, tool_input: dict[str, Any]) -> ToolResult:
        self.calls.append((name, tool_input))
        if name == "rename_company":
            self.waiting.set()
            if not self.approved.wait(20):
                return ToolResult("denied", is_error=True)
            return ToolResult(json.dumps({"renamed": tool_input["name"]}))
        if name == "explode":
            raise RuntimeError("secret detail")
        return ToolResult(json.dumps({"name": tool_input.get("name"), "account": "620547"}))


def _bridge_params(tools_socket: ToolSocket, token: str | None = None) -> StdioServerParameters:
    return StdioServerParameters(
        command=sys.executable,
        args=["-m", "hivematrix.brainhair.mcp_bridge", "--socket", str(tools_socket.path)],
        env={TOKEN_ENV: token if token is not None else tools_socket.token})


def run_apart(function: Any, *args: Any) -> Any:
    """``anyio.run`` in a thread of its own: a browser test earlier in the same worker may
    leave an event loop running in the main thread (Playwright's sync API), and one loop
    cannot run inside another."""
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["value"] = anyio.run(function, *args)
        except BaseException as exc:  # handed back to the test's thread
            outcome["error"] = exc

    thread = threading.Thread(target=target, name="mcp-client")
    thread.start()
    thread.join(120)
    assert not thread.is_alive(), "the MCP client did not finish"
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def test_socket_directory_is_private_and_token_required() -> None:
    executor = Executor()
    with ToolSocket(_tools(), executor) as tools_socket:
        assert stat.S_IMODE(os.stat(tools_socket.directory).st_mode) == 0o700
        assert stat.S_IMODE(os.stat(tools_socket.path).st_mode) == 0o600
        with pytest.raises(ToolSocketError, match="refused"):
            request(tools_socket.path, "guessed", {"op": "list_tools"}, timeout=5)
        with pytest.raises(ToolSocketError, match="refused"):
            request(tools_socket.path, "", {"op": "call_tool", "name": "get_company",
                                            "input": {"name": "x"}}, timeout=5)
        assert executor.calls == []
        # Raw junk is answered, not crashed on.
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as raw:
            raw.connect(str(tools_socket.path))
            raw.sendall(b"not json\n")
            assert json.loads(raw.makefile().readline()) == {"ok": False, "error": "not JSON"}
        listed = request(tools_socket.path, tools_socket.token, {"op": "list_tools"}, timeout=5)
        assert [item["name"] for item in listed["tools"]] == ["get_company", "rename_company"]
        unknown = request(tools_socket.path, tools_socket.token,
                          {"op": "call_tool", "name": "drop_database", "input": {}}, timeout=5)
        assert unknown["is_error"] and executor.calls == []
    assert not tools_socket.directory.exists()


def test_executor_failure_is_an_error_result_without_details() -> None:
    tool = Tool(name="explode", description="fails", input_schema={"type": "object"},
                run=lambda ctx, data: None)
    with ToolSocket([tool], Executor()) as tools_socket:
        answer = request(tools_socket.path, tools_socket.token,
                         {"op": "call_tool", "name": "explode", "input": {}}, timeout=5)
    assert answer["is_error"] is True
    assert "secret detail" not in answer["content"]


def test_permission_answer_allows_only_our_tools() -> None:
    own = {"get_company"}
    assert permission_answer(PREFIX + "get_company", {"name": "a"}, own) == {
        "behavior": "allow", "updatedInput": {"name": "a"}}
    for name in ("Bash", "mcp__other__get_company", PREFIX + "unknown", None):
        assert permission_answer(name, {}, own)["behavior"] == "deny"


def test_bridge_lists_and_forwards_calls_over_mcp() -> None:
    executor = Executor()

    async def scenario(tools_socket: ToolSocket) -> dict[str, Any]:
        async with stdio_client(_bridge_params(tools_socket)) as (read, write), \
                ClientSession(read, write) as session:
            await session.initialize()
            listed = await session.list_tools()
            names = [tool.name for tool in listed.tools]
            schema = next(t for t in listed.tools if t.name == "get_company").input_schema
            result = await session.call_tool("get_company", {"name": "Acme"})
            allow = await session.call_tool("approve", {"tool_name": PREFIX + "get_company",
                                                        "input": {"name": "Acme"}})
            deny = await session.call_tool("approve", {"tool_name": "Bash",
                                                       "input": {"command": "env"}})

            # A write blocks while it waits for approval; other calls still go through.
            async def approve_later() -> None:
                await anyio.to_thread.run_sync(executor.waiting.wait, 10)
                second = await session.call_tool("get_company", {"name": "Other"})
                assert json.loads(second.content[0].text)["name"] == "Other"
                executor.approved.set()

            async with anyio.create_task_group() as group:
                group.start_soon(approve_later)
                started = time.monotonic()
                write_result = await session.call_tool("rename_company", {"name": "Acme 2"})
                waited = time.monotonic() - started
            return {"names": names, "schema": schema, "result": result, "allow": allow,
                    "deny": deny, "write": write_result, "waited": waited}

    with ToolSocket(_tools(), executor) as tools_socket:
        got = run_apart(scenario, tools_socket)
    assert got["names"] == ["get_company", "rename_company", "approve"]
    assert got["schema"] == SCHEMA
    assert json.loads(got["result"].content[0].text) == {"name": "Acme", "account": "620547"}
    assert got["result"].is_error is False
    assert json.loads(got["allow"].content[0].text)["behavior"] == "allow"
    assert json.loads(got["deny"].content[0].text)["behavior"] == "deny"
    assert json.loads(got["write"].content[0].text) == {"renamed": "Acme 2"}
    assert [name for name, _ in executor.calls] == ["get_company", "rename_company",
                                                     "get_company"]
    assert executor.calls[1] == ("rename_company", {"name": "Acme 2"})


def test_bridge_with_wrong_token_reaches_nothing() -> None:
    executor = Executor()

    async def scenario(tools_socket: ToolSocket) -> Any:
        async with stdio_client(_bridge_params(tools_socket, token="forged")) as (read, write), \
                ClientSession(read, write) as session:
            await session.initialize()
            return await session.call_tool("get_company", {"name": "Acme"})

    with ToolSocket(_tools(), executor) as tools_socket:
        result = run_apart(scenario, tools_socket)
    assert result.is_error is True
    assert "refused" in result.content[0].text
    assert executor.calls == []


def test_handoff_runs_calls_in_the_turns_thread_and_close_answers_the_rest() -> None:
    import queue

    handed: queue.Queue[Any] = queue.Queue()
    executor = Executor()
    with ToolSocket(_tools(), executor, handoff=handed.put) as tools_socket:
        answers: list[dict[str, Any]] = []

        def ask(name: str) -> None:
            answers.append(request(tools_socket.path, tools_socket.token,
                                   {"op": "call_tool", "name": name, "input": {"name": "A"}},
                                   timeout=10))

        first = threading.Thread(target=ask, args=("get_company",))
        first.start()
        call = handed.get(timeout=5)
        assert tools_socket.calls_in_flight == 1 and executor.calls == []
        call.run(executor)  # here, in the test's thread
        first.join(5)
        assert json.loads(answers[0]["content"])["account"] == "620547"
        second = threading.Thread(target=ask, args=("get_company",))
        second.start()
        handed.get(timeout=5)  # handed over, never run: the turn ends first
    second.join(5)
    assert not second.is_alive()
    assert answers[1]["is_error"] is True and "ended" in answers[1]["content"]
    assert len(executor.calls) == 1
