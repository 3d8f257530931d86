"""JSON log lines with service, level, message, correlation id and user; correlation ids."""

import io
import json
import logging
import os
import re
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from apiflask import APIBlueprint, APIFlask
from flask import g, request

from hivematrix.common import logship
from hivematrix.common.auth import token_required
from hivematrix.common.config import SettingsError
from hivematrix.common.logging import (
    JSON_FORMATTER,
    KitJsonFormatter,
    configure_logging,
    quiet,
)
from hivematrix.common.logship import LogShipper
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


@bp.get("/polled")
@quiet
def polled() -> Any:
    if request.args.get("fail"):
        return {"error": "bad"}, 400
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


# --- pid and seq: what makes a record identifiable -----------------------------------------

def test_records_carry_the_pid_and_a_sequence_number(logs: Captured) -> None:
    view_log.warning("one")
    view_log.warning("two")
    first, second = logs.from_views()
    assert first["pid"] == second["pid"] == os.getpid()
    assert second["seq"] == first["seq"] + 1


def test_a_record_formatted_twice_keeps_its_sequence_number() -> None:
    formatter = KitJsonFormatter()
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "m %s", ("arg",), None)
    line = formatter.format(record)
    assert formatter.format(record) == line
    assert json.loads(line) == formatter.payload(record)
    assert json.loads(line)["message"] == "m arg"


# --- shipping records to Helm --------------------------------------------------------------

class Recorder:
    """A sender that records batches; fails while ``failing`` is set."""

    def __init__(self) -> None:
        self.batches: list[list[dict[str, Any]]] = []
        self.failing: Exception | None = None
        self.calls = 0

    def __call__(self, batch: list[dict[str, Any]]) -> None:
        self.calls += 1
        if self.failing is not None:
            raise self.failing
        self.batches.append(list(batch))

    @property
    def delivered(self) -> list[Any]:
        return [item["n"] for batch in self.batches for item in batch]


