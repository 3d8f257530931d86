"""The :class:`ToolExecutor` of one turn: where permission, validation, approval and
filtering of every tool call happen, whichever backend asked.

- a tool that does not exist, or is not offered at the user's level, is an error result;
- the input is validated against the tool's JSON schema, and the model is told what is wrong;
- a read tool runs at once; its result is filtered at the turn's level before the model sees it;
- a write tool first proposes (action and details), which becomes an approval shown to the
  user; only if the session's owner approves does it run, with exactly the stored input.
  Denied or expired: the model is told so and nothing is written;
- a :class:`ToolError`, or a service answering 4xx (Ledger refusing a technician), becomes an
  error result naming the reason.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from hivematrix.brainhair import approvals
from hivematrix.brainhair.backends.base import ToolResult
from hivematrix.brainhair.models import Approval
from hivematrix.brainhair.tools.base import Registry, Tool, ToolContext, ToolError
from hivematrix.common.db import Database
from hivematrix.common.service_client import ServiceCallError

log = logging.getLogger("hivematrix.brainhair.executor")

#: The status line shown once an approval is settled.
DECIDED = {"approved": "Approved; making the change.",
           "denied": "Denied: nothing was changed.",
           "expired": "The approval expired: nothing was changed."}

#: ``(kind, payload)``: appends a chunk to the turn's running response.
ChunkSink = Callable[[str, Mapping[str, Any]], None]


def as_text(value: Any) -> str:
    """A tool's output as the model reads it: strings as they are, anything else as JSON."""
    if isinstance(value, str):
        return value
    return json.dumps(value, default=str, ensure_ascii=False)


def schema_errors(schema: Mapping[str, Any], tool_input: Any) -> list[str]:
    """Every way ``tool_input`` breaks ``schema``, as ``path: message`` lines."""
    try:
        validator = Draft202012Validator(dict(schema))
    except SchemaError:  # our own bug, not the model's
        log.exception("a tool's schema is invalid")
        return ["the tool's schema is invalid"]
    found = []
    for error in sorted(validator.iter_errors(tool_input), key=lambda e: list(e.path)):
        where = "/".join(str(part) for part in error.path) or "input"
        found.append(f"{where}: {error.message}")
    return found


def service_refusal(response: httpx.Response) -> str:
    """What a service's 4xx says, for the model: status and the problem's detail."""
    try:
        body = response.json()
    except ValueError:
        body = None
    detail = body.get("detail") or body.get("title") if isinstance(body, dict) else None
    return f"{response.status_code} {response.reason_phrase}: {detail or response.text[:300]}"


@dataclass
class TurnExecutor:
    """Runs tools for one turn of one user (thread-safe: a backend may call in parallel)."""

    registry: Registry
    context: ToolContext
    database: Database
    #: The filter level of this turn: ``phi``, ``cjis`` or ``none``.
    level: str
    emit: ChunkSink
    should_stop: Callable[[], bool]
    approval_seconds: float = 120.0
    approval_poll: float = 0.2
    #: What was called and what came back, for the stored assistant message.
    calls: list[dict[str, Any]] = field(default_factory=list)
    results: list[dict[str, Any]] = field(default_factory=list)
    #: Whether the filter changed anything the model was given.
    filtered: bool = False
    #: Identifiers, plan and company names the turn's tool data carried: kept as they are
    #: wherever the model's reply quotes them (see ``PhiFilter.protected_terms``).
    terms: set[str] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, name: str, tool_input: dict[str, Any]) -> ToolResult:
        with self._lock:
            call_id = f"call-{len(self.calls) + 1}"
            self.calls.append({"id": call_id, "name": name,
                               "input": self._filter_data(tool_input)})
        result = self._run(name, tool_input)
        with self._lock:
            self.results.append({"id": call_id, "name": name, "output": result.content,
                                 "is_error": result.is_error})
        return result

    def record(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """Copies of the calls and results so far."""
        with self._lock:
            return list(self.calls), list(self.results)

    def _run(self, name: str, tool_input: Any) -> ToolResult:
        tool = self.registry.get(name) if isinstance(name, str) else None
        if tool is None or self.context.level not in tool.levels:
            return self._error(f"There is no tool named {name!r} available to you.")
        if not isinstance(tool_input, dict):
            return self._error("The tool input must be a JSON object.")
        problems = schema_errors(tool.input_schema, tool_input)
        if problems:
            return self._error("Invalid input for " + tool.name + ": " + "; ".join(problems))
        try:
            if tool.propose is None:
                return self._output(tool.run(self.context, tool_input))
            return self._write(tool, tool_input)
        except ToolError as exc:
            return self._error(str(exc))
        except httpx.HTTPStatusError as exc:
            return self._error(f"{tool.name} was refused: {service_refusal(exc.response)}")
        except ServiceCallError as exc:
            log.warning("tool %s could not reach a service: %s", tool.name, exc)
            return self._error(f"{tool.name} could not reach a service; try again later.")
        except Exception:
            log.exception("tool %s failed", tool.name)
            return self._error(f"{tool.name} failed with an internal error.")

    def _write(self, tool: Tool, tool_input: dict[str, Any]) -> ToolResult:
        assert tool.propose is not None
        proposal = tool.propose(self.context, tool_input)
        with self.database.transaction() as db:
            approval = approvals.create(
                db, session_id=self.context.session_id, user=self.context.user, tool=tool.name,
                action=proposal.action, details=proposal.details, tool_input=tool_input,
                seconds=self.approval_seconds, level=self.level,
                response_id=self.context.response_id, allow=self.terms)
            shown = approvals.to_dict(approval)
        self.emit("tool", {"phase": "approval", "tool": tool.name, "approval_id": shown["id"],
                           "status": "pending"})
        self.emit("approval", {"id": shown["id"], "tool": shown["tool"],
                               "action": shown["action"], "details": shown["details"],
                               "expires_at": shown["expires_at"]})
        status = approvals.wait(self.database, shown["id"], self.should_stop,
                                interval=self.approval_poll)
        self.emit("status", {"text": DECIDED[status], "approval_id": shown["id"],
                             "status": status})
        if status != "approved":
            verb = "denied" if status == "denied" else "expired"
            return ToolResult(json.dumps({"status": verb, "message": (
                f"The user {verb} this action." if verb == "denied" else
                "The approval expired without a decision.") + " Nothing was changed."}),
                is_error=True)
        with self.database.transaction() as db:
            stored = db.get(Approval, shown["id"])
            approved_input = dict(stored.tool_input) if stored else None
        if approved_input is None:
            return self._error("The approval vanished; nothing was changed.")
        return self._output(tool.run(self.context, approved_input))

    def _output(self, value: Any) -> ToolResult:
        if isinstance(value, str):
            text = self._filter_text(value)
        else:
            text = as_text(self._filter_data(value))
        return ToolResult(text)

    def _error(self, message: str) -> ToolResult:
        return ToolResult(self._filter_text(message), is_error=True)

    def _filter_text(self, text: str) -> str:
        if self.level == "none":
            return text
        from hivematrix.brainhair.phi import get_filter

        clean, changed = get_filter().filter_text(text, self.level)
        if changed:
            self.filtered = True
        return str(clean)

    def _filter_data(self, data: Any) -> Any:
        if self.level == "none":
            return data
        from hivematrix.brainhair.phi import get_filter

        clean, changed = get_filter().filter_data(data, self.level, allow=self.terms,
                                                  found=self.terms)
        if changed:
            self.filtered = True
        return clean
