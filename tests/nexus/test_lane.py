"""The fast lane answers exactly as the Flask app would, and hands over everything else.

A second Nexus app is built in this process on the running platform's home (same session
store, same Core), so one request can be put through the lane and through the app itself and
the two answers compared.
"""

from __future__ import annotations

import gzip
import json
import logging
import re
import socket
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from hypothesis import given, settings
from hypothesis import strategies as st
from werkzeug.datastructures import EnvironHeaders, Headers
from werkzeug.http import parse_cookie
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Response

from hivematrix.common.logging import JSON_FORMATTER, RequestContextFilter, log_request
from hivematrix.common.testing import serve_wsgi
from hivematrix.nexus import create_app
from hivematrix.nexus.lane import (
    Answer,
    FastLane,
    environ_headers,
    lane_of,
    log_served,
    new_correlation_id,
    session_cookie,
    status_line,
)
from tests.nexus.conftest import Platform

pytestmark = pytest.mark.processes
HTML = {"Accept": "text/html"}
NONCE = re.compile(r"nonce-?=?\"?'?([A-Za-z0-9_-]{20,})")


@pytest.fixture(scope="module")
def nexus_app(platform: Platform) -> Iterator[Flask]:
    process = platform.processes["nexus"]
    with pytest.MonkeyPatch.context() as patch:
        for name, value in process.env.items():
            patch.setenv(name, value)
        yield create_app()


def lane(app: Flask) -> FastLane:
    found = lane_of(app)
    assert found is not None
    return found


def environ(path: str, cookie: str | None, method: str = "GET", **headers: str) -> dict[str, Any]:
    if cookie:
        headers["Cookie"] = f"hm_session={cookie}; other=1"
    built = EnvironBuilder(path=path, method=method, headers={
        "X-Correlation-ID": "lane-test-0001", **headers},
        environ_base={"REMOTE_ADDR": "192.0.2.7"})
    return dict(built.get_environ())


def call(wsgi: Any, env: dict[str, Any]) -> tuple[str, list[tuple[str, str]], bytes]:
    seen: list[Any] = []
    body = wsgi(env, lambda status, headers, exc_info=None: seen.extend([status, headers]))
    try:
        data = b"".join(body)
    finally:
        if hasattr(body, "close"):
            body.close()
    return seen[0], seen[1], data


def normalised(answer: tuple[str, list[tuple[str, str]], bytes]) -> tuple[Any, ...]:
    """An answer with its one-off parts (CSP nonce) made comparable."""
    status, headers, body = answer
    text = body.decode()
    nonces = set(NONCE.findall(text)) | {n for _k, v in headers for n in NONCE.findall(v)}
    for nonce in nonces:
        text = text.replace(nonce, "NONCE")
    listed = sorted((name, NONCE.sub("nonce-NONCE", value)) for name, value in headers)
    return status, listed, text


def signed_in(platform: Platform, username: str = "alice") -> str:
    client = platform.login(username, next_path="/template/")
    # One page through the app stores the user's theme in the session, as it does once per
    # sign-in; the lane serves what follows.
    assert client.get("/echo/page", headers=HTML).status_code == 200
    return str(client.cookies["hm_session"])


@pytest.mark.parametrize(("path", "accept"), [
    ("/echo/page?name=%3Cb%3E", "text/html"),
    ("/echo/some/api?x=1&y=%C3%A9", "application/json"),
    ("/echo/caf%C3%A9/a%20b/%25/", "application/json"),
    ("/books/page", "text/html"),  # another service: its own navigation entry is active
])
def test_the_lane_answers_as_the_app_does(platform: Platform, nexus_app: Flask, path: str,
                                          accept: str) -> None:
    cookie = signed_in(platform)
    fast_lane = lane(nexus_app)
    env = environ(path, cookie, Accept=accept)
    assert fast_lane.admit(env) is not None  # the lane takes it...
    through_lane = call(nexus_app.wsgi_app, dict(env))
    through_app = call(fast_lane.inner, dict(env))  # ...and the app would answer the same
    assert through_lane[0].startswith("200")
    assert normalised(through_lane) == normalised(through_app)
    headers = dict(through_lane[1])
    assert headers["X-Correlation-ID"] == "lane-test-0001"
    assert headers["X-Content-Type-Options"] == "nosniff"
    if accept == "application/json":
        forwarded = json.loads(through_lane[2])["headers"]
        assert forwarded["Authorization"].startswith("Bearer ")
        assert forwarded["X-Forwarded-Prefix"] == "/echo"
        assert forwarded["X-Forwarded-For"] == "192.0.2.7"
        assert forwarded["Cookie"] == "other=1"  # Nexus's own session never leaves
    else:
        assert 'class="side-nav"' in through_lane[2].decode()


