"""JSON log lines with service, level, message, correlation id and user; correlation ids."""

import io
import json
import logging
import re
from collections.abc import Iterator
from typing import Any

import pytest
from apiflask import APIBlueprint, APIFlask
from flask import g

from hivematrix.common.auth import token_required
from hivematrix.common.logging import configure_logging
from hivematrix.common.testing import TokenFactory

bp = APIBlueprint("logs", __name__)
view_log = logging.getLogger("hivematrix.tests.view")
MINTED = re.compile(r"^[0-9a-f]{32}$")


@bp.get("/ping")
def ping() -> dict[str, str]:
    view_log.warning("pinged by %s", "test")
    return {"correlation_id": g.correlation_id}


@bp.get("/me")
@token_required
def me() -> dict[str, str]:
    view_log.info("looking at myself")
    return {}


@bp.get("/boom")
def boom() -> dict[str, str]:
    raise KeyError("nope")


def kit_handler() -> logging.Handler:
    handlers = [h for h in logging.getLogger().handlers if h.get_name() == "hivematrix"]
    assert len(handlers) == 1
    return handlers[0]


@pytest.fixture(autouse=True)
def _detach_kit_handler() -> Iterator[None]:
    """The handler may write to a stream this test owns; the next app installs a fresh one."""
    yield
    for handler in list(logging.getLogger().handlers):
        if handler.get_name() == "hivematrix":
            logging.getLogger().removeHandler(handler)


class Captured:
    """The kit's log handler, pointed at a buffer so its formatted lines can be read."""

    def __init__(self) -> None:
        self.buffer = io.StringIO()
        handler = kit_handler()
        assert isinstance(handler, logging.StreamHandler)
        handler.setStream(self.buffer)

    def lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.buffer.getvalue().splitlines()]

    def requests(self) -> list[dict[str, Any]]:
        return [line for line in self.lines() if line.get("logger") == "hivematrix.request"]

    def from_views(self) -> list[dict[str, Any]]:
        return [line for line in self.lines() if line.get("logger") == view_log.name]


@pytest.fixture
def app(build_app) -> APIFlask:
    return build_app(bp)


@pytest.fixture
def logs(app: APIFlask) -> Captured:
    return Captured()


def test_log_lines_are_json_on_stderr(build_app, capsys: pytest.CaptureFixture[str]) -> None:
    app = build_app(bp)
    app.test_client().get("/ping", headers={"X-Correlation-ID": "abc-123"})
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    request_line = next(line for line in lines if line["message"] == "request")
    assert request_line["service"] == "svc"
    assert request_line["correlation_id"] == "abc-123"
    assert request_line["level"] == "INFO"


def test_request_line_describes_the_request(app: APIFlask, logs: Captured) -> None:
    app.test_client().get("/ping?x=1", headers={"X-Correlation-ID": "abc-123"})
    [line] = logs.requests()
    assert line["message"] == "request"
    assert line["level"] == "INFO"
    assert line["service"] == "svc"
    assert line["correlation_id"] == "abc-123"
    assert (line["method"], line["path"], line["status"]) == ("GET", "/ping", 200)
    assert line["duration_ms"] >= 0
    assert line["user"] is None
    assert "timestamp" in line


def test_view_log_lines_carry_the_correlation_id(app: APIFlask, logs: Captured) -> None:
    app.test_client().get("/ping", headers={"X-Correlation-ID": "abc-123"})
    [line] = logs.from_views()
    assert line["message"] == "pinged by test"
    assert line["level"] == "WARNING"
    assert line["correlation_id"] == "abc-123"
    assert line["service"] == "svc"


def test_log_lines_name_the_signed_in_user(app: APIFlask, logs: Captured,
                                           tokens: TokenFactory) -> None:
    app.test_client().get("/me", headers=tokens.headers(tokens.user("billing")))
    assert logs.from_views()[0]["user"] == "user-billing-user"
    assert logs.requests()[0]["user"] == "user-billing-user"


def test_log_lines_outside_requests_have_no_correlation_id(logs: Captured) -> None:
    view_log.warning("starting up")
    [line] = logs.from_views()
    assert line["service"] == "svc"
    assert line["correlation_id"] is None


