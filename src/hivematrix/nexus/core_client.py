"""Talking to Core: token exchange and revocation, and knowing quickly whether a session lives.

Every proxied request needs "is this session still valid?". Asking Core each time would put
it on the hot path of every page, asset and XHR (upstream's mistake), so answers are cached
for a short time, and when Core publishes revocations on Redis a listener marks revoked
sessions at once. Without Redis the cache lifetime bounds how late a revocation is noticed.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import redis

log = logging.getLogger("hivematrix.nexus.core")


class CoreUnavailable(RuntimeError):
    """Core could not be asked; Nexus answers 503 rather than guessing."""


class ExchangeRefused(ValueError):
    """Core would not mint a token for this access token."""


class CoreClient:
    def __init__(self, url: str, *, timeout: float = 5.0,
                 http: httpx.Client | None = None) -> None:
        self.url = url.rstrip("/")
        self.http = http or httpx.Client(timeout=timeout)

    def _post(self, path: str, body: dict[str, str],
              headers: dict[str, str] | None = None) -> httpx.Response:
        try:
            response = self.http.post(f"{self.url}{path}", json=body, headers=headers)
        except httpx.HTTPError as exc:
            raise CoreUnavailable(f"core {path}: {exc}") from exc
        if response.status_code >= 500:
            raise CoreUnavailable(f"core {path} answered {response.status_code}")
        return response

    def exchange(self, access_token: str, client_ip: str | None = None) -> str:
        """A HiveMatrix JWT for the identity provider's access token.

        :raises ExchangeRefused: Core (or the provider behind it) rejected the access token.
        :raises CoreUnavailable: Core could not be asked.
        """
        headers = {"X-Forwarded-For": client_ip} if client_ip else None
        response = self._post("/api/token/exchange", {"access_token": access_token}, headers)
        if response.status_code != 200:
            raise ExchangeRefused(f"core refused the exchange ({response.status_code})")
        return str(response.json()["token"])

    def is_valid(self, token: str) -> bool:
        """Core's verdict on a token (signature, expiry, session not revoked)."""
        response = self._post("/api/token/validate", {"token": token})
        return response.status_code == 200 and bool(response.json().get("valid"))

    def revoke(self, token: str) -> None:
        """End the token's Core session; failures are logged, not raised (logout goes on)."""
        try:
            self._post("/api/token/revoke", {"token": token})
        except CoreUnavailable as exc:
            log.warning(f"could not revoke a session at logout: {exc}")


class SessionChecker:
    """Cached answers to "is session ``jti`` still valid?"."""

    #: Entries kept at most; older ones are dropped first.
    MAX_ENTRIES = 50_000

    def __init__(self, core: CoreClient, *, ttl: float) -> None:
        self.core = core
        self.ttl = ttl
        self._verdicts: dict[str, tuple[bool, float]] = {}
        self._inflight: dict[str, threading.Lock] = {}
        self._lock = threading.Lock()
        self.listener: RevocationListener | None = None

    def is_active(self, jti: str, token: str) -> bool:
        """:raises CoreUnavailable: no fresh answer is cached and Core cannot be asked."""
        now = time.monotonic()
        with self._lock:
            cached = self._verdicts.get(jti)
        ttl = self.ttl
        if self.listener is not None and not self.listener.connected:
            ttl = min(ttl, 1.0)  # notices may be missed while the listener is cut off
        if cached is not None and (not cached[0] or now - cached[1] < ttl):
            return cached[0]
        with self._asking(jti) as first:
            if not first:  # another thread just asked Core about this session
                with self._lock:
                    cached = self._verdicts.get(jti)
                if cached is not None and time.monotonic() - cached[1] < ttl:
                    return cached[0]
            return self._ask(jti, token)

    @contextlib.contextmanager
    def _asking(self, jti: str) -> Iterator[bool]:
        """One question per session at a time: the page's other requests wait for its answer."""
        with self._lock:
            lock = self._inflight.setdefault(jti, threading.Lock())
        first = lock.acquire(blocking=False)
        if not first:
            lock.acquire()
        try:
            yield first
        finally:
            lock.release()
            with self._lock:
                if self._inflight.get(jti) is lock and not lock.locked():
                    del self._inflight[jti]

    def _ask(self, jti: str, token: str) -> bool:
        now = time.monotonic()
        active = self.core.is_valid(token)
        with self._lock:
            if len(self._verdicts) >= self.MAX_ENTRIES:
                for key in list(self._verdicts)[: self.MAX_ENTRIES // 10]:
                    del self._verdicts[key]
            self._verdicts[jti] = (active, now)
        return active

    def mark_revoked(self, jti: str) -> None:
        with self._lock:
            self._verdicts[jti] = (False, time.monotonic())


class RevocationListener:
    """Subscribes to Core's revocation channel and tells the checker at once."""

    def __init__(self, checker: SessionChecker, redis_url: str, channel: str) -> None:
        self.checker = checker
        self.client = redis.Redis.from_url(redis_url, socket_connect_timeout=2,
                                           health_check_interval=10)
        self.channel = channel
        self.connected = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="nexus-revocations", daemon=True)
        checker.listener = self

    def start(self) -> RevocationListener:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            pubsub: Any = None
            try:
                pubsub = self.client.pubsub(  # type: ignore[no-untyped-call]
                    ignore_subscribe_messages=True)
                pubsub.subscribe(self.channel)
                self.connected = True
                while not self._stop.is_set():
                    message = pubsub.get_message(timeout=1.0)
                    if message and message.get("type") == "message":
                        data = message["data"]
                        self.checker.mark_revoked(
                            data.decode() if isinstance(data, bytes) else str(data))
            except redis.RedisError as exc:
                if self.connected:
                    log.warning(f"revocation listener lost Redis: {exc}")
                self.connected = False
                self._stop.wait(1.0)
            finally:
                if pubsub is not None:
                    with contextlib.suppress(redis.RedisError):
                        pubsub.close()
        self.connected = False
