"""A backend's answer behind the one small interface the relay reads from.

Two ways to get one: urllib3 (the app's path: any method, streamed request bodies, retries)
and :class:`Backend`, kept-alive sockets for the fast lane's bodiless GETs, whose answers
httptools (llhttp, a C parser) reads. The standard library's reader parses every header
block with the email package, which cost the lane more CPU than anything else it did.

llhttp is stricter than http.client, on purpose: an answer with a folded header line
(obs-fold), a bare LF for CRLF, a control character in a value, two Content-Length headers
or Content-Length beside chunked counts as no answer (the app then says 502), as RFC 9112
lets a gateway do; urllib3, on the app's own path, still reads such answers. The limits on a
header block are http.client's (100 fields, 64 KiB a line) on both paths.
"""

from __future__ import annotations

import re
import socket
import ssl
import struct
import threading
import zlib
from collections import deque
from typing import Protocol
from urllib.parse import urlsplit

import httptools
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


#: http.client's limits on a header block, so both paths refuse the same answers.
MAX_HEADERS = 100
MAX_LINE = 65536
#: Bytes asked of the socket at a time. For a head: enough that an answer which has arrived
#: whole is read in one call (each call lets another thread take the GIL, which under load
#: costs more than copying the body once more). For a body read piece by piece: the size of
#: the pieces a stream passes on.
HEAD_RECEIVE = 256 * 1024
RECEIVE = 64 * 1024
_receiving = threading.local()
#: Characters a request target may not hold as they are, and what a header name must look
#: like (http.client refuses the same).
_NOT_IN_TARGET = re.compile(r"[^\x21-\x7e]")
_LEGAL_NAME = re.compile(r"[^:\s][^:\r\n]*")
_LEGAL_NAMES: set[str] = set()  # names seen to be legal (the same few come every time)


def _buffer() -> memoryview:
    """This thread's receive buffer: what arrives is parsed (and copied out) at once."""
    view: memoryview | None = getattr(_receiving, "view", None)
    if view is None:
        view = _receiving.view = memoryview(bytearray(max(HEAD_RECEIVE, RECEIVE)))
    return view


class Unsendable(ValueError):
    """A target or header that cannot go into a request line or header as it is."""


class HeadTooLarge(Exception):
    """More header fields, or a longer one, than :data:`MAX_HEADERS` and :data:`MAX_LINE`."""


class Unexpected(Exception):
    """Bytes from the backend after its answer."""


class Closed(Exception):
    """The backend closed the connection before the answer's head was whole."""


