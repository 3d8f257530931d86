"""HTTP for connectors: one httpx client per vendor with timeouts, 429 back-off and an SSRF guard.

Vendor base URLs come from an operator's config, so a typo or a hostile edit could point a
connector at an internal address (cloud metadata, a database port). :func:`check_url` refuses
private, loopback, link-local and reserved addresses unless the host is allow-listed
(``CODEX_OUTBOUND_ALLOWLIST``; the tests allow-list 127.0.0.1 for their contract fakes).
"""

from __future__ import annotations

import ipaddress
import socket
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

import httpx


class ConnectorError(Exception):
    """A vendor call failed for good (after retries); the message says which call and why."""


class BlockedAddress(ConnectorError):
    """The configured URL points at an address connectors may not reach."""


def _addresses(host: str) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except socket.gaierror as exc:
        raise ConnectorError(f"cannot resolve {host}: {exc}") from exc
    return [ipaddress.ip_address(info[4][0]) for info in infos]


def check_url(url: str, allowlist: Iterable[str] = ()) -> str:
    """Return ``url`` if a connector may call it; raise :class:`BlockedAddress` otherwise."""
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise BlockedAddress(f"{url!r} is not an http(s) URL")
    host = parts.hostname
    allowed = {entry.strip().lower() for entry in allowlist if entry.strip()}
    if host.lower() in allowed:
        return url
    for address in _addresses(host):
        if str(address) in allowed:
            continue
        if (address.is_private or address.is_loopback or address.is_link_local
                or address.is_reserved or address.is_multicast or address.is_unspecified):
            raise BlockedAddress(
                f"{host} resolves to {address}, a non-public address; add it to "
                "CODEX_OUTBOUND_ALLOWLIST if this is intended")
    if parts.scheme == "http":
        raise BlockedAddress(f"{url!r}: vendors are called over https only "
                             "(plain http is allowed for allow-listed hosts)")
    return url


class VendorHTTP:
    """Calls one vendor's API: JSON in and out, 429 and 5xx retried with back-off.

    ``Retry-After`` (seconds) is honoured when the vendor sends it; otherwise waits grow
    1, 2, 4 ... seconds up to ``max_wait``. After ``retries`` attempts the call fails with a
    :class:`ConnectorError` naming the vendor, method and path.
    """

    def __init__(self, vendor: str, base_url: str, *, auth: httpx.Auth | None = None,
                 headers: Mapping[str, str] | None = None, timeout: float = 30.0,
                 retries: int = 5, max_wait: float = 60.0, allowlist: Iterable[str] = (),
                 sleep: Callable[[float], None] = time.sleep,
                 transport: httpx.BaseTransport | None = None) -> None:
        self.vendor = vendor
        self.base_url = check_url(base_url.rstrip("/"), allowlist)
        self.retries = retries
        self.max_wait = max_wait
        self.sleep = sleep
        self.waits: list[float] = []  # the back-off waits taken, for the job log
        self.client = httpx.Client(base_url=self.base_url, auth=auth, headers=dict(headers or {}),
                                   timeout=timeout, transport=transport, follow_redirects=False)

    def close(self) -> None:
        self.client.close()

    def _wait_for(self, response: httpx.Response | None, attempt: int) -> float:
        header = response.headers.get("Retry-After") if response is not None else None
        if header is not None:
            try:
                return min(max(float(header), 0.0), self.max_wait)
            except ValueError:
                pass
        return min(float(2 ** attempt), self.max_wait)

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One call, retried on 429/5xx/connection errors; other 4xx raise at once."""
        last: str = ""
        for attempt in range(self.retries):
            response: httpx.Response | None
            try:
                response = self.client.request(method, path, **kwargs)
            except httpx.TransportError as exc:
                last = f"{type(exc).__name__}: {exc}"
                response = None
            if response is not None:
                if response.status_code < 400:
                    return response
                if response.status_code != 429 and response.status_code < 500:
                    raise ConnectorError(f"{self.vendor} {method} {path}: HTTP "
                                         f"{response.status_code} {_reason(response)}")
                last = f"HTTP {response.status_code} {_reason(response)}"
            if attempt + 1 < self.retries:
                wait = self._wait_for(response, attempt)
                self.waits.append(wait)
                self.sleep(wait)
        raise ConnectorError(f"{self.vendor} {method} {path}: gave up after {self.retries} "
                             f"attempts ({last})")

    def json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.request(method, path, **kwargs)
        if not response.content:
            return None
        try:
            return response.json()
        except ValueError as exc:
            raise ConnectorError(f"{self.vendor} {method} {path}: answer is not JSON") from exc


def _reason(response: httpx.Response) -> str:
    """A short reason from a vendor's error body, whatever its shape."""
    try:
        body = response.json()
    except ValueError:
        return response.reason_phrase
    if isinstance(body, dict):
        for key in ("message", "description", "error_description", "error"):
            if isinstance(body.get(key), str):
                return str(body[key])[:200]
    return response.reason_phrase
