"""Shipping a service's log records to Helm's ``POST /api/logs/ingest``.

:class:`ShippingHandler` sits on the root logger next to the stderr handler and puts each
record's payload — the very dict the JSON log line is made of, ``pid`` and ``seq`` included —
into a bounded in-memory queue. :class:`LogShipper` drains the queue from one daemon thread:
batches of up to ``batch_size`` records, sent at least every ``interval`` seconds while
records wait, with a service token from the kit's :class:`ServiceClient`. A failed send is
retried with growing pauses; the records stay queued meanwhile, and when the queue is full
the oldest are dropped (and counted), so a Helm outage costs memory up to the bound and never
blocks a request.

The shipper never ships what it logs itself (nor what libraries log from its thread, such as
httpx's request lines), so a failing Helm cannot feed a loop. Those lines still reach stderr,
and from there the log file Helm reads.
"""

from __future__ import annotations

import atexit
import itertools
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from flask import Flask

from hivematrix.common.config import SettingsError
from hivematrix.common.logging import JSON_FORMATTER, RequestContextFilter, record_payload
from hivematrix.common.registry import read_services
from hivematrix.common.service_client import ServiceClient

HANDLER_NAME = "hivematrix-ship"
THREAD_NAME = "hivematrix-logship"
INGEST_PATH = "/api/logs/ingest"
#: The service that receives logs.
TARGET = "helm"

log = logging.getLogger("hivematrix.logship")

Payload = dict[str, Any]
Sender = Callable[[list[Payload]], None]


class SendFailed(Exception):
    """The batch could not be delivered now; it stays queued and is tried again."""


class BatchRejected(Exception):
    """Helm refused the batch for good (a 4xx other than 401, 408 and 429); it is dropped."""


class LogShipper:
    """A bounded queue of log payloads and the thread that sends them in batches.

    :param send: delivers one batch or raises (:class:`BatchRejected` drops the batch; any
        other exception keeps it queued for a retry).
    :param capacity: records held at most; beyond it the oldest are dropped.
    :param batch_size: records per send at most.
    :param interval: seconds a queued record waits at most before a send is tried.
    :param first_backoff: pause after the first failed send; it doubles per failure...
    :param max_backoff: ...up to this many seconds.
    :param autostart: start the thread with the first record (off: the caller drives
        :meth:`ship_once`, as tests do).
    """

    def __init__(self, send: Sender, *, capacity: int = 10_000, batch_size: int = 500,
                 interval: float = 1.0, first_backoff: float = 1.0,
                 max_backoff: float = 30.0, autostart: bool = True) -> None:
        if capacity < 1 or batch_size < 1:
            raise ValueError("capacity and batch_size must be positive")
        self.send = send
        self.capacity = capacity
        self.batch_size = batch_size
        self.interval = interval
        self.first_backoff = first_backoff
        self.max_backoff = max_backoff
        self.autostart = autostart
        #: Records dropped because the queue was full; delivered; refused by Helm.
        self.dropped = 0
        self.sent = 0
        self.rejected = 0
        #: Failed sends in a row (0 while Helm answers).
        self.failures = 0
        self._numbers = itertools.count()
        self._queue: deque[tuple[int, Payload]] = deque()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()
        self._warned_at = float("-inf")
        self._dropped_reported = 0

    # --- the producer side (request threads) -----------------------------------------------

    def put(self, payload: Payload) -> None:
        """Queue one record; never blocks and never raises for a full queue."""
        if os.getpid() != self._pid:
            self._after_fork()
        with self._lock:
            if len(self._queue) >= self.capacity:
                self._queue.popleft()
                self.dropped += 1
            self._queue.append((next(self._numbers), payload))
            full = len(self._queue) >= self.batch_size
        if full:
            self._wake.set()
        if self._thread is None and self.autostart and not self._stopping.is_set():
            self.start()

    def _after_fork(self) -> None:
        # The parent ships what it queued; a forked child starts empty, with its own thread.
        self._pid = os.getpid()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._queue = deque()
        self._thread = None

    @property
    def pending(self) -> int:
        return len(self._queue)

    @property
    def thread_ident(self) -> int | None:
        thread = self._thread
        return thread.ident if thread is not None else None

    # --- the consumer side (the shipper thread) --------------------------------------------

    def ship_once(self) -> bool:
        """Send the oldest batch; True when it left the queue (delivered or refused)."""
        with self._lock:
            batch = list(itertools.islice(self._queue, self.batch_size))
        if not batch:
            return False
        last = batch[-1][0]
        try:
            self.send([payload for _number, payload in batch])
        except BatchRejected as exc:
            self._remove_through(last)
            self.rejected += len(batch)
            self.failures = 0
            log.warning("Helm refused %d log records: %s", len(batch), exc)
            return True
        except Exception as exc:  # anything: the thread must survive every failure
            self.failures += 1
            self._warn_throttled("log shipping to Helm failed (%d in a row, %d queued): %s",
                                 self.failures, self.pending, exc)
            return False
        self._remove_through(last)
        self.sent += len(batch)
        if self.failures:
            log.info("log shipping to Helm resumed after %d failed attempts", self.failures)
            self.failures = 0
        return True

    def _remove_through(self, number: int) -> None:
        # Records may have been dropped from the front meanwhile; remove by number, not count.
        with self._lock:
            while self._queue and self._queue[0][0] <= number:
                self._queue.popleft()

    def _warn_throttled(self, message: str, *args: Any) -> None:
        now = time.monotonic()
        if now - self._warned_at >= 60:
            self._warned_at = now
            log.warning(message, *args)

    def backoff(self) -> float:
        """Seconds to wait after the current run of failures."""
        if not self.failures:
            return 0.0
        return float(min(self.max_backoff, self.first_backoff * 2 ** (self.failures - 1)))

    def _run(self) -> None:
        while not self._stopping.is_set():
            if self.failures:
                if self._stopping.wait(self.backoff()):
                    break
            elif self.pending < self.batch_size:
                self._wake.wait(self.interval)
                self._wake.clear()
            if self._stopping.is_set():
                break
            self.ship_once()
            if self.dropped != self._dropped_reported:
                self._warn_throttled("log queue full: %d records dropped so far", self.dropped)
                self._dropped_reported = self.dropped

    def start(self) -> None:
        """Start the shipper thread (``put`` does so on first use)."""
        with self._lock:
            if self._thread is not None:
                return
            self._thread = threading.Thread(target=self._run, name=THREAD_NAME, daemon=True)
        self._thread.start()

    def flush(self, timeout: float = 5.0) -> bool:
        """Send what is queued now, from the calling thread; True when the queue emptied."""
        deadline = time.monotonic() + timeout
        while self.pending and time.monotonic() < deadline:
            if not self.ship_once():
                return False
        return not self.pending

    def close(self, flush_timeout: float = 0.0, join_timeout: float = 5.0) -> None:
        """Stop the thread; then, with ``flush_timeout``, try to deliver what is left."""
        self._stopping.set()
        self._wake.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(join_timeout)
        if flush_timeout > 0 and self.pending:
            self.flush(flush_timeout)


