"""A contract fake of the Anthropic Messages API (``POST /v1/messages``, streaming), over HTTP.

It checks a request the way the API documents it: the key in ``x-api-key`` or as an
``Authorization: Bearer`` token (the SDK 2.x sends the latter; 401 ``authentication_error``
otherwise), ``anthropic-version``, a JSON body with ``model``,
``max_tokens``, ``messages`` (starting with the user, alternating roles, every
``tool_result`` answering a ``tool_use`` of the assistant message just before it) and
``tools`` (``name``, ``description``, an object ``input_schema``); anything else is a 400
``invalid_request_error``. It answers ``stream: true`` with the documented server-sent events:
``message_start``, ``content_block_start`` / ``content_block_delta`` (``text_delta`` or
``input_json_delta``) / ``content_block_stop`` per block, a ``ping``, ``message_delta`` with
the ``stop_reason`` and ``message_stop``.

Replies come from the scenario, one per request: a list of blocks, ``{"text": ...}``,
``{"text_from_result": template}`` (``{field}`` from the JSON of the request's last
tool_result), ``{"echo_user": true}`` or ``{"tool": name, "input": {...}}``; or
``{"error": status, "type": error_type}``; or ``{"delay": seconds, "blocks": [...]}`` (the
answer starts only after the delay).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from flask import Flask, Response, request

from hivematrix.common.testing import serve_wsgi

API_KEY = "sk-ant-test-0123456789"


def _error(status: int, kind: str, message: str) -> Response:
    return Response(json.dumps({"type": "error", "error": {"type": kind, "message": message}}),
                    status=status, mimetype="application/json")


def _sse(kind: str, data: dict[str, Any]) -> str:
    return f"event: {kind}\ndata: {json.dumps(data)}\n\n"


def _messages_problem(messages: Any) -> str | None:
    if not isinstance(messages, list) or not messages:
        return "messages: at least one message is required"
    previous_tool_ids: set[str] = set()
    for index, item in enumerate(messages):
        role = item.get("role") if isinstance(item, dict) else None
        if role != ("user" if index % 2 == 0 else "assistant"):
            return f"messages.{index}.role: roles must alternate, starting with user"
        content = item["content"]
        blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content
        if not isinstance(blocks, list) or not blocks:
            return f"messages.{index}.content: must be a string or a list of blocks"
        tool_ids = set()
        for block in blocks:
            kind = block.get("type") if isinstance(block, dict) else None
            if kind == "tool_use" and role == "assistant":
                tool_ids.add(block.get("id"))
            elif kind == "tool_result" and role == "user":
                if block.get("tool_use_id") not in previous_tool_ids:
                    return (f"messages.{index}: tool_result for an unknown tool_use id "
                            f"{block.get('tool_use_id')!r}")
            elif kind != "text":
                return f"messages.{index}.content: unexpected block {kind!r}"
        previous_tool_ids = tool_ids
    return None


def _problem(body: Any) -> str | None:
    """What is wrong with a request body, as the API would say it; ``None`` when valid."""
    if not isinstance(body, dict):
        return "body: must be a JSON object"
    if not isinstance(body.get("model"), str) or not body["model"]:
        return "model: Field required"
    if not isinstance(body.get("max_tokens"), int) or body["max_tokens"] < 1:
        return "max_tokens: Field required"
    problem = _messages_problem(body.get("messages"))
    if problem:
        return problem
    for index, tool in enumerate(body.get("tools") or []):
        if not isinstance(tool, dict) or not isinstance(tool.get("name"), str):
            return f"tools.{index}.name: Field required"
        schema = tool.get("input_schema")
        if not isinstance(schema, dict) or schema.get("type") != "object":
            return f"tools.{index}.input_schema.type: must be 'object'"
    if body.get("system") is not None and not isinstance(body["system"], str | list):
        return "system: must be a string or a list of text blocks"
    return None


def _last_tool_result(messages: list[dict[str, Any]]) -> dict[str, Any]:
    content = messages[-1]["content"]
    for block in reversed(content if isinstance(content, list) else []):
        if block.get("type") == "tool_result":
            text = block.get("content")
            if isinstance(text, list):
                text = "".join(part.get("text", "") for part in text)
            try:
                parsed = json.loads(text)
            except (TypeError, ValueError):
                return {"text": text}
            return parsed if isinstance(parsed, dict) else {"value": parsed}
    return {}


def _last_user_text(messages: list[dict[str, Any]]) -> str:
    content = messages[-1]["content"]
    if isinstance(content, str):
        return content
    return "".join(block.get("text", "") for block in content if block.get("type") == "text")


@dataclass
class FakeAnthropic:
    replies: list[Any]
    model: str = "claude-test-model"
    api_key: str = API_KEY
    requests: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)

    def app(self) -> Flask:
        app = Flask("fake-anthropic")

        @app.post("/v1/messages")
        def messages() -> Response:
            self.headers.append(dict(request.headers))
            if self.api_key not in (request.headers.get("x-api-key"),
                                    request.headers.get("Authorization", "").removeprefix(
                                        "Bearer ")):
                return _error(401, "authentication_error", "invalid x-api-key")
            if not request.headers.get("anthropic-version"):
                return _error(400, "invalid_request_error",
                              "anthropic-version: header is required")
            body = request.get_json(silent=True)
            self.requests.append(body)
            problem = _problem(body)
            if problem:
                return _error(400, "invalid_request_error", problem)
            if body["model"] != self.model:
                return _error(404, "not_found_error", f"model: {body['model']}")
            if not body.get("stream"):
                return _error(400, "invalid_request_error", "this fake streams only")
            if not self.replies:
                return _error(500, "api_error", "the scenario has no reply left")
            reply = self.replies.pop(0)
            if isinstance(reply, dict) and "delay" in reply:  # a slow first byte
                time.sleep(float(reply["delay"]))
                reply = reply["blocks"]
            if isinstance(reply, dict) and "error" in reply:
                return _error(int(reply["error"]), str(reply.get("type", "api_error")),
                              str(reply.get("message", "scenario error")))
            return Response(self._stream(reply, body), mimetype="text/event-stream")

        return app

    def _stream(self, reply: list[dict[str, Any]], body: dict[str, Any]) -> Iterator[str]:
        message_id = f"msg_{uuid.uuid4().hex[:24]}"
        yield _sse("message_start", {"type": "message_start", "message": {
            "id": message_id, "type": "message", "role": "assistant", "model": body["model"],
            "content": [], "stop_reason": None, "stop_sequence": None,
            "usage": {"input_tokens": 25, "output_tokens": 1}}})
        stop_reason = "end_turn"
        for index, block in enumerate(reply):
            if "tool" in block:
                stop_reason = "tool_use"
                yield _sse("content_block_start", {
                    "type": "content_block_start", "index": index, "content_block": {
                        "type": "tool_use", "id": f"toolu_{uuid.uuid4().hex[:20]}",
                        "name": block["tool"], "input": {}}})
                encoded = json.dumps(block.get("input", {}))
                for part in (encoded[:len(encoded) // 2], encoded[len(encoded) // 2:]):
                    yield _sse("content_block_delta", {
                        "type": "content_block_delta", "index": index,
                        "delta": {"type": "input_json_delta", "partial_json": part}})
            else:
                if "text_from_result" in block:
                    text = block["text_from_result"].format(
                        **_last_tool_result(body["messages"]))
                elif "echo_user" in block:
                    text = _last_user_text(body["messages"])
                else:
                    text = block["text"]
                yield _sse("content_block_start", {
                    "type": "content_block_start", "index": index,
                    "content_block": {"type": "text", "text": ""}})
                words = text.split(" ")
                for number, word in enumerate(words):
                    piece = word + (" " if number < len(words) - 1 else "")
                    yield _sse("content_block_delta", {
                        "type": "content_block_delta", "index": index,
                        "delta": {"type": "text_delta", "text": piece}})
            yield _sse("content_block_stop", {"type": "content_block_stop", "index": index})
            if index == 0:
                yield _sse("ping", {"type": "ping"})
        yield _sse("message_delta", {"type": "message_delta",
                                     "delta": {"stop_reason": stop_reason, "stop_sequence": None},
                                     "usage": {"output_tokens": 15}})
        yield _sse("message_stop", {"type": "message_stop"})


@contextmanager
def serve(fake: FakeAnthropic) -> Iterator[str]:
    """Serve ``fake`` on a free port; yields the base URL (``ANTHROPIC_BASE_URL``)."""
    with serve_wsgi(fake.app()) as url:
        yield url
