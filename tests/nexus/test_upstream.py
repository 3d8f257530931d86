"""The fast lane's backend connections (http.client), against a small real HTTP/1.1 server."""

from __future__ import annotations

import gzip
import http.server
import json
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from hivematrix.nexus.gateway import _read_exactly
from hivematrix.nexus.upstream import Backend, UpstreamBroken, UpstreamFailed


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    connections: list[int] = []

    def setup(self) -> None:
        self.connections.append(1)
        super().setup()

    def do_GET(self) -> None:
        if self.path == "/slow":
            time.sleep(1)
        body = json.dumps({"path": self.path, "ua": self.headers.get("User-Agent")}).encode()
        encoding = None
        if self.path == "/gzip":
            body, encoding = gzip.compress(b"<html>squeezed</html>"), "gzip"
        if self.path == "/chunked":
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for part in (b"one ", b"two"):
                self.wfile.write(f"{len(part):x}\r\n".encode() + part + b"\r\n")
            self.wfile.write(b"0\r\n\r\n")
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        if encoding:
            self.send_header("Content-Encoding", encoding)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[tuple[str, list[int]]]:
    Handler.connections = []
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", Handler.connections
    httpd.shutdown()
    httpd.server_close()


def test_one_connection_carries_buffered_and_streamed_answers(
        server: tuple[str, list[int]]) -> None:
    url, connections = server
    backend = Backend(url, connect_timeout=2)
    for number in range(10):
        answer = backend.get(f"/a{number}", [("User-Agent", "browser")], 5)
        body = _read_exactly(answer, int(answer.header("Content-Length") or 0))
        answer.finish(complete=True)
        assert json.loads(body) == {"path": f"/a{number}", "ua": "browser"}
        streamed = backend.get("/chunked", [], 5)
        chunks = []
        while chunk := streamed.read_some(65536):
            chunks.append(chunk)
        streamed.finish(complete=True)
        assert b"".join(chunks) == b"one two"
    assert len(connections) == 1


def test_an_abandoned_answer_closes_its_connection(server: tuple[str, list[int]]) -> None:
    url, connections = server
    backend = Backend(url, connect_timeout=2)
    backend.get("/first", [], 5).finish(complete=False)  # never read: must not be reused
    answer = backend.get("/second", [], 5)
    assert json.loads(answer.read_all())["path"] == "/second"
    assert len(connections) == 2


def test_a_connection_the_backend_closed_is_replaced(server: tuple[str, list[int]]) -> None:
    url, connections = server
    backend = Backend(url, connect_timeout=2)
    answer = backend.get("/one", [], 5)
    answer.read_all()
    answer.finish(complete=True)
    idle = backend._idle[0]
    assert idle.sock is not None
    idle.sock.shutdown(socket.SHUT_RDWR)  # as if the backend had timed it out
    again = backend.get("/two", [], 5)
    assert json.loads(again.read_all())["path"] == "/two"
    assert len(connections) == 2


def test_gzip_pages_are_decoded_for_composition(server: tuple[str, list[int]]) -> None:
    url, _connections = server
    assert Backend(url, connect_timeout=2).get("/gzip", [], 5).read_all() == (
        b"<html>squeezed</html>")


def test_failures_are_told_apart(server: tuple[str, list[int]]) -> None:
    url, _connections = server
    with pytest.raises(UpstreamFailed) as slow:
        Backend(url, connect_timeout=2).get("/slow", [], 0.2)
    assert slow.value.kind == "timeout"
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    with pytest.raises(UpstreamFailed) as refused:
        Backend(f"http://127.0.0.1:{port}", connect_timeout=2).get("/", [], 5)
    assert refused.value.kind == "unreachable"


def test_a_short_body_is_broken(server: tuple[str, list[int]]) -> None:
    url, _connections = server
    answer = Backend(url, connect_timeout=2).get("/x", [], 5)
    with pytest.raises(UpstreamBroken):
        _read_exactly(answer, int(answer.header("Content-Length") or 0) + 10)
