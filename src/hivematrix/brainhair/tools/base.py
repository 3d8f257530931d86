"""What a tool is, what it gets when it runs, and the one registry of them.

A tool is a typed Python function with a JSON schema for its input. The same registry is served
to the Claude Code CLI over MCP and to the Anthropic API as tool-use schemas. Every tool calls
the owning service's API **with the chatting user's own token** (:class:`UserServices`), so the
service applies that user's permission level: a technician cannot change billing through the
assistant either.

Read tools run at once. A write tool also has ``propose``: it turns the input into the action
text and details a human approves; only after approval does ``run`` execute, with exactly the
input that was approved.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx

#: Who may be offered a tool at all (the owning service still checks every call).
STAFF = ("admin", "technician", "billing")


class ToolError(Exception):
    """A tool could not do what was asked; the message goes back to the model (filtered)."""


class UserServices(Protocol):
    """The other services, called with the chatting user's token."""

    def call(self, target: str, path: str, method: str = "GET",
             **kwargs: Any) -> httpx.Response: ...


class BearerServices:
    """:class:`UserServices` over the kit's service client, with one user's token."""

    def __init__(self, client: Any, token: str) -> None:
        self._client = client
        self._token = token

    def call(self, target: str, path: str, method: str = "GET",
             **kwargs: Any) -> httpx.Response:
        response: httpx.Response = self._client.call_as(self._token, target, path, method,
                                                        **kwargs)
        return response


@dataclass(frozen=True)
class ToolContext:
    """Everything a tool run may use; built per turn by the chat runner."""

    #: Claims of the chatting user's token (``sub``, ``permission_level``, ``account_number``...).
    user: Mapping[str, Any]
    services: UserServices
    session_id: str
    response_id: str | None = None

    @property
    def level(self) -> str:
        return str(self.user.get("permission_level", "client"))


@dataclass(frozen=True)
class Proposal:
    """What a write will do, as the approver sees it."""

    action: str
    details: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Tool:
    name: str
    description: str
    #: JSON Schema (draft 2020-12) of the input object.
    input_schema: Mapping[str, Any]
    run: Callable[[ToolContext, dict[str, Any]], Any]
    #: Set for write tools: the approval text for an input (may read, never write).
    propose: Callable[[ToolContext, dict[str, Any]], Proposal] | None = None
    levels: tuple[str, ...] = STAFF

    @property
    def writes(self) -> bool:
        return self.propose is not None


class Registry:
    """Tools by name, in the order they were added."""

    def __init__(self, tools: Iterable[Tool] = ()) -> None:
        self._tools: dict[str, Tool] = {}
        for tool in tools:
            self.add(tool)

    def add(self, tool: Tool) -> Tool:
        if tool.name in self._tools:
            raise ValueError(f"tool {tool.name!r} is registered twice")
        self._tools[tool.name] = tool
        return tool

    def get(self, name: str) -> Tool | None:
        return self._tools.get(name)

    def for_level(self, level: str) -> list[Tool]:
        """The tools offered to a user of this permission level."""
        return [tool for tool in self._tools.values() if level in tool.levels]

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self._tools.values())

    def __len__(self) -> int:
        return len(self._tools)