class ShippingHandler(logging.Handler):
    """Puts every record's JSON payload into a :class:`LogShipper`."""

    def __init__(self, shipper: LogShipper, service: str) -> None:
        super().__init__()
        self.shipper = shipper
        self.set_name(HANDLER_NAME)
        # The same context the stderr handler adds, whichever handler sees the record first.
        self.addFilter(RequestContextFilter(service))

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.startswith(log.name) or threading.get_ident() == self.shipper.thread_ident:
            return  # the shipper's own lines (and its HTTP client's) would feed a loop
        try:
            self.shipper.put(record_payload(record))
        except Exception:  # logging must never break the code that logs
            self.handleError(record)


class ShipperChatterFilter(logging.Filter):
    """Keeps the HTTP client's routine lines about the shipper's own requests off stderr.

    Otherwise every batch sent would write a line to the service's log file, which Helm
    reads back: one stored entry per second per service, about log shipping itself.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.levelno < logging.WARNING
                    and record.name.startswith(("httpx", "httpcore"))
                    and threading.current_thread().name == THREAD_NAME)


def helm_sender(client: ServiceClient, target: str = TARGET) -> Sender:
    """Deliver a batch to ``target``'s ingest endpoint with a cached service token."""

    def send(batch: list[Payload]) -> None:
        body = JSON_FORMATTER.serialize({"logs": batch}).encode("utf-8")
        response = client.call(target, INGEST_PATH, "POST", content=body,
                               headers={"Content-Type": "application/json"})
        status = response.status_code
        if status == 401:
            client.forget_token(target)  # expired or rotated away: fetch a fresh one
            raise SendFailed("Helm refused the service token")
        if status in (408, 429) or status >= 500:
            raise SendFailed(f"Helm answered {status}")
        if status >= 400:
            raise BatchRejected(f"Helm answered {status}: {response.text[:300]}")

    return send


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def shipping_enabled(config: dict[str, Any] | Any) -> bool:
    """``LOG_SHIPPING``: ``auto`` (default) ships when Helm is in ``services.json``.

    Helm never ships to itself.
    """
    if config["SERVICE_NAME"] == TARGET:
        return False
    raw = config.get("LOG_SHIPPING", "auto")
    setting = str(raw).strip().lower() if not isinstance(raw, bool) else str(raw).lower()
    if setting in _TRUE:
        return True
    if setting in _FALSE:
        return False
    if setting == "auto":
        return TARGET in read_services(config["SERVICES_FILE"])
    raise SettingsError(f"setting LOG_SHIPPING: {raw!r} is not auto, true or false")


def detach() -> None:
    """Remove (and stop) the shipping handler installed by :func:`init_app`, if any."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if handler.get_name() == HANDLER_NAME:
            root.removeHandler(handler)
            if isinstance(handler, ShippingHandler):
                handler.shipper.close()


def _flush_at_exit() -> None:
    for handler in logging.getLogger().handlers:
        if isinstance(handler, ShippingHandler) and handler.shipper.pending:
            handler.shipper.close(flush_timeout=2.0, join_timeout=1.0)


def init_app(app: Flask) -> LogShipper | None:
    """Ship the app's logs to Helm when ``LOG_SHIPPING`` says so; returns the shipper.

    Idempotent per process: a new app replaces the shipper of the previous one.
    """
    detach()
    if not shipping_enabled(app.config):
        return None
    client: ServiceClient = app.extensions["hivematrix.service_client"]
    shipper = LogShipper(helm_sender(client), capacity=app.config["LOG_SHIPPING_QUEUE_SIZE"],
                         batch_size=app.config["LOG_SHIPPING_BATCH_SIZE"],
                         interval=app.config["LOG_SHIPPING_INTERVAL_SECONDS"])
    root = logging.getLogger()
    for handler in root.handlers:
        if handler.get_name() == "hivematrix" and not any(
                isinstance(existing, ShipperChatterFilter) for existing in handler.filters):
            handler.addFilter(ShipperChatterFilter())
    root.addHandler(ShippingHandler(shipper, app.config["SERVICE_NAME"]))
    app.extensions["hivematrix.logship"] = shipper
    return shipper


atexit.register(_flush_at_exit)
