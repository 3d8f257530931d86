"""How a service's answer becomes a tool's result or a ToolError, over a stand-in for the
services that answers with fixed HTTP responses (the UserServices protocol)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from hivematrix.brainhair.tools.base import ToolContext, ToolError
from hivematrix.brainhair.tools.calls import call, capped, money, segment
from hivematrix.common.service_client import ServiceUnavailableError


class Answering:
    """Answers every call with one response (or raises), recording what was asked."""

    def __init__(self, response: httpx.Response | Exception) -> None:
        self.response = response
        self.asked: list[tuple[str, str, str, dict[str, Any]]] = []

    def call(self, target: str, path: str, method: str = "GET",
             **kwargs: Any) -> httpx.Response:
        self.asked.append((target, path, method, kwargs))
        if isinstance(self.response, Exception):
            raise self.response
        return self.response


def context(response: httpx.Response | Exception) -> tuple[ToolContext, Answering]:
    services = Answering(response)
    return ToolContext(user={"permission_level": "admin"}, services=services,
                       session_id="s"), services


def test_json_comes_back_and_empty_parameters_are_left_out() -> None:
    ctx, services = context(httpx.Response(200, json={"items": [1]}))
    assert call(ctx, "codex", "/api/x", params={"q": "a", "status": None}) == {"items": [1]}
    assert services.asked == [("codex", "/api/x", "GET", {"params": {"q": "a"}})]


def test_no_content_is_none() -> None:
    ctx, _ = context(httpx.Response(204))
    assert call(ctx, "ledger", "/api/x", "DELETE") is None


def test_a_refusal_carries_the_problems_detail_and_fields() -> None:
    ctx, _ = context(httpx.Response(403, json={
        "type": "about:blank", "title": "Forbidden", "status": 403,
        "detail": "Requires permission level: admin, billing."}))
    with pytest.raises(ToolError, match=r"^Ledger refused \(403\): Requires permission level"):
        call(ctx, "ledger", "/api/overrides/1/client", "PUT", json={})
    ctx, _ = context(httpx.Response(422, json={
        "title": "Invalid input", "detail": "Validation error",
        "errors": {"json": {"component_uid": ["Missing data."]}}}))
    with pytest.raises(ToolError, match=r"Validation error \(fields: component_uid\)"):
        call(ctx, "codex", "/api/assets/1/rmm/jobs", "POST", json={})


def test_a_failure_and_an_unreachable_service_are_clear() -> None:
    ctx, _ = context(httpx.Response(502, text="<html>bad gateway</html>"))
    with pytest.raises(ToolError, match=r"^Codex failed \(502\): <html>bad gateway"):
        call(ctx, "codex", "/api/x")
    ctx, _ = context(ServiceUnavailableError("connection refused"))
    with pytest.raises(ToolError, match="KnowledgeTree is unavailable right now"):
        call(ctx, "knowledgetree", "/api/search")
    ctx, _ = context(httpx.Response(200, text="not json"))
    with pytest.raises(ToolError, match="not JSON"):
        call(ctx, "beacon", "/api/tickets/helpdesk")


def test_small_helpers() -> None:
    assert segment("a/b c") == "a%2Fb%20c"
    assert capped([1, 2, 3], 2) == {"items": [1, 2], "count": 3, "truncated": True,
                                    "note": "Showing 2 of 3; narrow the search or ask for "
                                            "the next page."}
    assert capped([1], 5, total=1) == {"items": [1], "count": 1, "truncated": False}
    assert money(30) == "30" and money(" 12.50 ") == "12.50"
    with pytest.raises(ToolError, match="non-negative"):
        money("-1")
    with pytest.raises(ToolError, match="not an amount"):
        money("lots")
