"""The fast lane's backend connections (httptools), against real HTTP/1.1 servers: the standard
library's, and one that answers with scripted bytes (for malformed and unusual answers)."""

from __future__ import annotations

import gzip
import http.server
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from hivematrix.nexus.gateway import read_exactly
from hivematrix.nexus.upstream import Backend, Unsendable, UpstreamBroken, UpstreamFailed


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
        body = read_exactly(answer, int(answer.header("Content-Length") or 0))
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
        read_exactly(answer, int(answer.header("Content-Length") or 0) + 10)


#: A scripted answer: its bytes (or pieces sent a moment apart), and whether the connection
#: ends after it.
Scripted = tuple[bytes | list[bytes], bool]


class ScriptedBackend:
    """A backend that answers each request with the next scripted bytes, as they are; it
    records every request head and counts connections."""

    def __init__(self, answers: list[Scripted]) -> None:
        self.answers = list(answers)
        self.requests: list[bytes] = []
        self.connections = 0
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._serve, args=(connection,), daemon=True).start()

    def _serve(self, connection: socket.socket) -> None:
        with connection:
            pending = b""
            while self.answers:
                while b"\r\n\r\n" not in pending:
                    data = connection.recv(65536)
                    if not data:
                        return
                    pending += data
                head, _, pending = pending.partition(b"\r\n\r\n")
                self.requests.append(head)
                answer, close = self.answers.pop(0)
                pieces = answer if isinstance(answer, list) else [answer]
                for number, piece in enumerate(pieces):
                    if number:
                        time.sleep(0.02)
                    connection.sendall(piece)
                if close:
                    return


@pytest.fixture
def scripted() -> Iterator[Callable[[list[Scripted]], ScriptedBackend]]:
    made: list[ScriptedBackend] = []

    def make(answers: list[Scripted]) -> ScriptedBackend:
        made.append(ScriptedBackend(answers))
        return made[-1]

    yield make
    for backend in made:
        backend.listener.close()


Script = Callable[[list[Scripted]], ScriptedBackend]