class Connection:
    """One kept-alive connection, and the answer being read on it (a fresh llhttp parser per
    answer, whose protocol object this is)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        #: The socket blocks, its timeouts kept by the kernel (``SO_RCVTIMEO``/``SO_SNDTIMEO``):
        #: with Python's own timeouts each send and receive is a poll() and then the call, two
        #: releases of the GIL instead of one, each a thread switch or two under load. (TLS
        #: sockets keep Python's timeouts.)
        self.kernel_timeouts = not isinstance(sock, ssl.SSLSocket)
        if self.kernel_timeouts:
            sock.settimeout(None)
        self.timeout: float | None = -1.0  # (none set yet)
        self.parser = httptools.HttpResponseParser(self)
        self.status = 0
        self.headers: list[tuple[str, str]] = []
        self.head_done = self.done = self.reusable = False
        self.body: deque[bytes] = deque()

    def close(self) -> None:
        self.sock.close()

    def set_timeout(self, seconds: float | None) -> None:
        """How long a send or a receive may wait (``None``: for ever)."""
        if seconds == self.timeout:
            return
        if self.kernel_timeouts:
            # A struct timeval; zero means no limit, so a limit of zero is a microsecond.
            micros = 0 if seconds is None else max(1, round(seconds * 1_000_000))
            value = struct.pack("ll", micros // 1_000_000, micros % 1_000_000)
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, value)
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, value)
        else:
            self.sock.settimeout(seconds)
        self.timeout = seconds

    def send(self, request: bytes) -> None:
        """Send a request and read its answer's head."""
        self.parser = httptools.HttpResponseParser(self)
        self.status, self.headers = 0, []
        self.head_done = self.done = self.reusable = False
        self.body.clear()
        try:
            self.sock.sendall(request)
        except BlockingIOError as exc:  # a kernel timeout
            raise TimeoutError("the backend took no request in time") from exc
        received = 0
        while not self.head_done:
            count = self.receive(HEAD_RECEIVE)
            if not count:
                raise Closed("the backend closed the connection before its answer's head "
                             "was whole")
            received += count
            if received > MAX_HEADERS * MAX_LINE and not self.head_done:
                raise HeadTooLarge(f"no end of the head in {received} bytes")

    def receive(self, size: int = RECEIVE) -> int:
        """Parse what the socket has (up to ``size`` bytes): how many; 0 once it is closed."""
        view = _buffer()[:size]
        try:
            count = self.sock.recv_into(view)
        except BlockingIOError as exc:  # a kernel timeout
            raise TimeoutError("the backend did not answer in time") from exc
        if count:
            try:
                self.parser.feed_data(view[:count])
            except httptools.HttpParserError:
                if not self.done:
                    raise
                self.reusable = False  # the answer is whole; what came after it is not
        return count

    def read_rest(self, length: int) -> bytes:
        """The body of ``length`` bytes: what came with the head, then the rest straight off
        the socket (not through the parser: one copy fewer). The parser is spent afterwards.

        :raises UpstreamBroken: fewer bytes came.
        """
        chunks = list(self.body)
        self.body.clear()
        missing = length - sum(map(len, chunks))
        while missing > 0:
            try:
                chunk = self.sock.recv(min(missing, 1 << 20))  # (what is asked is allocated)
            except BlockingIOError as exc:  # a kernel timeout
                raise TimeoutError("the backend stopped sending") from exc
            if not chunk:
                raise UpstreamBroken(f"{missing} of {length} bytes missing")
            chunks.append(chunk)
            missing -= len(chunk)
        self.done = True
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    def ends_at_close(self) -> bool:
        """Whether the answer's body runs until the backend closes (no length, not chunked)."""
        framed = False
        for name, value in self.headers:
            lower = name.lower()
            if lower == "content-length" or (
                    lower == "transfer-encoding"
                    and value.rsplit(",", 1)[-1].strip().lower() == "chunked"):
                framed = True
        return not framed

    # --- the parser's callbacks ---

    def on_message_begin(self) -> None:
        if self.done:
            raise Unexpected("the backend sent more than its answer")
        self.headers = []  # (after an interim 1xx answer: its headers are not the answer's)

    def on_header(self, name: bytes, value: bytes) -> None:
        if self.head_done:
            return  # a chunked answer's trailer, which http.client drops too
        if len(self.headers) >= MAX_HEADERS or len(name) + len(value) + 4 > MAX_LINE:
            raise HeadTooLarge(f"more than {MAX_HEADERS} header fields, or one of more than "
                               f"{MAX_LINE} bytes")
        self.headers.append((name.decode("latin-1"), value.decode("latin-1")))

    def on_headers_complete(self) -> None:
        parser = self.parser
        status = parser.get_status_code()
        if not 100 <= status < 200:  # an interim answer (100 Continue, 103) is skipped
            self.status, self.head_done = status, True
            # HTTP/1.1 without "Connection: close" and with a length or chunks (else the
            # body ends at the close); 1.0 connections are not kept.
            self.reusable = parser.should_keep_alive() and parser.get_http_version() == "1.1"

    def on_body(self, data: bytes) -> None:
        self.body.append(data)

    def on_message_complete(self) -> None:
        if self.head_done:
            self.done = True


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
        self.tls: ssl.SSLContext | None = None
        if self.https:
            self.tls = ssl.create_default_context()
            self.tls.set_alpn_protocols(["http/1.1"])
        # As http.client writes it: no port when it is the scheme's, IPv6 in brackets.
        host = f"[{self.host}]" if ":" in self.host else self.host
        default_port = 443 if self.https else 80
        self.host_header = host if self.port == default_port else f"{host}:{self.port}"
        self._idle: list[Connection] = []
        self._lock = threading.Lock()

    def get(self, target: str, headers: list[tuple[str, str]],
            read_timeout: float | None) -> LaneUpstream:
        """``GET base_path + target``. A kept-alive connection the backend had closed is
        replaced once by a fresh one (a GET can be sent again).

        :raises UpstreamFailed: no answer.
        :raises Unsendable: the request cannot be sent as it is.
        """
        request = self.request(target, headers)
        while True:
            connection, reused = self._connection()
            try:
                if connection is None:
                    connection = Connection(self._connect())
                connection.set_timeout(read_timeout)
                connection.send(request)
                return LaneUpstream(self, connection)
            except TimeoutError as exc:
                if connection is not None:
                    connection.close()
                raise UpstreamFailed("timeout", f"{type(exc).__name__}: {exc}") from exc
            except (httptools.HttpParserError, httptools.HttpParserUpgrade, Closed,
                    HeadTooLarge, OSError) as exc:
                if connection is not None:
                    connection.close()
                if reused:
                    continue
                reason = exc.__context__ if isinstance(exc, httptools.HttpParserCallbackError) \
                    else exc
                raise UpstreamFailed("unreachable",
                                     f"{type(reason).__name__}: {reason}") from exc

    def request(self, target: str, headers: list[tuple[str, str]]) -> bytes:
        """The request's bytes: its line, ``Host``, then ``headers`` as they are."""
        parts = [f"GET {self.base_path}{target} HTTP/1.1\r\nHost: {self.host_header}\r\n"]
        for name, value in headers:
            if name not in _LEGAL_NAMES:
                if not _LEGAL_NAME.fullmatch(name):
                    raise Unsendable(f"not a header name: {name!r}")
                if len(_LEGAL_NAMES) < 4096:
                    _LEGAL_NAMES.add(name)
            parts.append(f"{name}: {value}\r\n")
        parts.append("\r\n")
        text = "".join(parts)
        # One line per header and nothing else: a CR or LF in a value would start another.
        lines = len(headers) + 3
        if text.count("\n") != lines or text.count("\r") != lines or "\0" in text:
            raise Unsendable("a header holds a line break or NUL")
        if _NOT_IN_TARGET.search(target):
            raise Unsendable(f"not a request target: {target!r}")
        try:
            return text.encode("latin-1")
        except UnicodeEncodeError as exc:
            raise Unsendable(str(exc)) from exc

    def _connect(self) -> socket.socket:
        sock = socket.create_connection((self.host, self.port), timeout=self.connect_timeout)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self.tls is not None:
                sock = self.tls.wrap_socket(sock, server_hostname=self.host)
        except BaseException:
            sock.close()
            raise
        return sock

    def _connection(self) -> tuple[Connection | None, bool]:
        with self._lock:
            if self._idle:
                return self._idle.pop(), True
        return None, False

    def put(self, connection: Connection) -> None:
        with self._lock:
            if len(self._idle) < self.keep:
                self._idle.append(connection)
                return
        connection.close()


