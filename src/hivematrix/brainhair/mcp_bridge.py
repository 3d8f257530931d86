"""The MCP server the Claude Code CLI talks to: the turn's tools, and nothing else.

The CLI starts it from the turn's ``--mcp-config`` as
``python -m hivematrix.brainhair.mcp_bridge --socket PATH`` with the socket's token in
``BRAINHAIR_TOOL_TOKEN``. It lists the tools the turn runner offers (name, description, input
schema) and forwards every call over the per-turn socket (:mod:`hivematrix.brainhair.tool_socket`)
to the runner's executor, which applies approvals, permissions and filtering. It holds no
secret of the service and cannot reach anything but that socket.

It also serves ``approve``, the CLI's ``--permission-prompt-tool``: the CLI asks it before
running a tool, and it allows only this server's own tools (``mcp__brainhair__*``). That is
not the human approval of a write; that happens inside the executor, where it cannot be
skipped.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

import anyio
import anyio.to_thread
import mcp_types as types
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel import Server
from mcp.server.stdio import stdio_server

from hivematrix.brainhair.tool_socket import TOKEN_ENV, ToolSocketError, request

#: The server's name in the mcp-config; the CLI calls its tools ``mcp__brainhair__<tool>``.
SERVER_NAME = "brainhair"
PREFIX = f"mcp__{SERVER_NAME}__"
APPROVE = "approve"
#: How the CLI names the permission-prompt tool.
PERMISSION_TOOL = PREFIX + APPROVE

_APPROVE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "tool_name": {"type": "string"},
        "input": {"type": "object"},
        "tool_use_id": {"type": "string"},
    },
    "required": ["tool_name"],
}


def permission_answer(tool_name: Any, tool_input: Any, own_tools: set[str]) -> dict[str, Any]:
    """The permission prompt's answer: allow our own tools (input unchanged), deny the rest."""
    if (isinstance(tool_name, str) and tool_name.startswith(PREFIX)
            and tool_name[len(PREFIX):] in own_tools):
        return {"behavior": "allow",
                "updatedInput": tool_input if isinstance(tool_input, dict) else {}}
    return {"behavior": "deny",
            "message": f"{tool_name} is not available here; only the assistant's own tools are."}


class Bridge:
    """The tools of one turn, fetched once from the socket."""

    def __init__(self, socket_path: str, token: str) -> None:
        self.socket_path = socket_path
        self.token = token
        self._tools: list[dict[str, Any]] | None = None

    def tools(self) -> list[dict[str, Any]]:
        if self._tools is None:
            answer = request(self.socket_path, self.token, {"op": "list_tools"}, timeout=30)
            listed = answer.get("tools")
            self._tools = [item for item in listed if isinstance(item, dict)] \
                if isinstance(listed, list) else []
        return self._tools

    def call(self, name: str, arguments: dict[str, Any]) -> tuple[str, bool]:
        if name == APPROVE:
            own = {str(item.get("name")) for item in self.tools()}
            answer = permission_answer(arguments.get("tool_name"), arguments.get("input"), own)
            return json.dumps(answer), False
        try:
            result = request(self.socket_path, self.token,
                             {"op": "call_tool", "name": name, "input": arguments})
        except ToolSocketError as exc:
            return str(exc), True
        return str(result.get("content", "")), bool(result.get("is_error"))

    def server(self) -> Server[Any]:
        async def list_tools(ctx: ServerRequestContext[Any],
                             params: types.PaginatedRequestParams | None) -> types.ListToolsResult:
            listed = await anyio.to_thread.run_sync(self.tools)
            tools = [types.Tool(name=str(item["name"]),
                                description=str(item.get("description", "")),
                                input_schema=dict(item.get("input_schema") or {"type": "object"}))
                     for item in listed]
            tools.append(types.Tool(
                name=APPROVE, input_schema=_APPROVE_SCHEMA,
                description="Internal: answers the CLI's permission prompts. Do not call it."))
            return types.ListToolsResult(tools=tools)

        async def call_tool(ctx: ServerRequestContext[Any],
                            params: types.CallToolRequestParams) -> types.CallToolResult:
            arguments = dict(params.arguments or {})
            text, is_error = await anyio.to_thread.run_sync(self.call, params.name, arguments)
            return types.CallToolResult(content=[types.TextContent(type="text", text=text)],
                                        is_error=is_error)

        return Server(SERVER_NAME, version="1", on_list_tools=list_tools,
                      on_call_tool=call_tool)


async def serve(bridge: Bridge) -> None:
    server = bridge.server()
    async with stdio_server() as (read_stream, write_stream):
        await server.run(read_stream, write_stream, server.create_initialization_options())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="hivematrix.brainhair.mcp_bridge",
                                     description="Brainhair's MCP server for one chat turn.")
    parser.add_argument("--socket", required=True, help="The turn's tool socket.")
    args = parser.parse_args(argv)
    token = os.environ.get(TOKEN_ENV, "")
    if not token:
        print(f"{TOKEN_ENV} is not set", file=sys.stderr)
        return 2
    anyio.run(serve, Bridge(args.socket, token))
    return 0


if __name__ == "__main__":
    sys.exit(main())
