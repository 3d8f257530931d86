"""What Nexus costs as a gateway, against nginx in front of the same backends, in one run.

Run: .venv/bin/python bench/gateway.py [--seconds S] [--rounds R] [--connections C] [--warmup W]

A whole platform is started in a temporary HIVEMATRIX_HOME (identity, Core and template
under gunicorn, as ``hivematrix run`` starts them: 1 worker, 8 threads; Nexus under granian
with ``--nexus-workers`` workers of 8 threads), plus a tiny
WSGI backend of this script's own ("benchpage", gunicorn gthread, 1 worker, 8 threads) that
answers every path with the same ~100 KB HTML page (a table of rows). nginx (Debian's package,
installed with apt-get when missing) is started with a generated config in front of the same
two backends, with upstream keep-alive.

Two requests, each measured three ways (direct to the backend, through Nexus, through nginx)
with wrk at a fixed number of connections for S seconds (after an unreported warm-up), all six
once per round for R rounds; the figures are medians, and each ratio is taken within a round
(so a slow spell of the machine weighs on both sides) and given with its range:

- ``json``: the template's ``GET /api/data``, which verifies an RS256 JWT and reads SQLite.
  Direct and via nginx the client sends ``Authorization: Bearer <jwt>`` (a JWT from signing in
  to identity with the code flow and exchanging it at Core); via Nexus it sends the
  ``hm_session`` cookie of a browser sign-in and Nexus adds the Bearer token itself.
- ``html``: benchpage's 100 KB page; through Nexus it is read whole and composed (stylesheet,
  side navigation and footer injected).

Figures: requests/s and p50/p99 latency per request kind and path; the throughput ratios
Nexus/nginx and Nexus/direct; CPU time the gateway process spent per request; Nexus's resident
memory before and after the load; the status codes and warnings Nexus logged, and how often
Core was asked to validate the session's token meanwhile. Then the per-page cost of
``hivematrix.nexus.compose.compose()`` on the same 100 KB page with Nexus's real chrome
fragments (median of many in-process runs), against the reference of copying the page, and
the cost of rendering those fragments with ``render_chrome()``.

The load generator runs on the same cores as the servers it measures; on a small machine the
absolute figures are therefore a floor, and the ratios are what to compare.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import json
import os
import re
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
from click.testing import CliRunner

from hivematrix.cli import main as hivematrix_cli
from hivematrix.common.db import Database
from hivematrix.common.testing import ServiceProcess, free_port
from hivematrix.identity import accounts

USERNAME, PASSWORD = "bench", "a long benchmark passphrase"
REALM = "/realms/hivematrix"
PAGE_BYTES = 100 * 1024
KINDS = ("json", "html")
PATHS = ("direct", "nexus", "nginx")
#: wrk reports these from Lua when the run is over (latencies in microseconds).
WRK_DONE = """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "HMBENCH %.0f %.0f %.1f %.1f %.0f %.0f %.0f %.0f %.0f\\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.status, e.connect, e.read, e.write, e.timeout))
end
"""

BENCHPAGE_APP = '''"""Every path answers with one fixed HTML page (written by bench/gateway.py)."""
from pathlib import Path

PAGE = (Path(__file__).parent / "page.html").read_bytes()
HEADERS = [("Content-Type", "text/html; charset=utf-8"), ("Content-Length", str(len(PAGE)))]


def app(environ, start_response):
    start_response("200 OK", list(HEADERS))
    return [PAGE]
'''

NGINX_CONF = """
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {prefix}/client_body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    upstream template {{ server {template}; keepalive 32; }}
    upstream benchpage {{ server {benchpage}; keepalive 32; }}
    server {{
        listen 127.0.0.1:{port};
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_set_header Host $host;
        proxy_set_header X-Forwarded-For $remote_addr;
        proxy_set_header X-Forwarded-Proto $scheme;
        # Room for the 100 KB page in memory, never a temp file.
        proxy_buffer_size 16k;
        proxy_buffers 32 8k;
        proxy_max_temp_file_size 0;
        location /template/ {{ proxy_pass http://template/; }}
        location /benchpage/ {{ proxy_pass http://benchpage/; }}
    }}
}}
"""


# --- tools -----------------------------------------------------------------------------------

_APT_UPDATED: list[bool] = []  # apt-get update runs once per run

def ensure_debian_package(command: str, package: str) -> str | None:
    """The path of ``command``, installing Debian's ``package`` first when it is missing."""
    found = shutil.which(command)
    if found:
        return found
    if shutil.which("apt-get") is None or os.geteuid() != 0:
        print(f"{command} is missing and cannot be installed here (needs root and apt-get)")
        return None
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    steps = [["apt-get", "install", "-y", "-qq", package]]
    if not _APT_UPDATED:
        steps.insert(0, ["apt-get", "update", "-qq"])
        _APT_UPDATED.append(True)
    for step in steps:
        print(f"{command} is missing: running {' '.join(step)}", flush=True)
        result = subprocess.run(step, env=env, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            print(f"  failed ({result.returncode}): {result.stderr.strip()[-500:]}")
            return None
    return shutil.which(command)


def page_html() -> bytes:
    """A realistic ~100 KB page: a head with assets, a header, and a table of ticket rows."""
    head = ('<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            '<title>Tickets - Bench</title>\n'
            '<link rel="stylesheet" href="/benchpage/static/page.css">\n'
            '<script src="/benchpage/static/page.js" defer></script>\n</head>\n'
            '<body>\n<header class="page-header"><h1>Open tickets</h1>'
            '<form class="search" method="get" action="/benchpage/"><input type="search" '
            'name="q" placeholder="Search tickets"></form></header>\n<main class="page">\n'
            '<table class="table"><thead><tr><th>#</th><th>Subject</th><th>Client</th>'
            '<th>Status</th><th>Updated</th></tr></thead>\n<tbody>\n')
    tail = ('</tbody></table>\n</main>\n<footer class="page-footer">Bench</footer>\n'
            '</body>\n</html>\n')
    statuses = ("open", "waiting", "in progress", "resolved")
    rows: list[str] = []
    size = len(head) + len(tail)
    number = 0
    while size < PAGE_BYTES:
        number += 1
        row = (f'<tr class="row row--{statuses[number % 4].replace(" ", "-")}">'
               f'<td class="num">{10000 + number}</td>'
               f'<td><a href="/benchpage/tickets/{10000 + number}">Printer on floor '
               f'{number % 7} &amp; scanner {number % 13} not responding</a></td>'
               f'<td>Client {number % 40:02d} Ltd</td><td><span class="badge">'
               f'{statuses[number % 4]}</span></td>'
               f'<td><time datetime="2024-05-{number % 28 + 1:02d}T10:{number % 60:02d}:00Z">'
               f'May {number % 28 + 1}</time></td></tr>\n')
        rows.append(row)
        size += len(row)
    return (head + "".join(rows) + tail).encode()


# --- processes -------------------------------------------------------------------------------

@dataclass
class Processes:
    """Everything started, stopped in reverse order however the run ends."""

    services: dict[str, ServiceProcess] = field(default_factory=dict)
    others: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def popen(self, name: str, argv: list[str], log: Path, **kwargs: Any) -> None:
        with open(log, "ab") as out:
            self.others[name] = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT,
                                                 start_new_session=True, **kwargs)

    def stop(self) -> None:
        for name, process in reversed(list(self.others.items())):
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM if name != "nginx" else signal.SIGQUIT)
                try:
                    process.wait(15)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait()
        for service in reversed(list(self.services.values())):
            service.stop()


def wait_healthy(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{url} exited early:\n{log.read_text(errors='replace')}")
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer:\n{log.read_text(errors='replace')}")


def control_socket_off() -> list[str]:
    """gunicorn 27 and later open a control socket in ~/.gunicorn unless told not to."""
    from importlib.metadata import version

    major = int(version("gunicorn").split(".")[0])
    return ["--no-control-socket"] if major >= 27 else []


def start_benchpage(work: Path, procs: Processes) -> str:
    folder = work / "benchpage"
    folder.mkdir()
    (folder / "page.html").write_bytes(page_html())
    (folder / "benchpage_app.py").write_text(BENCHPAGE_APP)
    port = free_port()
    log = work / "benchpage.log"
    procs.popen("benchpage", [sys.executable, "-m", "gunicorn", "-k", "gthread", "--threads",
                              "8", "-w", "1", "-b", f"127.0.0.1:{port}", "--chdir", str(folder),
                              *control_socket_off(), "benchpage_app:app"], log, cwd=folder)
    url = f"http://127.0.0.1:{port}"
    wait_healthy(url + "/", procs.others["benchpage"], log)
    return url


def start_nginx(nginx: str, work: Path, procs: Processes, upstreams: dict[str, str]) -> str:
    prefix = work / "nginx"
    prefix.mkdir()
    port = free_port()
    conf = prefix / "nginx.conf"
    conf.write_text(NGINX_CONF.format(prefix=prefix, port=port, **{
        name: url.removeprefix("http://") for name, url in upstreams.items()}))
    log = prefix / "stdout.log"
    procs.popen("nginx", [nginx, "-e", str(prefix / "error.log"), "-p", str(prefix), "-c",
                          str(conf), "-g", "daemon off;"], log)
    url = f"http://127.0.0.1:{port}"
    wait_healthy(url + "/", procs.others["nginx"], prefix / "error.log")
    return url


def start_platform(home: Path, procs: Processes, benchpage_url: str,
                   nexus_workers: int) -> dict[str, str]:
    """identity, Core, template and Nexus in ``home``, with a user to sign in as."""
    ports = {name: free_port() for name in ("identity", "core", "template", "nexus")}
    urls = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
    urls["benchpage"] = benchpage_url
    services = {name: {"url": url, "port": int(url.rsplit(":", 1)[1]), "title": name.title(),
                       "visible": name in ("template", "benchpage"), "admin_only": False,
                       "billing_or_admin_only": False} for name, url in urls.items()}
    (home / "services.json").write_text(json.dumps(services))
    result = CliRunner().invoke(hivematrix_cli, ["init"], env={"HIVEMATRIX_HOME": str(home)})
    if result.exit_code != 0:
        raise RuntimeError(f"hivematrix init failed: {result.output}")
    envs = {
        "identity": {"IDENTITY_REDIRECT_URIS": f"{urls['nexus']}/keycloak-callback"},
        "core": {"OIDC_ISSUER_URL": f"{urls['identity']}{REALM}"},
        # The template limits each user to 600 requests a minute; a load test is one user.
        "template": {"RATELIMIT_DEFAULT": "100000000 per minute"},
        "nexus": {"KEYCLOAK_BACKEND_URL": urls["identity"]},
    }
    for name in ("identity", "core", "template", "nexus"):
        args = ("--workers", str(nexus_workers)) if name == "nexus" else ()
        # No Helm runs here, so nothing ships logs to it (its retries would only add noise).
        env = {**envs[name], "LOG_SHIPPING": "false"}
        procs.services[name] = ServiceProcess(name, home, port=ports[name], env=env,
                                              args=args).start()
    database = Database(f"sqlite:///{home}/identity/identity.db")
    with database.transaction() as session:
        accounts.create_user(session, accounts.NewUser(
            username=USERNAME, password=PASSWORD, name="Bench User", groups=["technicians"],
            email="bench@example.test", must_change_password=False))
    database.dispose()
    return urls


# --- signing in ------------------------------------------------------------------------------

def _form(page: str, pattern: str) -> str:
    found = re.search(pattern, page)
    if not found:
        raise RuntimeError(f"sign-in page without {pattern!r}:\n{page[:2000]}")
    return found.group(1)


def nexus_session(nexus: str) -> str:
    """The ``hm_session`` cookie of a browser that signed in through Nexus."""
    html = {"Accept": "text/html"}
    with httpx.Client(base_url=nexus, follow_redirects=False, timeout=30) as browser:
        start = browser.get("/login", params={"next": "/"})
        page = browser.get(start.headers["Location"], headers=html)
        action = _form(page.text, r'<form class="form" method="post" action="([^"]+)"')
        answer = browser.post(action.replace("&amp;", "&"), headers=html, data={
            "csrf_token": _form(page.text, r'name="csrf_token" value="([^"]+)"'),
            "step": "sign_in", "username": USERNAME, "password": PASSWORD})
        if answer.status_code != 302:
            raise RuntimeError(f"Nexus sign-in refused: {answer.status_code} {answer.text}")
        done = browser.get(answer.headers["Location"])
        cookie = browser.cookies.get("hm_session")
        if done.status_code != 302 or not cookie:
            raise RuntimeError(f"Nexus callback failed: {done.status_code} {done.text}")
        return cookie


def core_jwt(home: Path, urls: dict[str, str]) -> str:
    """A HiveMatrix JWT: the code flow with PKCE at identity, then Core's token exchange."""
    redirect_uri = f"{urls['nexus']}/keycloak-callback"
    issuer = f"{urls['identity']}{REALM}"
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(
        hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    params = {"response_type": "code", "client_id": "core-client", "redirect_uri": redirect_uri,
              "scope": "openid profile email", "state": secrets.token_urlsafe(16),
              "nonce": secrets.token_urlsafe(16), "code_challenge": challenge,
              "code_challenge_method": "S256"}
    auth = f"{issuer}/protocol/openid-connect/auth"
    with httpx.Client(follow_redirects=False, headers={"Accept": "text/html"}) as browser:
        page = browser.get(auth, params=params)
        answer = browser.post(auth, params=params, data={
            "csrf_token": _form(page.text, r'name="csrf_token" value="([^"]+)"'),
            "step": "sign_in", "username": USERNAME, "password": PASSWORD})
    if answer.status_code != 302:
        raise RuntimeError(f"identity sign-in refused: {answer.status_code} {answer.text}")
    code = parse_qs(urlsplit(answer.headers["Location"]).query)["code"][0]
    config = json.loads((home / "configs" / "master_config.json").read_text())
    tokens = httpx.post(f"{issuer}/protocol/openid-connect/token",
                        auth=("core-client", config["keycloak"]["client_secret"]),
                        data={"grant_type": "authorization_code", "code": code,
                              "redirect_uri": redirect_uri, "code_verifier": verifier})
    tokens.raise_for_status()
    exchanged = httpx.post(f"{urls['core']}/api/token/exchange",
                           json={"access_token": tokens.json()["access_token"]})
    exchanged.raise_for_status()
    return str(exchanged.json()["token"])


# --- targets and checks ----------------------------------------------------------------------

@dataclass(frozen=True)
class Target:
    kind: str
    path: str
    url: str
    headers: dict[str, str]


def targets(urls: dict[str, str], nginx: str, jwt: str, cookie: str) -> list[Target]:
    bearer = {"Authorization": f"Bearer {jwt}", "Accept": "application/json"}
    session = {"Cookie": f"hm_session={cookie}", "Accept": "application/json"}
    html_bearer = {**bearer, "Accept": "text/html"}
    html_session = {**session, "Accept": "text/html"}
    return [
        Target("json", "direct", f"{urls['template']}/api/data", bearer),
        Target("json", "nexus", f"{urls['nexus']}/template/api/data", session),
        Target("json", "nginx", f"{nginx}/template/api/data", bearer),
        Target("html", "direct", f"{urls['benchpage']}/", html_bearer),
        Target("html", "nexus", f"{urls['nexus']}/benchpage/", html_session),
        Target("html", "nginx", f"{nginx}/benchpage/", html_bearer),
    ]


def check(target: Target) -> None:
    """Fail loudly unless ``target`` answers as it should."""
    answer = httpx.get(target.url, headers=target.headers, timeout=30, follow_redirects=False)
    problems = []
    if answer.status_code != 200:
        problems.append(f"status {answer.status_code}")
    elif target.kind == "json" and answer.json().get("caller") != "user":
        problems.append(f"unexpected JSON {answer.text[:200]}")
    elif target.kind == "html" and len(answer.content) < PAGE_BYTES:
        problems.append(f"only {len(answer.content)} bytes")
    if target.kind == "html" and target.path == "nexus" and "side-nav" not in answer.text:
        problems.append("the composed page has no side-nav")
    if problems:
        raise SystemExit(f"{target.kind} via {target.path} ({target.url}) is wrong: "
                         f"{'; '.join(problems)}\n{answer.text[:1000]}")


# --- load ------------------------------------------------------------------------------------

@dataclass
class Result:
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    errors: dict[str, int]

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def run_wrk(wrk: str, script: Path, target: Target, seconds: float, connections: int,
            threads: int) -> Result:
    argv = [wrk, "-t", str(threads), "-c", str(connections), "-d", f"{max(1, round(seconds))}s",
            "--timeout", "10s", "-s", str(script)]
    for name, value in target.headers.items():
        argv += ["-H", f"{name}: {value}"]
    output = subprocess.run([*argv, target.url], capture_output=True, text=True, check=True,
                            timeout=seconds + 60).stdout
    line = next((line for line in output.splitlines() if line.startswith("HMBENCH ")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no summary:\n{output}")
    requests, duration, p50, p99, status, connect, read, write, timeout = (
        float(part) for part in line.split()[1:])
    errors = {"non-2xx/3xx": int(status), "connect": int(connect), "read": int(read),
              "write": int(write), "timeout": int(timeout)}
    return Result(int(requests), duration / 1e6, p50 / 1000, p99 / 1000, errors)


def run_python(target: Target, seconds: float, connections: int) -> Result:
    """A threaded keep-alive client, for when wrk is unavailable (far slower than wrk)."""
    latencies: list[float] = []
    statuses: Counter[str] = Counter()
    lock = threading.Lock()
    deadline = time.perf_counter() + seconds

    def client() -> None:
        mine: list[float] = []
        seen: Counter[str] = Counter()
        with httpx.Client(headers=target.headers, timeout=10) as http:
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                try:
                    code = http.get(target.url).status_code
                    seen["non-2xx/3xx" if code >= 400 else "ok"] += 1
                except httpx.HTTPError:
                    seen["read"] += 1
                mine.append((time.perf_counter() - started) * 1000)
        with lock:
            latencies.extend(mine)
            statuses.update(seen)

    started = time.perf_counter()
    workers = [threading.Thread(target=client) for _ in range(connections)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    elapsed = time.perf_counter() - started
    cuts = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else [0.0] * 99
    errors = {key: value for key, value in statuses.items() if key != "ok"}
    return Result(len(latencies), elapsed, cuts[49], cuts[98], errors)


# --- what the processes spent ----------------------------------------------------------------

def process_tree(root: int) -> list[int]:
    """``root`` and its descendants, from /proc."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                stat = (entry / "stat").read_text()
                parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    tree, frontier = [root], [root]
    while frontier:
        children = [pid for pid, parent in parents.items() if parent in frontier]
        tree += children
        frontier = children
    return tree


def cpu_seconds(root: int) -> float:
    ticks = 0
    for pid in process_tree(root):
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


def rss_mib(root: int) -> float:
    kib = 0
    for pid in process_tree(root):
        with contextlib.suppress(OSError, ValueError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    kib += int(line.split()[1])
    return kib / 1024


class LogWindow:
    """The JSON lines a service logged since the last look."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = path.stat().st_size

    def new(self) -> list[dict[str, Any]]:
        with open(self.path, "rb") as stream:
            stream.seek(self.offset)
            data = stream.read()
        self.offset += len(data)
        entries = []
        for raw in data.splitlines():
            with contextlib.suppress(ValueError):
                entry = json.loads(raw)
                if isinstance(entry, dict):
                    entries.append(entry)
        return entries


@dataclass
class Logged:
    """What Nexus and Core logged while one figure was measured."""

    statuses: Counter[int]
    warnings: list[str]
    validations: int  # Core's POST /api/token/validate, which Nexus asks per session

    @classmethod
    def read(cls, nexus: LogWindow, core: LogWindow) -> Logged:
        statuses: Counter[int] = Counter()
        warnings = []
        for entry in nexus.new():
            if entry.get("message") == "request" and "status" in entry:
                statuses[int(entry["status"])] += 1
            elif str(entry.get("level", "")).upper() not in ("INFO", "DEBUG"):
                warnings.append(f"{entry.get('level')}: {entry.get('message')}")
        validations = sum(1 for entry in core.new() if entry.get("message") == "request"
                          and entry.get("path") == "/api/token/validate")
        return cls(statuses, warnings, validations)


# --- composition cost ------------------------------------------------------------------------

def real_chrome() -> Any:
    """Nexus's own chrome for a signed-in user with eight services in the navigation."""
    from flask import Flask

    import hivematrix.nexus
    from hivematrix.nexus.chrome import new_nonce, render_chrome
    from hivematrix.nexus.directory import ServiceEntry

    app = Flask("bench", template_folder=str(Path(hivematrix.nexus.__file__).parent / "templates"))
    names = ("codex", "beacon", "ledger", "knowledgetree", "brainhair", "helm", "template",
             "benchpage")
    services = [ServiceEntry(name=name, url=f"http://127.0.0.1:{5000 + index}",
                             title=name.title(), visible=True, admin_only=False,
                             billing_or_admin_only=False, proxied=True)
                for index, name in enumerate(names)]
    user = {"sub": "user-bench", "name": "Bench User", "preferred_username": USERNAME,
            "permission_level": "technician"}
    with app.test_request_context("/benchpage/"):
        def render() -> Any:
            return render_chrome(nonce=new_nonce(), user=user, services=services,
                                 active="benchpage", theme="light", color_theme="purple")
        chrome = render()
        render_us = median_us(render, 300)
    return chrome, render_us


def median_us(call: Callable[[], object], runs: int) -> float:
    for _ in range(max(5, runs // 20)):
        call()
    samples = []
    for _ in range(runs):
        started = time.perf_counter_ns()
        call()
        samples.append((time.perf_counter_ns() - started) / 1000)
    return statistics.median(samples)


def composition_cost() -> None:
    from hivematrix.nexus.compose import compose

    page = page_html()
    chrome, render_us = real_chrome()
    fragments = sum(len(part.encode()) for part in (chrome.head, chrome.body_start,
                                                    chrome.body_end))
    copy_us = median_us(lambda: bytes(bytearray(page)), 2000)
    compose_us = median_us(lambda: compose(page, chrome), 2000)
    composed = compose(page, chrome)
    if b"side-nav" not in composed:
        raise SystemExit("compose() did not inject the side navigation")
    print(f"\nHTML injection per {len(page) / 1024:.0f} KB page "
          f"(Nexus's real chrome, {fragments:,} bytes of fragments; median, in-process):")
    print(f"  reference: copy the page            {copy_us:9.1f} us")
    print(f"  compose(page, chrome)               {compose_us:9.1f} us")
    print(f"  render_chrome() (Jinja, per page)   {render_us:9.1f} us")


# --- the run ---------------------------------------------------------------------------------

@dataclass
class Measured:
    result: Result
    gateway_cpu_us: float | None  # CPU of the gateway process per request
    logged: Logged


Rounds = list[dict[tuple[str, str], Measured]]


def measure_all(found: list[Target], load: Callable[[Target, float], Result],
                warmup: float, seconds: float, gateways: dict[str, int],
                logs: tuple[LogWindow, LogWindow], rounds: int) -> Rounds:
    """Every target once per round, rounds one after the other, so a slow spell of the
    machine weighs on all paths alike and the ratios are taken within a round."""
    measured: Rounds = []
    for number in range(1, rounds + 1):
        this_round: dict[tuple[str, str], Measured] = {}
        for target in found:
            load(target, warmup)
            gateway = gateways.get(target.path)
            before = cpu_seconds(gateway) if gateway else 0.0
            Logged.read(*logs)  # skip the warm-up's lines
            result = load(target, seconds)
            logged = Logged.read(*logs)
            cpu = (cpu_seconds(gateway) - before) / result.requests * 1e6 \
                if gateway and result.requests else None
            this_round[(target.kind, target.path)] = Measured(result, cpu, logged)
            print(f"  round {number}: {target.kind:<4} via {target.path:<6} "
                  f"{result.rate:9,.0f} req/s", flush=True)
        measured.append(this_round)
    return measured


def median_round(rounds: Rounds, key: tuple[str, str]) -> Measured:
    """The measurement of ``key`` with the median rate over the rounds."""
    ordered = sorted((item[key] for item in rounds), key=lambda m: m.result.rate)
    return ordered[len(ordered) // 2]


def report(rounds: Rounds) -> None:
    measured = {key: median_round(rounds, key) for key in rounds[0]}
    print(f"\nmedian of {len(rounds)} rounds per figure:")
    print(f"{'request':<24} {'path':<7} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} "
          f"{'gateway CPU/req':>16}  errors")
    labels = {"json": "json GET /api/data", "html": f"html {PAGE_BYTES // 1024} KB page"}
    for kind in KINDS:
        for path in PATHS:
            item = measured[(kind, path)]
            result = item.result
            cpu = f"{item.gateway_cpu_us:,.0f} us" if item.gateway_cpu_us is not None else "-"
            errors = ", ".join(f"{k} {v}" for k, v in result.errors.items() if v) or "none"
            print(f"{labels[kind]:<24} {path:<7} {result.rate:>9,.0f} {result.p50_ms:>8.2f} "
                  f"{result.p99_ms:>8.2f} {cpu:>16}  {errors}")
    print("\nthroughput ratios, within each round (median, and the range over the rounds):")
    for kind in KINDS:
        def ratio(top: str, bottom: str, kind: str = kind) -> str:
            values = sorted(item[(kind, top)].result.rate / item[(kind, bottom)].result.rate
                            for item in rounds if item[(kind, bottom)].result.rate)
            if not values:
                return "-"
            return (f"{values[len(values) // 2]:5.2f} ({values[0]:.2f}-{values[-1]:.2f})"
                    if len(values) > 1 else f"{values[0]:5.2f}")
        print(f"  {kind:<4}  Nexus/nginx {ratio('nexus', 'nginx')}   "
              f"Nexus/direct {ratio('nexus', 'direct')}   nginx/direct {ratio('nginx', 'direct')}")
    print("\nwhat Nexus and Core logged while Nexus was measured:")
    for kind in KINDS:
        item = measured[(kind, "nexus")]
        listed = ", ".join(f"{code}: {count:,}"
                           for code, count in sorted(item.logged.statuses.items()))
        print(f"  {kind:<4}  Nexus answered {listed or 'nothing'} (the load generator counted "
              f"{item.result.requests:,}; Nexus also logs requests in flight when it stops)")
        print(f"        Core validated a token {item.logged.validations:,} times for Nexus "
              f"({item.logged.validations / item.result.seconds:.1f}/s, one session)")
        for line in item.logged.warnings[:5]:
            print(f"        Nexus logged {line}")
        if len(item.logged.warnings) > 5:
            print(f"        ... {len(item.logged.warnings) - 5} more warnings")


def machine() -> None:
    usable = len(os.sched_getaffinity(0))
    print(f"machine: {os.cpu_count()} CPUs ({usable} usable by this process); the load "
          "generator shares these cores with every server measured")


def run(args: argparse.Namespace, work: Path, procs: Processes) -> None:
    nginx = ensure_debian_package("nginx", "nginx")
    if nginx is None:
        raise SystemExit("nginx is required (Debian package 'nginx') and could not be installed")
    wrk = ensure_debian_package("wrk", "wrk")
    home = work / "home"
    home.mkdir()
    started = time.perf_counter()
    benchpage = start_benchpage(work, procs)
    urls = start_platform(home, procs, benchpage, args.nexus_workers)
    nginx_url = start_nginx(nginx, work, procs, {"template": urls["template"],
                                                 "benchpage": benchpage})
    found = targets(urls, nginx_url, core_jwt(home, urls), nexus_session(urls["nexus"]))
    for target in found:
        check(target)
    print(f"platform up and every path checked in {time.perf_counter() - started:.1f} s")
    machine()

    threads = max(1, min(args.connections, os.cpu_count() or 1))
    if wrk:
        script = work / "done.lua"
        script.write_text(WRK_DONE)
        print(f"load: wrk, {threads} threads, {args.connections} connections, "
              f"{args.seconds:.0f} s per figure after a {args.warmup:.0f} s warm-up")

        def load(target: Target, seconds: float) -> Result:
            return run_wrk(wrk, script, target, seconds, args.connections, threads)
    else:
        print(f"load: wrk UNAVAILABLE, falling back to a Python threaded client "
              f"({args.connections} connections); it saturates long before the servers do, "
              "so these figures understate every path")

        def load(target: Target, seconds: float) -> Result:
            return run_python(target, seconds, args.connections)

    nexus = procs.services["nexus"]
    gateways = {"nexus": nexus.process.pid if nexus.process else 0,
                "nginx": procs.others["nginx"].pid}
    rss_before = rss_mib(gateways["nexus"])
    logs = (LogWindow(nexus.log_path), LogWindow(procs.services["core"].log_path))
    measured = measure_all(found, load, args.warmup, args.seconds, gateways, logs, args.rounds)
    rss_after = rss_mib(gateways["nexus"])
    for target in found:
        check(target)  # still signed in, still composed
    report(measured)
    print(f"\nNexus resident memory (master + worker): {rss_before:.0f} MiB before the load, "
          f"{rss_after:.0f} MiB after")
    composition_cost()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=5.0, help="per figure")
    parser.add_argument("--rounds", type=int, default=3,
                        help="passes over every path (figures are medians)")
    parser.add_argument("--warmup", type=float, default=1.0, help="unreported, per figure")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--nexus-workers", type=int, default=os.cpu_count() or 1,
                        help="worker processes for Nexus (default: one per CPU; `hivematrix "
                             "run` starts one unless told otherwise)")
    args = parser.parse_args()
    # A plain `kill` should clean up too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    began = time.perf_counter()
    procs = Processes()
    work = Path(tempfile.mkdtemp(prefix="hm-bench-gateway-"))
    interrupted = False
    try:
        run(args, work, procs)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        procs.stop()
        shutil.rmtree(work, ignore_errors=True)
    if interrupted:
        print("\ninterrupted: every process stopped, temporary files removed", file=sys.stderr)
        sys.exit(130)
    print(f"\ntotal time {time.perf_counter() - began:.0f} s")


if __name__ == "__main__":
    main()