class LaneUpstream:
    """An answer on a :class:`Backend` connection, its head read."""

    def __init__(self, backend: Backend, connection: Connection) -> None:
        self.backend, self.connection = backend, connection
        self.status = connection.status
        self._by_name: dict[str, str] | None = None

    def header_items(self) -> list[tuple[str, str]]:
        return self.connection.headers

    def header(self, name: str) -> str | None:
        """All values of ``name``, joined with ", " (as http.client's ``getheader``)."""
        if self._by_name is None:
            self._by_name = {}
            for key, value in self.connection.headers:
                lower = key.lower()
                found = self._by_name.get(lower)
                self._by_name[lower] = value if found is None else f"{found}, {value}"
        return self._by_name.get(name.lower())

    def _more(self) -> None:
        """Read on until the body holds something or the answer is done."""
        connection = self.connection
        try:
            if not connection.receive():
                if not connection.ends_at_close():
                    raise UpstreamBroken("the backend closed the connection mid-answer")
                connection.done = True  # read to the close: the body's end
        except (httptools.HttpParserError, OSError) as exc:
            raise UpstreamBroken(f"{type(exc).__name__}: {exc}") from exc

    def read_all(self) -> bytes:
        connection = self.connection
        length = self.header("Content-Length")
        if not connection.done and length is not None and length.isdigit():
            try:
                data = connection.read_rest(int(length))
            except OSError as exc:
                raise UpstreamBroken(f"{type(exc).__name__}: {exc}") from exc
        else:
            while not connection.done:
                self._more()
            body = connection.body
            data = body.popleft() if len(body) == 1 else b"".join(body)
            body.clear()
        encoding = (self.header("Content-Encoding") or "identity").strip().lower()
        try:
            if encoding == "gzip":
                return zlib.decompress(data, 16 + zlib.MAX_WBITS)
            if encoding == "deflate":
                return zlib.decompress(data)
        except zlib.error as exc:
            raise UpstreamBroken(f"undecodable {encoding} body: {exc}") from exc
        if encoding != "identity":
            raise UpstreamBroken(f"cannot decode {encoding}")
        return data

    def read_some(self, size: int) -> bytes:
        connection = self.connection
        body = connection.body
        while not body and not connection.done:
            self._more()
        if not body:
            return b""
        data = body.popleft()
        if len(data) > size:
            body.appendleft(data[size:])
            data = data[:size]
        return data

    def finish(self, *, complete: bool) -> None:
        connection = self.connection
        if complete and connection.done and connection.reusable:
            self.backend.put(connection)
        else:
            connection.close()
