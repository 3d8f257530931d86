"""A backend's answer behind the one small interface the relay reads from.

Two ways to get one: urllib3 (the app's path: any method, streamed request bodies, retries)
and :class:`Backend`, kept-alive http.client connections for the fast lane's bodiless GETs.
Per request the second costs about half of urllib3's CPU time, which at the gateway is a
large share of the whole; both stay on the standard library's HTTP/1.1 parsing.
"""

from __future__ import annotations

import http.client
import threading
import zlib
from typing import Protocol
from urllib.parse import urlsplit

import urllib3


class UpstreamBroken(Exception):
    """The backend broke off its answer."""


class UpstreamFailed(Exception):
    """No answer: ``kind`` is ``"timeout"`` or ``"unreachable"``."""

    def __init__(self, kind: str, reason: str) -> None:
        super().__init__(reason)
        self.kind = kind


class Upstream(Protocol):
    status: int

    def header_items(self) -> list[tuple[str, str]]: ...

    def header(self, name: str) -> str | None: ...

    def read_all(self) -> bytes:
        """The whole body, decoded (gzip, deflate). :raises UpstreamBroken:"""

    def read_some(self, size: int) -> bytes:
        """What has arrived (at most ``size``), as sent; ``b""`` at the end."""

    def finish(self, *, complete: bool) -> None:
        """Done: keep the connection for another request only if it can carry one."""


def failure(exc: urllib3.exceptions.HTTPError) -> UpstreamFailed:
    reason = getattr(exc, "reason", exc)
    # (urllib3 counts a refused connection as a kind of connect timeout.)
    timed_out = (isinstance(reason, urllib3.exceptions.TimeoutError)
                 and not isinstance(reason, urllib3.exceptions.NewConnectionError))
    return UpstreamFailed("timeout" if timed_out else "unreachable", str(reason))


class Urllib3Upstream:
    def __init__(self, response: urllib3.BaseHTTPResponse) -> None:
        self.response = response
        self.status = response.status

    def header_items(self) -> list[tuple[str, str]]:
        return list(self.response.headers.iteritems())

    def header(self, name: str) -> str | None:
        value: str | None = self.response.headers.get(name)
        return value

    def read_all(self) -> bytes:
        try:
            return self.response.read(decode_content=True)
        except urllib3.exceptions.HTTPError as exc:
            raise UpstreamBroken(str(exc)) from exc

    def read_some(self, size: int) -> bytes:
        try:
            return self.response.read1(size)
        except urllib3.exceptions.HTTPError as exc:
            raise UpstreamBroken(str(exc)) from exc

    def finish(self, *, complete: bool) -> None:
        # An answer abandoned half-way (the browser went away) closes its connection, so no
        # one reads the rest of someone else's answer; so does one the backend would close.
        closing = "close" in (self.response.headers.get("Connection") or "").lower()
        if complete and not closing and self.response.version >= 11:
            self.response.release_conn()
        else:
            self.response.close()


class Backend:
    """Kept-alive HTTP/1.1 connections to one backend (most recently used first)."""

    def __init__(self, url: str, *, connect_timeout: float, keep: int = 50) -> None:
        parts = urlsplit(url)
        self.https = parts.scheme == "https"
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or (443 if self.https else 80)
        self.base_path = parts.path.rstrip("/")
        self.connect_timeout = connect_timeout
        self.keep = keep
        self._idle: list[http.client.HTTPConnection] = []
        self._lock = threading.Lock()

    def get(self, target: str, headers: list[tuple[str, str]],
            read_timeout: float | None) -> HttpClientUpstream:
        """``GET base_path + target``. A kept-alive connection the backend had closed is
        replaced once by a fresh one (a GET can be sent again).

        :raises UpstreamFailed: no answer.
        """
        path = self.base_path + target
        while True:
            connection, reused = self._connection()
            try:
                if connection.sock is None:
                    connection.connect()
                    assert connection.sock is not None
                connection.sock.settimeout(read_timeout)
                connection.putrequest("GET", path, skip_accept_encoding=True)
                for name, value in headers:
                    connection.putheader(name, value)
                connection.endheaders()
                return HttpClientUpstream(self, connection, connection.getresponse())
            except TimeoutError as exc:
                connection.close()
                raise UpstreamFailed("timeout", f"{type(exc).__name__}: {exc}") from exc
            except (http.client.HTTPException, OSError) as exc:
                connection.close()
                if reused:
                    continue
                raise UpstreamFailed("unreachable", f"{type(exc).__name__}: {exc}") from exc

    def _connection(self) -> tuple[http.client.HTTPConnection, bool]:
        with self._lock:
            if self._idle:
                return self._idle.pop(), True
        kind = http.client.HTTPSConnection if self.https else http.client.HTTPConnection
        return kind(self.host, self.port, timeout=self.connect_timeout), False

    def put(self, connection: http.client.HTTPConnection) -> None:
        with self._lock:
            if len(self._idle) < self.keep:
                self._idle.append(connection)
                return
        connection.close()


class HttpClientUpstream:
    def __init__(self, backend: Backend, connection: http.client.HTTPConnection,
                 response: http.client.HTTPResponse) -> None:
        self.backend, self.connection, self.response = backend, connection, response
        self.status = response.status

    def header_items(self) -> list[tuple[str, str]]:
        return self.response.getheaders()

    def header(self, name: str) -> str | None:
        return self.response.getheader(name)

    def read_all(self) -> bytes:
        try:
            body = self.response.read()
        except (http.client.HTTPException, OSError) as exc:
            raise UpstreamBroken(f"{type(exc).__name__}: {exc}") from exc
        encoding = (self.header("Content-Encoding") or "identity").strip().lower()
        try:
            if encoding == "gzip":
                return zlib.decompress(body, 16 + zlib.MAX_WBITS)
            if encoding == "deflate":
                return zlib.decompress(body)
        except zlib.error as exc:
            raise UpstreamBroken(f"undecodable {encoding} body: {exc}") from exc
        if encoding != "identity":
            raise UpstreamBroken(f"cannot decode {encoding}")
        return body

    def read_some(self, size: int) -> bytes:
        try:
            return self.response.read1(size)
        except (http.client.HTTPException, OSError) as exc:
            raise UpstreamBroken(f"{type(exc).__name__}: {exc}") from exc

    def finish(self, *, complete: bool) -> None:
        if complete and not self.response.will_close and self.response.version >= 11:
            # Read to its end, but http.client marks it done only on a further empty read;
            # a connection with an answer not marked done refuses the next request.
            self.response.close()
            self.backend.put(self.connection)
        else:
            self.connection.close()
