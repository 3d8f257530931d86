"""Fixtures for Brainhair: its database on SQLite and PostgreSQL, apps wired to the fake Core,
a scripted test double of the model (a :class:`Backend` injected through ``app.extensions``),
and small tools defined here, among them a write that records whether it ran."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from hivematrix.brainhair import SERVICE, create_app
from hivematrix.brainhair.backends.base import (
    Event,
    HistoryMessage,
    StopRequested,
    ToolExecutor,
    ToolResult,
)
from hivematrix.brainhair.chat import join_turns
from hivematrix.brainhair.tools.base import Proposal, Registry, Tool, ToolContext, ToolError
from hivematrix.common.db import Database
from hivematrix.common.testing import FakeCore, database_url_fixture

BRAINHAIR_SECRET = "brainhair-test-secret"

brainhair_db_url = database_url_fixture("brainhair_db_url", SERVICE.migrations, "brainhair")


@pytest.fixture
def brainhair_db(brainhair_db_url: str) -> Iterator[Database]:
    database = Database(brainhair_db_url)
    yield database
    database.dispose()


# --- a scripted model -----------------------------------------------------------------------

@dataclass
class Step:
    """One thing the scripted model does: say ``text``, call ``tool`` with ``input``, report
    an ``error``, or wait (up to ``seconds``) until the turn is stopped."""

    kind: str
    text: str = ""
    tool: str = ""
    input: dict[str, Any] = field(default_factory=dict)
    seconds: float = 10.0


def say(text: str) -> Step:
    return Step("text", text=text)


def call(tool: str, **tool_input: Any) -> Step:
    return Step("tool", tool=tool, input=tool_input)


def wait_for_stop(seconds: float = 10.0) -> Step:
    return Step("wait", seconds=seconds)


@dataclass
class ScriptedBackend:
    """A test double of the model implementing the Backend protocol: it plays one script per
    turn and records what it was given and what the tools answered."""

    scripts: list[list[Step]]
    name: str = "scripted"
    prompts: list[str] = field(default_factory=list)
    histories: list[Sequence[HistoryMessage]] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)
    offered: list[list[str]] = field(default_factory=list)
    results: list[ToolResult] = field(default_factory=list)

    def available(self) -> str | None:
        return None

    def run_turn(self, *, system_prompt: str, history: Sequence[HistoryMessage],
                 message: str, tools: Sequence[Tool], execute: ToolExecutor,
                 should_stop: StopRequested) -> Iterator[Event]:
        self.prompts.append(system_prompt)
        self.histories.append(list(history))
        self.messages.append(message)
        self.offered.append([tool.name for tool in tools])
        script = self.scripts.pop(0) if self.scripts else [say("(no script)")]
        for number, step in enumerate(script):
            if step.kind == "text":
                yield Event(kind="text", text=step.text)
            elif step.kind == "error":
                yield Event(kind="error", text=step.text)
            elif step.kind == "wait":
                deadline = time.monotonic() + step.seconds
                while not should_stop() and time.monotonic() < deadline:
                    time.sleep(0.02)
            elif step.kind == "tool":
                tool_id = f"t{number}"
                yield Event(kind="tool_start", tool=step.tool, tool_id=tool_id, input=step.input)
                result = execute(step.tool, dict(step.input))
                self.results.append(result)
                yield Event(kind="tool_end", tool=step.tool, tool_id=tool_id,
                            output=result.content, is_error=result.is_error)


# --- tools defined for the tests ------------------------------------------------------------

@dataclass
class Recorder:
    """What the test tools did: every write that really ran, with its input."""

    writes: list[dict[str, Any]] = field(default_factory=list)


def sample_tools(recorder: Recorder) -> list[Tool]:
    def lookup(_context: ToolContext, tool_input: dict[str, Any]) -> Any:
        return {"account_number": tool_input["account_number"], "ticket_number": "T-1001",
                "contact": "John Smith", "note": "Call John Smith about the backup."}

    def fail(_context: ToolContext, _input: dict[str, Any]) -> Any:
        raise ToolError("the ticket system said no")

    def write(_context: ToolContext, tool_input: dict[str, Any]) -> Any:
        recorder.writes.append(dict(tool_input))
        return {"changed": True, "rate": tool_input["rate"]}

    def propose(_context: ToolContext, tool_input: dict[str, Any]) -> Proposal:
        return Proposal(action=f"Set the per-user rate of {tool_input['account_number']} to "
                               f"{tool_input['rate']}",
                        details={"account_number": tool_input["account_number"],
                                 "rate": tool_input["rate"], "requested for": "John Smith"})

    account = {"type": "object", "required": ["account_number"], "additionalProperties": False,
               "properties": {"account_number": {"type": "string"}}}
    return [
        Tool(name="lookup_company", description="Read a company.", input_schema=account,
             run=lookup),
        Tool(name="failing_read", description="Always fails.",
             input_schema={"type": "object"}, run=fail),
        Tool(name="admin_only_read", description="Admins only.",
             input_schema={"type": "object"}, run=lookup, levels=("admin",)),
        Tool(name="set_rate", description="Change a rate (a write).",
             input_schema={"type": "object", "required": ["account_number", "rate"],
                           "properties": {"account_number": {"type": "string"},
                                          "rate": {"type": "string", "pattern": r"^\d+\.\d\d$"}}},
             run=write, propose=propose),
    ]


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def registry(recorder: Recorder) -> Registry:
    return Registry(sample_tools(recorder))


# --- apps -----------------------------------------------------------------------------------

@pytest.fixture
def make_app(service_settings: dict[str, Any], fake_core: FakeCore, brainhair_db_url: str,
             registry: Registry) -> Iterator[Callable[..., Flask]]:
    """``make_app(backend=..., **settings)``: a Brainhair app on the test's database; call it
    twice for two instances (two workers) sharing that database."""
    fake_core.secrets["brainhair"] = BRAINHAIR_SECRET
    apps: list[Flask] = []

    def make(backend: Any = None, **overrides: Any) -> Flask:
        settings = {**service_settings, "DATABASE_URL": brainhair_db_url,
                    "SERVICE_SECRET": BRAINHAIR_SECRET, "BRAINHAIR_APPROVAL_POLL_SECONDS": 0.02,
                    **overrides}
        app = create_app(settings)
        app.extensions["brainhair.registry"] = registry
        if backend is not None:
            app.extensions["brainhair.backend"] = backend
        apps.append(app)
        return app

    yield make
    for app in apps:
        join_turns(app)
    for app in apps:
        app.extensions["hivematrix.db"].dispose()


@pytest.fixture
def app(make_app: Callable[..., Flask]) -> Flask:
    return make_app()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def poll_until_done(client: FlaskClient, headers: dict[str, str], response_id: str,
                    timeout: float = 20.0) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Poll like the chat page does until the reply is done: (every chunk, the last answer)."""
    chunks: list[dict[str, Any]] = []
    offset = 0
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        answer = client.get(f"/api/chat/poll/{response_id}?offset={offset}", headers=headers)
        assert answer.status_code == 200, answer.get_json()
        body = answer.get_json()
        chunks.extend(body["chunks"])
        offset = body["offset"]
        if body["done"]:
            return chunks, body
        time.sleep(0.02)
    raise AssertionError(f"reply {response_id} did not finish; chunks so far: {chunks}")


def wait_for_chunk(client: FlaskClient, headers: dict[str, str], response_id: str, kind: str,
                   timeout: float = 20.0) -> dict[str, Any]:
    """Poll until a chunk of ``kind`` arrives (an approval request, say)."""
    offset = 0
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = client.get(f"/api/chat/poll/{response_id}?offset={offset}",
                          headers=headers).get_json()
        for chunk in body["chunks"]:
            if chunk["type"] == kind:
                return dict(chunk)
        offset = body["offset"]
        if body["done"]:
            break
        time.sleep(0.02)
    raise AssertionError(f"no {kind} chunk in reply {response_id}")


def text_of(chunks: list[dict[str, Any]]) -> str:
    return "".join(chunk["text"] for chunk in chunks if chunk["type"] == "text")
