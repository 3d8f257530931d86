"""A whole platform for gateway tests: identity, Core, Nexus and template as real server
processes, plus an "echo" backend (in this process) that shows what Nexus forwarded."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from flask import Flask, Response, jsonify, request, stream_with_context

from hivematrix.cli import main
from hivematrix.common.db import Database
from hivematrix.common.testing import ServiceProcess, free_port, serve_wsgi
from hivematrix.identity import accounts

PASSWORD = "correct horse battery staple"
USERS = {"alice": "admins", "tom": "technicians", "bill": "billing"}
#: Bytes the echo backend's /big answers with.
BIG = 50 * 1024 * 1024


def echo_app() -> Flask:
    """A backend that reports what it received and produces big, slow or streamed answers."""
    app = Flask("echo")
    app.config["MAX_CONTENT_LENGTH"] = None

    @app.route("/", defaults={"path": ""}, methods=["GET", "POST", "PUT", "PATCH", "DELETE",
                                                    "OPTIONS"], provide_automatic_options=False)
    @app.route("/<path:path>", methods=["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"],
               provide_automatic_options=False)
    def echo(path: str) -> Any:
        body = request.get_data()
        response = jsonify({"method": request.method, "path": "/" + path,
                            "query": request.query_string.decode(),
                            "headers": dict(request.headers), "body_length": len(body),
                            "body_start": body[:64].decode("latin-1")})
        # (A server may name hop-by-hop headers; "close" first, as http.client reads only
        # the first Connection header when it decides whether to reuse the connection.)
        response.headers["Connection"] = "close, X-Secret-Hop"
        response.headers["X-Secret-Hop"] = "must not pass"
        response.headers["Keep-Alive"] = "timeout=5"
        response.headers.add("Set-Cookie", "echo_pref=1; Path=/")
        response.headers.add("Set-Cookie", "hm_session=stolen; Path=/")
        return response

    @app.get("/big")
    def big() -> Response:
        chunk = b"x" * 65536

        def generate() -> Iterator[bytes]:
            for _ in range(BIG // len(chunk)):
                yield chunk

        return Response(generate(), mimetype="application/octet-stream",
                        headers={"Content-Length": str(BIG)})

    @app.get("/events")
    def events() -> Response:
        def generate() -> Iterator[str]:
            for number in range(3):
                yield f"id: {number}\ndata: {json.dumps({'n': number, 't': time.time()})}\n\n"
                time.sleep(0.5)

        return Response(stream_with_context(generate()), mimetype="text/event-stream",
                        headers={"Cache-Control": "no-cache"})

    @app.get("/page")
    def page() -> Response:
        name = request.args.get("name", "")
        html = ('<!DOCTYPE html><html lang="en"><head><title>Echo</title></head>'
                f'<body><main class="page"><p data-testid="echo">{len(name)}</p></main></body>'
                '</html>')
        return Response(html, mimetype="text/html")

    return app


class BrowserLikeTransport(httpx.HTTPTransport):
    """Sends a request again, once, when a kept-alive connection was closed under it before
    any answer came, as browsers do: a server may drop an idle connection at any moment, and
    the race (seen once in a loaded CI run) says nothing about the code under test."""

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        try:
            return super().handle_request(request)
        except httpx.RemoteProtocolError as exc:
            if "without sending a response" not in str(exc):
                raise
            return super().handle_request(request)


@dataclass
class Platform:
    home: Path
    processes: dict[str, ServiceProcess]
    echo_url: str
    admin_password: str = field(default="")

    @property
    def nexus(self) -> str:
        return self.processes["nexus"].url

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.nexus, follow_redirects=False, timeout=30,
                            transport=BrowserLikeTransport())

    def login(self, username: str, password: str = PASSWORD,
              client: httpx.Client | None = None, next_path: str = "/") -> httpx.Client:
        """Sign in through Nexus's login page, as a browser would (without JavaScript)."""
        client = client or self.client()
        html = {"Accept": "text/html"}
        start = client.get("/login", params={"next": next_path})
        assert start.status_code == 302, start.text
        auth_url = start.headers["Location"]
        assert auth_url.startswith("/keycloak/realms/hivematrix/protocol/openid-connect/auth?")
        page = client.get(auth_url, headers=html)
        assert page.status_code == 200, page.headers.get("location")
        token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
        action = re.search(r'<form class="form" method="post" action="([^"]+)"', page.text)
        assert token and action
        answer = client.post(action.group(1).replace("&amp;", "&"), headers=html, data={
            "csrf_token": token.group(1), "step": "sign_in", "username": username,
            "password": password})
        assert answer.status_code == 302, answer.text
        callback = answer.headers["Location"]
        assert callback.startswith(f"{self.nexus}/keycloak-callback?")
        done = client.get(callback)
        assert done.status_code == 302, done.text
        assert done.headers["Location"] == next_path
        return client


def sign_in(page: Any, nexus: str, path: str, username: str = "tom") -> None:
    """Open ``path`` through Nexus in a browser page and sign in on the page it sends to."""
    page.goto(f"{nexus}{path}")
    page.fill("#username", username)
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{nexus}{path}")


