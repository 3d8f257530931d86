"""The fast lane answers exactly as the Flask app would, and hands over everything else.

A second Nexus app is built in this process on the running platform's home (same session
store, same Core), so one request can be put through the lane and through the app itself and
the two answers compared.
"""

from __future__ import annotations

import json
import re
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from werkzeug.test import EnvironBuilder

from hivematrix.nexus import create_app
from hivematrix.nexus.lane import FastLane, lane_of
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