def wait_for(condition: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture(autouse=True)
def _no_shipping_handler() -> Iterator[None]:
    yield
    logship.detach()


def test_shipper_sends_batches_of_at_most_batch_size(recorder: Recorder) -> None:
    shipper = LogShipper(recorder, batch_size=500, autostart=False)  # the test drives it
    for n in range(1200):
        shipper.put({"n": n})
    while shipper.ship_once():
        pass
    assert [len(batch) for batch in recorder.batches] == [500, 500, 200]
    assert recorder.delivered == list(range(1200))
    assert (shipper.pending, shipper.sent, shipper.dropped) == (0, 1200, 0)


def test_shipper_thread_sends_within_the_interval(recorder: Recorder) -> None:
    shipper = LogShipper(recorder, interval=0.2)
    started = time.monotonic()
    for n in range(3):
        shipper.put({"n": n})
    wait_for(lambda: recorder.delivered == [0, 1, 2])
    assert time.monotonic() - started < 2
    assert len(recorder.batches) == 1
    shipper.close()


def test_a_full_batch_goes_at_once(recorder: Recorder) -> None:
    shipper = LogShipper(recorder, batch_size=50, interval=60)
    for n in range(50):
        shipper.put({"n": n})
    wait_for(lambda: len(recorder.delivered) == 50, timeout=3)
    shipper.close()


def test_queue_is_bounded_and_drops_the_oldest(recorder: Recorder) -> None:
    recorder.failing = ConnectionError("Helm is down")
    shipper = LogShipper(recorder, capacity=10, batch_size=4, autostart=False)
    for n in range(25):
        shipper.put({"n": n})
        if n == 12:
            assert not shipper.ship_once()
    assert (shipper.pending, shipper.dropped) == (10, 15)
    recorder.failing = None
    while shipper.ship_once():
        pass
    assert recorder.delivered == list(range(15, 25))


def test_outage_is_buffered_and_delivered_when_helm_returns(recorder: Recorder) -> None:
    recorder.failing = ConnectionError("Helm is down")
    shipper = LogShipper(recorder, interval=0.05, first_backoff=0.05, max_backoff=0.2)
    for n in range(5):
        shipper.put({"n": n})
    wait_for(lambda: shipper.failures >= 3)
    assert shipper.pending == 5 and recorder.batches == []
    assert shipper.backoff() <= 0.2
    for n in range(5, 8):
        shipper.put({"n": n})
    recorder.failing = None
    # The shipper counts a send as done once it has returned: wait for that, not only for
    # the records to arrive.
    wait_for(lambda: recorder.delivered == list(range(8))
             and shipper.failures == 0 and shipper.pending == 0)
    shipper.close()


def test_a_refused_batch_is_dropped_not_retried(recorder: Recorder) -> None:
    recorder.failing = logship.BatchRejected("422")
    shipper = LogShipper(recorder, autostart=False)
    shipper.put({"n": 1})
    assert shipper.ship_once()
    assert (shipper.pending, shipper.rejected, recorder.calls) == (0, 1, 1)


def test_putting_never_blocks_while_helm_hangs() -> None:
    release = threading.Event()
    shipper = LogShipper(lambda batch: release.wait(10), capacity=100, interval=0.01)
    shipper.put({"n": 0})
    time.sleep(0.1)  # the thread is now stuck in send
    started = time.monotonic()
    for n in range(1000):
        shipper.put({"n": n})
    assert time.monotonic() - started < 0.5
    assert shipper.pending == 100
    release.set()
    shipper.close()


def test_the_shipper_never_ships_its_own_lines() -> None:
    sent: list[dict[str, Any]] = []

    def noisy_send(batch: list[dict[str, Any]]) -> None:
        # What a failing HTTP client logs from the shipper thread.
        logging.getLogger("httpx").warning("HTTP Request: POST ... 503")
        logging.getLogger("hivematrix.logship").warning("retrying")
        sent.extend(batch)

    shipper = LogShipper(noisy_send, interval=0.05)
    handler = logship.ShippingHandler(shipper, "svc")
    logging.getLogger().addHandler(handler)
    logging.getLogger().setLevel("INFO")
    try:
        view_log.warning("real work")
        logging.getLogger("hivematrix.logship").warning("from another thread, still its own")
        wait_for(lambda: len(sent) == 1)
        time.sleep(0.3)
    finally:
        logging.getLogger().removeHandler(handler)
        shipper.close()
    assert [item["message"] for item in sent] == ["real work"]
    assert sent[0]["service"] == "svc" and "seq" in sent[0]


def test_shipped_payload_is_the_logged_line(build_app, hm_home) -> None:
    (hm_home / "services.json").write_text(json.dumps(
        {"helm": {"url": "http://127.0.0.1:9", "port": 9}}))
    app = build_app(bp)
    shipper = app.extensions["hivematrix.logship"]
    batches: list[list[dict[str, Any]]] = []
    shipper.send = batches.append
    logs = Captured()
    app.test_client().get("/ping", headers={"X-Correlation-ID": "ship-1"})
    wait_for(lambda: sum(len(batch) for batch in batches) >= 2)
    shipped = [json.loads(JSON_FORMATTER.serialize(item)) for batch in batches for item in batch]
    assert shipped == logs.lines()
    assert {line["correlation_id"] for line in shipped} == {"ship-1"}


@pytest.mark.parametrize(("setting", "services", "name", "expected"), [
    ("auto", None, "svc", False),
    ("auto", {"core": {}}, "svc", False),
    ("auto", {"helm": {}}, "svc", True),
    ("auto", {"helm": {}}, "helm", False),
    ("true", None, "svc", True),
    ("true", None, "helm", False),
    ("off", {"helm": {}}, "svc", False),
    (False, {"helm": {}}, "svc", False),
])
def test_shipping_setting(tmp_path, setting: Any, services: Any, name: str,
                          expected: bool) -> None:
    services_file = tmp_path / "services.json"
    if services is not None:
        services_file.write_text(json.dumps(services))
    config = {"SERVICE_NAME": name, "LOG_SHIPPING": setting, "SERVICES_FILE": str(services_file)}
    assert logship.shipping_enabled(config) is expected


def test_a_bad_shipping_setting_is_named(build_app) -> None:
    with pytest.raises(SettingsError, match="LOG_SHIPPING"):
        build_app(bp, LOG_SHIPPING="sometimes")


def test_a_new_app_replaces_the_shipping_handler(build_app, hm_home) -> None:
    (hm_home / "services.json").write_text(json.dumps({"helm": {"url": "http://x", "port": 1}}))
    build_app(bp)
    build_app(bp, name="other")
    shipping = [h for h in logging.getLogger().handlers if h.get_name() == logship.HANDLER_NAME]
    assert len(shipping) == 1
    build_app(bp, name="third", LOG_SHIPPING="false")
    assert not [h for h in logging.getLogger().handlers
                if h.get_name() == logship.HANDLER_NAME]


def test_quiet_views_are_logged_only_when_they_fail(app: APIFlask, logs: Captured) -> None:
    client = app.test_client()
    client.get("/polled")
    assert logs.requests() == []
    client.get("/polled?fail=1")
    assert [(line["path"], line["status"]) for line in logs.requests()] == [("/polled", 400)]


def test_http_chatter_of_the_shipper_thread_stays_off_stderr(build_app, hm_home) -> None:
    (hm_home / "services.json").write_text(json.dumps({"helm": {"url": "http://x", "port": 1}}))
    app = build_app(bp)
    shipper = app.extensions["hivematrix.logship"]
    done = threading.Event()

    def send(batch: list[dict[str, Any]]) -> None:
        logging.getLogger("httpx").info("HTTP Request: POST /api/logs/ingest")
        logging.getLogger("httpx").warning("a warning still shows")
        done.set()

    shipper.send = send
    logs = Captured()
    logging.getLogger("httpx").info("a request line from a request thread stays")
    wait_for(done.is_set)
    time.sleep(0.1)
    assert [line["message"] for line in logs.lines() if line["logger"] == "httpx"] == [
        "a request line from a request thread stays", "a warning still shows"]
