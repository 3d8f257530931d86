"""Calling another service: ``call_service("codex", "/api/companies")``.

The caller authenticates to Core with its own secret (``SERVICE_SECRET``) and receives a
five-minute token addressed to the target; tokens are cached until shortly before they expire.
Every call carries a timeout and the current request's correlation id.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

import httpx
import jwt
from flask import current_app

from hivematrix.common.logging import CORRELATION_HEADER, current_correlation_id
from hivematrix.common.registry import read_services

#: Refresh a cached token this many seconds before it expires.
REFRESH_MARGIN = 30


class ServiceCallError(RuntimeError):
    """A service call could not be made."""


class UnknownServiceError(ServiceCallError):
    """The target is not in ``services.json``."""


class ServiceUnavailableError(ServiceCallError):
    """The target (or Core, for the token) did not answer."""


class ServiceAuthError(ServiceCallError):
    """Core refused to issue a service token (wrong or missing secret)."""


class ServiceClient:
    """Service-to-service HTTP with cached service tokens."""

    def __init__(self, *, service_name: str, secret: str | None, core_url: str,
                 services_file: str, timeout: float = 10.0,
                 http: httpx.Client | None = None) -> None:
        self.service_name = service_name
        self.secret = secret
        self.core_url = core_url.rstrip("/")
        self.services_file = services_file
        self.http = http or httpx.Client(timeout=httpx.Timeout(timeout, connect=3.0))
        self._tokens: dict[str, tuple[str, float]] = {}
        self._lock = threading.Lock()

    def base_url(self, target: str) -> str:
        """The target's base URL from ``services.json`` (re-read, so changes apply at once)."""
        entry = read_services(self.services_file).get(target)
        if not entry or not entry.get("url"):
            raise UnknownServiceError(f"service {target!r} is not in {self.services_file}")
        return str(entry["url"]).rstrip("/")

    def token_for(self, target: str) -> str:
        """A service token addressed to ``target``, from the cache or from Core.

        :raises ServiceAuthError: Core refused (no or wrong ``SERVICE_SECRET``).
        :raises ServiceUnavailableError: Core did not answer.
        """
        with self._lock:
            cached = self._tokens.get(target)
            if cached and cached[1] - REFRESH_MARGIN > time.time():
                return cached[0]
            token = self._request_token(target)
            claims = jwt.decode(token, options={"verify_signature": False})
            self._tokens[target] = (token, float(claims.get("exp", 0)))
            return token

    def forget_token(self, target: str) -> None:
        """Drop the cached token for ``target`` (it was refused); the next call gets a new one."""
        with self._lock:
            self._tokens.pop(target, None)

    def _request_token(self, target: str) -> str:
        if not self.secret:
            raise ServiceAuthError(f"{self.service_name} has no SERVICE_SECRET configured")
        try:
            response = self.http.post(
                f"{self.core_url}/service-token",
                json={"calling_service": self.service_name, "target_service": target},
                auth=(self.service_name, self.secret),
                headers=self._correlation_headers(),
            )
        except httpx.HTTPError as exc:
            raise ServiceUnavailableError(f"Core at {self.core_url} is unreachable: {exc}") from exc
        if response.status_code in (401, 403):
            raise ServiceAuthError(f"Core refused a token for {self.service_name} -> {target}")
        if response.status_code != 200:
            raise ServiceUnavailableError(
                f"Core answered {response.status_code} to a service-token request")
        return str(response.json()["token"])

    @staticmethod
    def _correlation_headers() -> dict[str, str]:
        correlation_id = current_correlation_id()
        return {CORRELATION_HEADER: correlation_id} if correlation_id else {}

    @contextmanager
    def stream(self, target: str, path: str, method: str = "GET",
               **kwargs: Any) -> Iterator[httpx.Response]:
        """:meth:`call`, with the body read as it arrives (``response.iter_lines()``...) inside
        the ``with`` block; errors while reading raise :class:`ServiceUnavailableError` too."""
        url = f"{self.base_url(target)}/{path.lstrip('/')}"
        headers = {**self._correlation_headers(), **kwargs.pop("headers", {})}
        headers["Authorization"] = f"Bearer {self.token_for(target)}"
        try:
            with self.http.stream(method, url, headers=headers, **kwargs) as response:
                yield response
        except httpx.HTTPError as exc:
            raise ServiceUnavailableError(f"service {target!r} at {url} failed: {exc}") from exc

    def call_as(self, bearer: str, target: str, path: str, method: str = "GET",
                **kwargs: Any) -> httpx.Response:
        """:meth:`call` with someone else's token: a user's, when a service acts on their
        behalf (Brainhair's tools), so the target applies that user's permission level."""
        url = f"{self.base_url(target)}/{path.lstrip('/')}"
        headers = {**self._correlation_headers(), **kwargs.pop("headers", {})}
        headers["Authorization"] = f"Bearer {bearer}"
        try:
            return self.http.request(method, url, headers=headers, **kwargs)
        except httpx.HTTPError as exc:
            raise ServiceUnavailableError(f"service {target!r} at {url} failed: {exc}") from exc

    def call(self, target: str, path: str, method: str = "GET", **kwargs: Any) -> httpx.Response:
        """Make an authenticated request; returns the response whatever its status.

        :raises UnknownServiceError: the target is not registered.
        :raises ServiceUnavailableError: the target (or Core) is down or timed out.
        :raises ServiceAuthError: no service token could be obtained.
        """
        url = f"{self.base_url(target)}/{path.lstrip('/')}"
        headers = {**self._correlation_headers(), **kwargs.pop("headers", {})}
        headers["Authorization"] = f"Bearer {self.token_for(target)}"
        try:
            return self.http.request(method, url, headers=headers, **kwargs)
        except httpx.HTTPError as exc:
            raise ServiceUnavailableError(f"service {target!r} at {url} failed: {exc}") from exc


def stream_service(target: str, path: str, method: str = "GET",
                   **kwargs: Any) -> AbstractContextManager[httpx.Response]:
    """:func:`call_service` with a streamed body (see :meth:`ServiceClient.stream`)."""
    client: ServiceClient = current_app.extensions["hivematrix.service_client"]
    return client.stream(target, path, method, **kwargs)


def init_app(app: Any) -> ServiceClient:
    """Create the app's service client from its settings."""
    client = ServiceClient(
        service_name=app.config["SERVICE_NAME"], secret=app.config.get("SERVICE_SECRET"),
        core_url=app.config["CORE_SERVICE_URL"], services_file=app.config["SERVICES_FILE"],
        timeout=app.config["HTTP_TIMEOUT"])
    app.extensions["hivematrix.service_client"] = client
    return client


def call_service(target: str, path: str, method: str = "GET", **kwargs: Any) -> httpx.Response:
    """Call ``target``'s API from inside a request or app context (see :class:`ServiceClient`)."""
    client: ServiceClient = current_app.extensions["hivematrix.service_client"]
    return client.call(target, path, method, **kwargs)
