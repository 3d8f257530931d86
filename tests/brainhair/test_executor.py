"""The turn's tool executor: what the model may call, how input is checked, what it gets back
(filtered), and that a write runs only after the owner's approval, with the approved input."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest
from flask import Flask

from hivematrix.brainhair import approvals, sessions
from hivematrix.brainhair.models import Approval
from hivematrix.brainhair.tools.base import BearerServices, Registry, Tool, ToolContext
from hivematrix.brainhair.tools.executor import TurnExecutor
from hivematrix.common.db import Database
from hivematrix.common.service_client import ServiceClient
from hivematrix.common.testing import serve_wsgi
from tests.brainhair.conftest import Recorder

TECH = {"sub": "user-tina", "preferred_username": "tina", "permission_level": "technician"}


@pytest.fixture
def ledger_url() -> Iterator[str]:
    """A stand-in service that refuses technicians the way Ledger does (403 problem)."""
    app = Flask("refusing_ledger")
    seen: list[str] = []

    @app.put("/api/overrides/client/<account>")
    def refuse(account: str) -> Any:
        seen.append(account)
        return ({"type": "about:blank#forbidden", "title": "Forbidden", "status": 403,
                 "detail": "This requires permission level: admin, billing."}, 403,
                {"Content-Type": "application/problem+json"})

    with serve_wsgi(app) as url:
        yield url


@pytest.fixture
def services(tmp_path: Path, ledger_url: str) -> BearerServices:
    registry = tmp_path / "services.json"
    registry.write_text(json.dumps({"ledger": {"url": ledger_url}}))
    client = ServiceClient(service_name="brainhair", secret=None, core_url="http://127.0.0.1:9",
                           services_file=str(registry))
    return BearerServices(client, "the-users-token")


@pytest.fixture
def session_id(brainhair_db: Database) -> str:
    with brainhair_db.transaction() as db:
        return sessions.create(db, TECH).id


def executor(brainhair_db: Database, registry: Registry, session_id: str,
             services: BearerServices, chunks: list[tuple[str, Mapping[str, Any]]],
             seconds: float = 30, stop: bool = False) -> TurnExecutor:
    context = ToolContext(user=TECH, services=services, session_id=session_id,
                          response_id="r1")
    return TurnExecutor(registry=registry, context=context, database=brainhair_db, level="phi",
                        emit=lambda kind, payload: chunks.append((kind, payload)),
                        should_stop=lambda: stop, approval_seconds=seconds, approval_poll=0.02)


def test_unknown_tools_and_tools_above_the_users_level_are_errors(
        brainhair_db: Database, registry: Registry, session_id: str,
        services: BearerServices) -> None:
    run = executor(brainhair_db, registry, session_id, services, [])
    for name in ("delete_everything", "admin_only_read"):
        result = run(name, {})
        assert result.is_error and "no tool named" in result.content
    assert [c["name"] for c in run.calls] == ["delete_everything", "admin_only_read"]


def test_input_is_validated_against_the_schema(brainhair_db: Database, registry: Registry,
                                               session_id: str, services: BearerServices,
                                               recorder: Recorder) -> None:
    run = executor(brainhair_db, registry, session_id, services, [])
    missing = run("lookup_company", {})
    assert missing.is_error and "account_number" in missing.content
    extra = run("lookup_company", {"account_number": "620547", "sql": "drop"})
    assert extra.is_error and "sql" in extra.content
    pattern = run("set_rate", {"account_number": "620547", "rate": "lots"})
    assert pattern.is_error and "rate" in pattern.content
    assert recorder.writes == []
    with brainhair_db.transaction() as db:
        assert db.query(Approval).count() == 0  # a bad write never even asks


def test_a_read_runs_at_once_and_its_result_is_filtered(
        brainhair_db: Database, registry: Registry, session_id: str,
        services: BearerServices) -> None:
    run = executor(brainhair_db, registry, session_id, services, [])
    result = run("lookup_company", {"account_number": "620547"})
    data = json.loads(result.content)
    assert not result.is_error
    assert data["account_number"] == "620547" and data["ticket_number"] == "T-1001"
    assert "Smith" not in result.content and "John S." in data["note"]
    assert run.filtered
    assert run.results[0]["output"] == result.content


def test_tool_errors_and_service_refusals_name_the_reason(
        brainhair_db: Database, session_id: str, services: BearerServices,
        registry: Registry) -> None:
    def change_billing(context: ToolContext, tool_input: dict[str, Any]) -> Any:
        response = context.services.call("ledger", "/api/overrides/client/620547", "PUT",
                                         json=tool_input)
        response.raise_for_status()
        return response.json()

    tools = Registry([*registry, Tool(name="change_billing", description="",
                                      input_schema={"type": "object"}, run=change_billing)])
    run = executor(brainhair_db, tools, session_id, services, [])
    failed = run("failing_read", {})
    assert failed.is_error and "the ticket system said no" in failed.content
    refused = run("change_billing", {"per_user_cost": "1.00"})
    assert refused.is_error and "403" in refused.content
    assert "permission level: admin, billing" in refused.content


def decide_when_asked(database: Database, user: Mapping[str, Any], approved: bool,
                      chunks: list[tuple[str, Mapping[str, Any]]]) -> threading.Thread:
    """The human: waits for the approval chunk, then decides through the module."""

    def human() -> None:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            asked = [payload for kind, payload in chunks if kind == "approval"]
            if asked:
                with database.transaction() as db:
                    approvals.decide(db, str(asked[0]["id"]), user, approved)
                return
            time.sleep(0.02)

    thread = threading.Thread(target=human)
    thread.start()
    return thread


def test_an_approved_write_runs_exactly_the_stored_input(
        brainhair_db: Database, registry: Registry, session_id: str, services: BearerServices,
        recorder: Recorder) -> None:
    chunks: list[tuple[str, Mapping[str, Any]]] = []
    run = executor(brainhair_db, registry, session_id, services, chunks)
    human = decide_when_asked(brainhair_db, TECH, True, chunks)
    tool_input = {"account_number": "620547", "rate": "45.00"}
    result = run("set_rate", tool_input)
    human.join()
    assert not result.is_error and json.loads(result.content) == {"changed": True,
                                                                   "rate": "45.00"}
    assert recorder.writes == [tool_input]
    asked = next(payload for kind, payload in chunks if kind == "approval")
    assert asked["tool"] == "set_rate" and "45.00" in str(asked["action"])
    assert "Smith" not in json.dumps(asked["details"])


def test_a_denied_write_is_not_run(brainhair_db: Database, registry: Registry,
                                   session_id: str, services: BearerServices,
                                   recorder: Recorder) -> None:
    chunks: list[tuple[str, Mapping[str, Any]]] = []
    run = executor(brainhair_db, registry, session_id, services, chunks)
    human = decide_when_asked(brainhair_db, TECH, False, chunks)
    result = run("set_rate", {"account_number": "620547", "rate": "45.00"})
    human.join()
    assert result.is_error and json.loads(result.content)["status"] == "denied"
    assert recorder.writes == []


def test_an_expired_write_is_not_run(brainhair_db: Database, registry: Registry,
                                     session_id: str, services: BearerServices,
                                     recorder: Recorder) -> None:
    run = executor(brainhair_db, registry, session_id, services, [], seconds=0.3)
    result = run("set_rate", {"account_number": "620547", "rate": "45.00"})
    assert result.is_error and json.loads(result.content)["status"] == "expired"
    assert recorder.writes == []
    with brainhair_db.transaction() as db:
        (approval,) = db.query(Approval).all()
        assert approval.status == "expired"
        # too late now, even for the owner
        with pytest.raises(Exception, match="expired"):
            approvals.decide(db, approval.id, TECH, True)
    assert recorder.writes == []


def test_a_stopped_turn_expires_its_waiting_write(
        brainhair_db: Database, registry: Registry, session_id: str, services: BearerServices,
        recorder: Recorder) -> None:
    run = executor(brainhair_db, registry, session_id, services, [], stop=True)
    result = run("set_rate", {"account_number": "620547", "rate": "45.00"})
    assert json.loads(result.content)["status"] == "expired" and recorder.writes == []


def test_a_plain_http_error_response_is_reported() -> None:
    """``service_refusal`` reads a problem's detail, or the text of anything else."""
    from hivematrix.brainhair.tools.executor import service_refusal

    problem = httpx.Response(403, json={"title": "Forbidden", "detail": "No billing for you."})
    assert service_refusal(problem) == "403 Forbidden: No billing for you."
    assert service_refusal(httpx.Response(404, text="nothing here")) == \
        "404 Not Found: nothing here"