def test_the_lane_hands_over_what_it_does_not_serve(platform: Platform,
                                                    nexus_app: Flask) -> None:
    cookie = signed_in(platform)
    tech = signed_in(platform, "tom")
    fast_lane = lane(nexus_app)
    handed_over = {
        "a form post": environ("/echo/x", cookie, method="POST", **{"Content-Length": "3"}),
        "no session": environ("/echo/x", None),
        "a made-up session": environ("/echo/x", "not-a-session"),
        "Nexus's own pages": environ("/nexus/design", cookie),
        "an unknown service": environ("/nowhere/x", cookie),
        "a service's bare name": environ("/echo", cookie),
        "a display link": environ("/echo/x?display_token=abc", cookie),
        "a service the user may not use": environ("/vault/x", tech),
    }
    for why, env in handed_over.items():
        assert fast_lane.admit(env) is None, why
    assert fast_lane.admit(environ("/vault/x", cookie)) is not None  # alice is an admin


@pytest.fixture
def hangs_up() -> Iterator[tuple[str, list[int]]]:
    """A backend that accepts connections and closes them unanswered, counting them."""
    listener = socket.create_server(("127.0.0.1", 0))
    accepted: list[int] = []

    def serve() -> None:
        while True:
            try:
                connection, _ = listener.accept()
            except OSError:
                return
            accepted.append(1)
            connection.close()

    threading.Thread(target=serve, daemon=True).start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}", accepted
    listener.close()


def test_a_failed_backend_is_answered_once_by_the_app(
        platform: Platform, nexus_app: Flask, hangs_up: tuple[str, list[int]]) -> None:
    url, accepted = hangs_up
    services = platform.home / "services.json"
    listed = json.loads(services.read_text())
    listed["deadend"] = {"url": url, "port": int(url.rsplit(":", 1)[1]), "visible": False}
    services.write_text(json.dumps(listed))
    cookie = signed_in(platform)
    fast_lane = lane(nexus_app)
    fast_lane.directory.CHECK_SECONDS = 0  # see the new entry at once
    env = environ("/deadend/x", cookie, Accept="application/json")
    assert fast_lane.admit(env) is not None
    status, headers, body = call(fast_lane.inner, dict(env))
    tries_by_the_app = len(accepted)
    assert status.startswith("502") and tries_by_the_app >= 1
    accepted.clear()
    status, headers, body = call(nexus_app.wsgi_app, dict(env))
    assert status.startswith("502")
    assert dict(headers)["Content-Type"] == "application/problem+json"
    assert "not reachable" in json.loads(body)["detail"]
    # The lane tried (once); had the app tried again, there would be more than on its own.
    assert 1 <= len(accepted) <= tries_by_the_app


# --- answers of every kind, through the lane and through the app ------------------------------

PAGE = (b'<!DOCTYPE html><html lang="en"><head><title>Quirks</title></head>'
        b"<body><main><p>caf\xc3\xa9</p></main></body></html>")