def _write_services(home: Path, ports: dict[str, int], echo_url: str) -> None:
    services: dict[str, Any] = {
        name: {"url": f"http://127.0.0.1:{port}", "port": port, "title": name.title(),
               "visible": name == "template", "admin_only": False,
               "billing_or_admin_only": False}
        for name, port in ports.items()}
    echo_port = int(echo_url.rsplit(":", 1)[1])
    services["echo"] = {"url": echo_url, "port": echo_port, "title": "Echo", "visible": True,
                        "admin_only": False, "billing_or_admin_only": False}
    services["vault"] = {"url": echo_url, "port": echo_port, "title": "Vault", "visible": True,
                         "admin_only": True, "billing_or_admin_only": False}
    services["books"] = {"url": echo_url, "port": echo_port, "title": "Books", "visible": True,
                         "admin_only": False, "billing_or_admin_only": True}
    services["beacon"] = {"url": echo_url, "port": echo_port, "title": "Beacon", "visible": True,
                          "admin_only": False, "billing_or_admin_only": False}
    (home / "services.json").write_text(json.dumps(services))


def start_platform(home: Path, echo_url: str, nexus_env: dict[str, str] | None = None,
                   core_env: dict[str, str] | None = None) -> Platform:
    ports = {name: free_port() for name in ("identity", "core", "nexus", "template")}
    _write_services(home, ports, echo_url)
    env = {"HIVEMATRIX_HOME": str(home)}
    result = CliRunner().invoke(main, ["init"], env=env)
    assert result.exit_code == 0, result.output
    identity_url = f"http://127.0.0.1:{ports['identity']}"
    envs = {
        "identity": {"IDENTITY_REDIRECT_URIS": f"http://127.0.0.1:{ports['nexus']}/keycloak-callback"},
        "core": {"OIDC_ISSUER_URL": f"{identity_url}/realms/hivematrix", **(core_env or {})},
        # Tests sign in far more often than people do.
        "nexus": {"KEYCLOAK_BACKEND_URL": identity_url, "NEXUS_LOGIN_RATE_LIMIT": "600/minute",
                  **(nexus_env or {})},
        "template": {},
    }
    processes: dict[str, ServiceProcess] = {}
    try:
        for name in ("identity", "core", "template", "nexus"):
            processes[name] = ServiceProcess(name, home, port=ports[name], env=envs[name]).start()
    except BaseException:
        for process in processes.values():
            process.stop()
        raise
    create_users(home)
    return Platform(home, processes, echo_url)


#: Settings every platform of real processes needs beside its own (identity's redirect, Core's
#: issuer, Nexus's identity provider); filled in by :func:`running_platform`.
FRAMEWORK = ("identity", "core")


@contextmanager
def running_platform(home: Path, services: Sequence[str], *,
                     env: Mapping[str, Mapping[str, str]] | None = None,
                     visible: Sequence[str] = ()) -> Iterator[Platform]:
    """Identity, Core, ``services`` and Nexus as real processes on free ports in ``home``
    (initialised by ``hivematrix init``), with the test users; stopped on exit.

    :param env: each service's own settings, beside the ones the platform needs.
    :param visible: the services shown in Nexus's side navigation.
    """
    names = (*FRAMEWORK, *services, "nexus")
    ports = {name: free_port() for name in names}
    registry: dict[str, dict[str, Any]] = {
        name: {"url": f"http://127.0.0.1:{port}", "port": port, "title": name.title(),
               "visible": name in visible, "admin_only": False, "billing_or_admin_only": False}
        for name, port in ports.items()}
    (home / "services.json").write_text(json.dumps(registry))
    result = CliRunner().invoke(main, ["init"], env={"HIVEMATRIX_HOME": str(home)})
    assert result.exit_code == 0, result.output
    identity_url = registry["identity"]["url"]
    envs: dict[str, dict[str, str]] = {
        "identity": {"IDENTITY_REDIRECT_URIS": f"{registry['nexus']['url']}/keycloak-callback"},
        "core": {"OIDC_ISSUER_URL": f"{identity_url}/realms/hivematrix"},
        "nexus": {"KEYCLOAK_BACKEND_URL": identity_url, "NEXUS_LOGIN_RATE_LIMIT": "600/minute"},
    }
    for name, values in (env or {}).items():
        envs.setdefault(name, {}).update(values)
    processes: dict[str, ServiceProcess] = {}
    try:
        for name in names:
            processes[name] = ServiceProcess(name, home, port=ports[name],
                                             env=envs.get(name, {})).start()
        create_users(home)
        yield Platform(home, processes, echo_url="")
    finally:
        for process in reversed(processes.values()):
            process.stop()


def create_users(home: Path) -> None:
    """The test users (:data:`USERS`, password :data:`PASSWORD`) in identity's database."""
    database = Database(f"sqlite:///{home}/identity/identity.db")
    with database.transaction() as session:
        for username, group in USERS.items():
            accounts.create_user(session, accounts.NewUser(
                username=username, password=PASSWORD, name=username.title(), groups=[group],
                email=f"{username}@example.test", must_change_password=False))
    database.dispose()


@pytest.fixture(scope="module")
def echo() -> Iterator[str]:
    with serve_wsgi(echo_app()) as url:
        yield url


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory, echo: str) -> Iterator[Platform]:
    found = start_platform(tmp_path_factory.mktemp("platform"), echo)
    yield found
    for process in found.processes.values():
        process.stop()