def test_correlation_id_is_echoed(app: APIFlask) -> None:
    response = app.test_client().get("/ping", headers={"X-Correlation-ID": "abc-123"})
    assert response.headers["X-Correlation-ID"] == "abc-123"


def test_correlation_id_is_minted_when_absent(app: APIFlask, logs: Captured) -> None:
    response = app.test_client().get("/ping")
    minted = response.headers["X-Correlation-ID"]
    assert MINTED.match(minted)
    assert response.json["correlation_id"] == minted
    assert logs.requests()[0]["correlation_id"] == minted


def test_each_request_gets_its_own_minted_id(app: APIFlask) -> None:
    client = app.test_client()
    first = client.get("/ping").headers["X-Correlation-ID"]
    assert client.get("/ping").headers["X-Correlation-ID"] != first


@pytest.mark.parametrize("incoming", [
    "abc\ndef", "abc\r\nX-Injected: 1", "a" * 200, "a" * 129, "has space", "<script>",
    "ümlaut", "{}",
], ids=["newline", "header-injection", "200-chars", "129-chars", "space", "markup", "non-ascii",
        "braces"])
def test_invalid_correlation_ids_are_replaced(app: APIFlask, logs: Captured,
                                              incoming: str) -> None:
    # Set in the WSGI environ directly: werkzeug's test client refuses newlines in headers.
    response = app.test_client().get("/ping",
                                     environ_base={"HTTP_X_CORRELATION_ID": incoming})
    replaced = response.headers["X-Correlation-ID"]
    assert MINTED.match(replaced)
    assert logs.requests()[0]["correlation_id"] == replaced


@pytest.mark.parametrize("incoming", ["abc-123", "a" * 128, "req_1.2:3", "ABC"])
def test_safe_correlation_ids_are_kept(app: APIFlask, incoming: str) -> None:
    response = app.test_client().get("/ping", headers={"X-Correlation-ID": incoming})
    assert response.headers["X-Correlation-ID"] == incoming


@pytest.mark.parametrize("path", ["/health", "/metrics"])
def test_probes_and_scrapes_are_not_logged(app: APIFlask, logs: Captured, path: str) -> None:
    assert app.test_client().get(path).status_code == 200
    assert logs.requests() == []


def test_unrouted_requests_are_logged(app: APIFlask, logs: Captured) -> None:
    app.test_client().get("/nowhere")
    [line] = logs.requests()
    assert (line["path"], line["status"]) == ("/nowhere", 404)


def test_unhandled_exception_is_logged_once_with_traceback(build_app) -> None:
    app = build_app(bp, TESTING=False)
    logs = Captured()
    app.test_client().get("/boom", headers={"X-Correlation-ID": "boom-1"})
    [error] = [line for line in logs.lines() if line["level"] == "ERROR"]
    assert error["correlation_id"] == "boom-1"
    assert error["service"] == "svc"
    assert "/boom" in error["message"]
    assert "KeyError" in error["exc_info"] and "Traceback" in error["exc_info"]


def test_log_level_setting_filters_lines(build_app) -> None:
    app = build_app(bp, LOG_LEVEL="warning")
    logs = Captured()
    app.test_client().get("/ping")
    assert logs.requests() == []
    assert len(logs.from_views()) == 1


def test_plain_text_logs_for_humans(build_app) -> None:
    app = build_app(bp, LOG_JSON=False)
    buffer = io.StringIO()
    handler = kit_handler()
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(buffer)
    app.test_client().get("/ping", headers={"X-Correlation-ID": "abc-123"})
    text = buffer.getvalue()
    assert "WARNING [svc abc-123] hivematrix.tests.view: pinged by test" in text
    assert not text.startswith("{")


def test_configure_logging_twice_keeps_one_handler() -> None:
    configure_logging("one")
    configure_logging("two")
    handler = kit_handler()
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "m", None, None)
    assert all(f.filter(record) for f in handler.filters)
    assert record.service == "two"


def test_second_app_replaces_the_first_apps_handler(build_app) -> None:
    build_app(bp)
    build_app(bp, name="other")
    kit_handler()  # asserts there is exactly one