#: path -> status, headers, body (a list: sent in pieces, without a length, so chunked).
QUIRKS: dict[str, tuple[str, list[tuple[str, str]], bytes | list[bytes]]] = {
    "/cookies": ("200 OK", [("Content-Type", "text/html; charset=utf-8"),
                            ("Set-Cookie", "a=1; Path=/"), ("Set-Cookie", "b=2; Path=/sub"),
                            ("Set-Cookie", "hm_session=stolen; Path=/"),
                            ("Content-Security-Policy", "default-src 'self'; img-src *"),
                            ("Cache-Control", "max-age=60"), ("X-Correlation-ID", "backend"),
                            ("X-Frame-Options", "SAMEORIGIN")], PAGE),
    "/gzip": ("200 OK", [("Content-Type", "text/html"), ("Content-Encoding", "gzip")],
              gzip.compress(PAGE)),
    "/chunked": ("200 OK", [("Content-Type", "text/html")], [PAGE[:40], PAGE[40:]]),
    "/latin1": ("200 OK", [("Content-Type", "text/html; charset=iso-8859-1")],
                PAGE.replace(b"caf\xc3\xa9", b"caf\xe9")),
    "/missing": ("404 NOT FOUND", [("Content-Type", "text/html")], PAGE),
    "/teapot": ("418 I'M A TEAPOT", [("Content-Type", "text/plain")], b"short and stout"),
    "/unknown-status": ("299 WHATEVER", [("Content-Type", "application/json")], b"{}"),
    "/no-type": ("200 OK", [], b'{"typeless": true}'),
    "/twice-typed": ("200 OK", [("Content-Type", "text/html"), ("Content-Type", "text/plain")],
                     PAGE),
    "/big": ("200 OK", [("Content-Type", "application/octet-stream")], b"z" * 200_000),
    "/redirect": ("302 FOUND", [("Location", "/quirks/elsewhere?x=caf%C3%A9"),
                                ("Content-Type", "text/html")], b"<a>moved</a>"),
    "/empty": ("204 NO CONTENT", [], b""),
    "/one-time": ("200 OK", [("Content-Type", "text/html"), ("Cache-Control", "no-store")], PAGE),
    "/unchanged": ("304 NOT MODIFIED", [("ETag", '"v1"'), ("Content-Type", "text/html")], b""),
}


def quirks_app(environ: dict[str, Any], start_response: Any) -> list[bytes] | Iterator[bytes]:
    status, headers, body = QUIRKS[environ["PATH_INFO"]]
    if isinstance(body, list):
        start_response(status, headers)
        return iter(body)
    start_response(status, [*headers, ("Content-Length", str(len(body)))])
    return [body]


@pytest.fixture(scope="module")
def quirks(platform: Platform, nexus_app: Flask) -> Iterator[str]:
    with serve_wsgi(quirks_app) as url:
        services = platform.home / "services.json"
        listed = json.loads(services.read_text())
        listed["quirks"] = {"url": url, "port": int(url.rsplit(":", 1)[1]), "visible": True}
        services.write_text(json.dumps(listed))
        fast_lane = lane(nexus_app)
        fast_lane.directory.CHECK_SECONDS = 0  # see the new entry at once
        yield url


@pytest.fixture(scope="module")
def alice(platform: Platform) -> str:
    """One sign-in for the many answers below (the provider limits sign-ins)."""
    return signed_in(platform)


@pytest.mark.parametrize("path", sorted(QUIRKS))
@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_every_kind_of_answer_is_the_same_through_the_lane(
        nexus_app: Flask, quirks: str, alice: str, path: str, method: str) -> None:
    cookie = alice
    fast_lane = lane(nexus_app)
    env = environ(f"/quirks{path}", cookie, method=method, Accept="text/html")
    assert fast_lane.admit(env) is not None
    through_lane = call(nexus_app.wsgi_app, dict(env))
    through_app = call(fast_lane.inner, dict(env))

    def compared(answer: tuple[str, list[tuple[str, str]], bytes]) -> tuple[Any, ...]:
        status, headers, body = answer  # (bodies in any encoding, byte for byte)
        return normalised((status, headers, body.decode("latin-1").encode()))

    assert compared(through_lane) == compared(through_app)
    assert through_lane[0].split()[0] == QUIRKS[path][0].split()[0]


def test_a_page_the_backend_forbids_storing_stays_unstored(nexus_app: Flask, quirks: str,
                                                           alice: str) -> None:
    for path, expected in (("/one-time", "private, no-store"), ("/cookies", "private, no-cache")):
        env = environ(f"/quirks{path}", alice, Accept="text/html")
        for answer in (call(nexus_app.wsgi_app, dict(env)), call(lane(nexus_app).inner, dict(env))):
            assert dict(answer[1])["Cache-Control"] == expected, path


# --- the lane's own pieces, against the Werkzeug behaviour they stand in for ------------------

COOKIE_PARTS = st.sampled_from(["hm_session", "=", ";", " ", "\t", "a", "b=1", '"', "\\", "v",
                                "hm_session=", "x y", ",", "\u00e9"])