def page(body: bytes, *headers: str, status: str = "200 OK") -> bytes:
    lines = [f"HTTP/1.1 {status}", *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def test_the_request_is_the_target_host_and_headers_as_given(scripted: Script) -> None:
    backend = scripted([(page(b"ok", "Content-Length: 2"), False)])
    port = int(backend.url.rsplit(":", 1)[1])
    answer = Backend(backend.url + "/base/", connect_timeout=2).get(
        "/a%20b?x=1", [("Accept", "text/html"), ("X-Two", "1"), ("X-Two", "2")], 5)
    assert answer.read_all() == b"ok"
    assert backend.requests == [
        f"GET /base/a%20b?x=1 HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAccept: text/html\r\n"
        "X-Two: 1\r\nX-Two: 2".encode()]


@pytest.mark.parametrize(("target", "headers"), [
    ("/x", [("X-Evil", "a\r\nX-Injected: 1")]),
    ("/x", [("X-Evil", "a\nb")]),
    ("/x", [("X-Evil", "a\0b")]),
    ("/a b", []),
    ("/caf\u00e9", []),
    ("/x\x7f", []),
])
def test_what_cannot_go_into_a_request_is_not_sent(scripted: Script, target: str,
                                                   headers: list[tuple[str, str]]) -> None:
    backend = scripted([(page(b"", "Content-Length: 0"), False)])
    with pytest.raises(Unsendable):
        Backend(backend.url, connect_timeout=2).get(target, headers, 5)
    assert backend.connections == 0


def test_several_set_cookie_headers_stay_apart(scripted: Script) -> None:
    backend = scripted([(page(b"{}", "Set-Cookie: a=1; Path=/", "Content-Type: application/json",
                              "Set-Cookie: b=2; Path=/x", "Content-Length: 2"), False)])
    answer = Backend(backend.url, connect_timeout=2).get("/", [], 5)
    assert [(n, v) for n, v in answer.header_items() if n == "Set-Cookie"] == [
        ("Set-Cookie", "a=1; Path=/"), ("Set-Cookie", "b=2; Path=/x")]
    # Joined as http.client's getheader joins them.
    assert answer.header("set-cookie") == "a=1; Path=/, b=2; Path=/x"
    assert answer.status == 200 and answer.read_all() == b"{}"


def test_a_chunked_page_is_read_whole_and_its_trailer_dropped(scripted: Script) -> None:
    chunked = b"5\r\n<html\r\n4\r\n></>\r\n0\r\nX-Trailer: late\r\n\r\n"
    backend = scripted([(page(chunked, "Transfer-Encoding: chunked",
                              "Content-Type: text/html"), False),
                        (page(b"again", "Content-Length: 5"), False)])
    client = Backend(backend.url, connect_timeout=2)
    answer = client.get("/", [], 5)
    assert answer.read_all() == b"<html></>"
    assert answer.header("X-Trailer") is None
    answer.finish(complete=True)
    second = client.get("/", [], 5)
    assert second.read_all() == b"again"
    assert backend.connections == 1  # a chunked answer leaves the connection usable


def test_a_body_in_slow_pieces_is_read_whole(scripted: Script) -> None:
    body = b"x" * 200_000
    head = page(b"", f"Content-Length: {len(body)}", "Content-Type: text/html")
    pieces = [head + body[:1000], body[1000:70_000], body[70_000:150_000], body[150_000:]]
    backend = scripted([(pieces, False)])
    answer = Backend(backend.url, connect_timeout=2).get("/", [], 5)
    assert answer.read_all() == body


def test_without_a_length_the_body_runs_to_the_close(scripted: Script) -> None:
    backend = scripted([(page(b"<p>all of it</p>", "Content-Type: text/html"), True),
                        (page(b"next", "Content-Length: 4"), False)])
    client = Backend(backend.url, connect_timeout=2)
    answer = client.get("/", [], 5)
    assert answer.read_all() == b"<p>all of it</p>"
    answer.finish(complete=True)
    assert client._idle == []  # it ended with its connection
    streamed = client.get("/", [], 5)
    assert streamed.read_some(100) == b"next" and streamed.read_some(100) == b""
    assert backend.connections == 2


def test_a_short_answer_before_the_close_is_broken(scripted: Script) -> None:
    backend = scripted([(page(b"only this", "Content-Length: 100"), True)])
    answer = Backend(backend.url, connect_timeout=2).get("/", [], 5)
    with pytest.raises(UpstreamBroken):
        answer.read_all()


@pytest.mark.parametrize("answer", [
    page(b"", "X-Folded: one", " two", "Content-Length: 0"),  # obs-fold
    page(b"", "X-Bare: lf\nContent-Length: 0"),  # a bare LF for CRLF
    page(b"", "X-Nul: a\0b", "Content-Length: 0"),
    page(b"abc", "Content-Length: 3", "Content-Length: 3"),
    page(b"3\r\nabc\r\n0\r\n\r\n", "Content-Length: 3", "Transfer-Encoding: chunked"),
    page(b"", "Bad Name: x", "Content-Length: 0"),
    b"HTTP/1.1 2000 Nonsense\r\n\r\n",
    b"not http at all\r\n\r\n",
    # http.client's limits: 100 header fields, 64 KiB a line.
    page(b"", *[f"X-Many-{number}: {number}" for number in range(101)]),
    page(b"", "X-Long: " + "x" * 70_000, "Content-Length: 0"),
])
def test_malformed_or_oversized_heads_are_refused(scripted: Script, answer: bytes) -> None:
    backend = scripted([(answer, False)])
    with pytest.raises(UpstreamFailed) as refused:
        Backend(backend.url, connect_timeout=2).get("/", [], 5)
    assert refused.value.kind == "unreachable"


def test_heads_just_inside_the_limits_are_read(scripted: Script) -> None:
    many = [f"X-Many-{number}: {number}" for number in range(99)]
    backend = scripted([(page(b"", *many, "Content-Length: 0"), False),
                        (page(b"", "X-Long: " + "y" * 60_000, "Content-Length: 0"), False)])
    client = Backend(backend.url, connect_timeout=2)
    first = client.get("/", [], 5)
    assert len(first.header_items()) == 100
    first.read_all()
    first.finish(complete=True)
    assert client.get("/", [], 5).header("x-long") == "y" * 60_000


def test_interim_answers_are_skipped(scripted: Script) -> None:
    backend = scripted([(b"HTTP/1.1 100 Continue\r\n\r\n"
                         b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n"
                         + page(b"done", "Content-Length: 4", status="201 Created"), False)])
    answer = Backend(backend.url, connect_timeout=2).get("/", [], 5)
    assert answer.status == 201
    assert answer.header_items() == [("Content-Length", "4")]
    assert answer.read_all() == b"done"


@pytest.mark.parametrize("answer", [
    page(b"x", "Content-Length: 1", "Connection: close"),
    page(b"x", "Content-Length: 1", "Connection: keep-alive, close"),
    page(b"x", "Content-Length: 1", status="200 OK").replace(b"HTTP/1.1", b"HTTP/1.0"),
    page(b"x", "Content-Length: 1", "Connection: keep-alive").replace(b"HTTP/1.1", b"HTTP/1.0"),
    page(b"x", "Content-Length: 1") + b"HTTP/1.1 200 OK\r\n\r\n",  # more than the answer
])
def test_connections_that_cannot_carry_another_answer_are_not_kept(
        scripted: Script, answer: bytes) -> None:
    backend = scripted([(answer, False)])
    client = Backend(backend.url, connect_timeout=2)
    got = client.get("/", [], 5)
    assert got.read_all() == b"x"
    got.finish(complete=True)
    assert client._idle == []


def test_a_kept_connection_the_backend_closed_while_idle_is_replaced(scripted: Script) -> None:
    # The first connection answers once and is then closed by the backend (its idle
    # timeout, say) without a word; the answer itself said nothing of closing.
    backend = scripted([(page(b"one", "Content-Length: 3"), True),
                        (page(b"two", "Content-Length: 3"), False)])
    client = Backend(backend.url, connect_timeout=2)
    first = client.get("/", [], 5)
    assert first.read_all() == b"one"
    first.finish(complete=True)
    assert len(client._idle) == 1
    time.sleep(0.1)  # the close has arrived
    second = client.get("/", [], 5)
    assert second.read_all() == b"two"
    assert backend.connections == 2


def test_a_fresh_connection_closed_without_an_answer_is_unreachable(scripted: Script) -> None:
    backend = scripted([(b"HTTP/1.1 200 OK\r\nContent-Le", True)])
    with pytest.raises(UpstreamFailed) as failed:
        Backend(backend.url, connect_timeout=2).get("/", [], 5)
    assert failed.value.kind == "unreachable"


def test_a_stream_passes_on_what_has_come_at_most_size_at_a_time(scripted: Script) -> None:
    head = page(b"", "Transfer-Encoding: chunked", "Content-Type: text/event-stream")
    backend = scripted([([head + b"6\r\nevent1\r\n", b"6\r\nevent2\r\n", b"0\r\n\r\n"], False)])
    answer = Backend(backend.url, connect_timeout=2).get("/", [], None)
    assert answer.read_some(4) == b"even"  # a piece is split to the size asked for
    assert answer.read_some(100) == b"t1"
    assert answer.read_some(100) == b"event2"  # the next one, when it has come
    assert answer.read_some(100) == b""


def test_a_head_that_does_not_come_in_time_is_a_timeout(scripted: Script) -> None:
    # Half a head, then nothing for half a second (before the backend hangs up).
    backend = scripted([([b"HTTP/1.1 200 OK\r\n"] + [b""] * 25, False)])
    with pytest.raises(UpstreamFailed) as slow:
        Backend(backend.url, connect_timeout=2).get("/", [], 0.01)
    assert slow.value.kind == "timeout"


@pytest.mark.parametrize("name", ["", "X:Y", " X", "X\r"])
def test_what_is_no_header_name_is_not_sent(scripted: Script, name: str) -> None:
    backend = scripted([(page(b"", "Content-Length: 0"), False)])
    with pytest.raises(Unsendable):
        Backend(backend.url, connect_timeout=2).get("/", [(name, "v")], 5)