@given(st.lists(COOKIE_PARTS, max_size=10).map("".join))
@settings(max_examples=3000, deadline=None)
def test_the_session_cookie_is_read_as_werkzeug_reads_it(header: str) -> None:
    try:
        expected = parse_cookie(header).get("hm_session")
    except UnicodeDecodeError:
        expected = None  # Werkzeug cannot read it: the lane leaves it to the app
    assert session_cookie(header) == expected


ENVIRON_KEYS = st.sampled_from([
    "HTTP_ACCEPT", "HTTP_X_FORWARDED_FOR", "HTTP_COOKIE", "HTTP_CONTENT_TYPE",
    "HTTP_CONTENT_LENGTH", "CONTENT_TYPE", "CONTENT_LENGTH", "PATH", "wsgi.url_scheme",
    "SERVER_NAME", "HTTP_", "HTTP_X__ODD_", "http_lower"])


@given(st.lists(st.tuples(ENVIRON_KEYS, st.sampled_from(["", "0", "v", "text/html"])),
                max_size=12))
@settings(max_examples=1000, deadline=None)
def test_request_headers_are_listed_as_werkzeug_lists_them(
        pairs: list[tuple[str, str]]) -> None:
    env = dict(pairs)
    assert environ_headers(env) == list(EnvironHeaders(env).items())
    assert environ_headers(env) == list(EnvironHeaders(env).items())  # remembered names too


HEADER_NAMES = st.sampled_from(["Content-Length", "content-length", "Content-Type",
                                "Cache-Control", "X-A", "x-a", "Set-Cookie"])


@given(st.lists(st.tuples(HEADER_NAMES, st.sampled_from(["1", "2", "text/html"])),
                max_size=8),
       st.lists(st.tuples(HEADER_NAMES, st.sampled_from(["r1", "r2"])), max_size=5),
       st.lists(st.tuples(HEADER_NAMES, st.sampled_from(["d"])), max_size=3))
@settings(max_examples=1000, deadline=None)
def test_answer_headers_change_as_werkzeug_headers_do(
        original: list[tuple[str, str]], replacements: list[tuple[str, str]],
        defaults: list[tuple[str, str]]) -> None:
    answer = Answer(200, list(original), [name.lower() for name, _ in original], b"")
    reference = Headers(original)
    for name, value in replacements:
        answer.replace(name, value)
        reference[name] = value
        assert answer.first(name.lower()) == reference.get(name)
    # As apply_security_headers adds its defaults: those the headers lack when it starts.
    present = {name.lower() for name in reference.keys()}  # noqa: SIM118 - Headers
    for name, value in defaults:
        if name.lower() not in present:
            reference.add(name, value)
    assert answer.wsgi_headers(defaults) == reference.to_wsgi_list()


@pytest.mark.parametrize("code", [200, 201, 204, 299, 302, 404, 418, 451, 500, 599, 999])
def test_status_lines_are_werkzeugs(code: int) -> None:
    assert status_line(code) == Response(status=code).status


def test_correlation_ids_are_uuid4_hex() -> None:
    ids = {new_correlation_id() for _ in range(1000)}
    assert len(ids) == 1000
    for made in ids:
        parsed = uuid.UUID(hex=made)
        assert made == parsed.hex and parsed.version == 4 and parsed.variant == uuid.RFC_4122


def test_the_lane_logs_the_request_line_the_kit_logs() -> None:
    seen: list[dict[str, Any]] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(JSON_FORMATTER.payload(record))

    handler = Collect()
    handler.addFilter(RequestContextFilter("nexus"))
    request_log = logging.getLogger("hivematrix.request")
    request_log.addHandler(handler)
    level = request_log.level
    request_log.setLevel(logging.INFO)
    try:
        log_served("GET", "/echo/page", 200, 0.012345, "lane-test-0001", "user-1")
        log_request("GET", "/echo/page", 200, 0.012345, correlation_id="lane-test-0001",
                    user="user-1")
    finally:
        request_log.removeHandler(handler)
        request_log.setLevel(level)
    lane_line, kit_line = ([(key, value) for key, value in line.items()
                            if key not in ("timestamp", "seq")] for line in seen)
    assert lane_line == kit_line
    assert dict(lane_line)["duration_ms"] == 12.35 and dict(lane_line)["service"] == "nexus"
