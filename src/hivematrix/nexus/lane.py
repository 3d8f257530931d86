"""The fast lane: a signed-in browser's GET of a service page or asset, served without Flask.

Nearly every request through Nexus is a page or an asset fetched by a signed-in user. For
those, Flask's request cycle (routing, the session interface, a dozen kit hooks, response
objects) cost more CPU than the proxying itself. This WSGI middleware serves them with the
same rules and the same helpers (header rules, relay, composition, security headers, request
log and metrics), and hands everything else to the Flask app, which handles every case:
no session or an unknown one, a session due for a write (idle expiry, renewal), a session
Core no longer knows (asked as the app asks, through the same cached checker), a denied
service, a request body, a display link. A backend that fails is also handed
over, marked, so the app answers the error without trying the backend again.

Pages and small answers (read whole anyway) skip Werkzeug's response objects too: the lane
keeps their headers as a list and changes them as ``Headers.set`` would (:class:`Answer`),
and the tests hold every kind of answer to what the app sends. Streams, redirects, ``HEAD``
and bodiless statuses still go through :func:`relay`'s response object.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Iterable
from functools import lru_cache
from typing import TYPE_CHECKING, Any, NamedTuple
from urllib.parse import quote

from flask import Flask
from werkzeug.datastructures import Headers
from werkzeug.http import HTTP_STATUS_CODES, parse_cookie
from werkzeug.middleware.proxy_fix import ProxyFix

from hivematrix.common.auth import InvalidToken
from hivematrix.common.logging import CORRELATION_HEADER, valid_correlation_id
from hivematrix.common.logging import log as REQUEST_LOG
from hivematrix.common.security import apply_security_headers
from hivematrix.nexus import display, proxy, signin
from hivematrix.nexus.compose import is_composable
from hivematrix.nexus.core_client import CoreUnavailable
from hivematrix.nexus.directory import ServiceDirectory, ServiceEntry
from hivematrix.nexus.gateway import CHUNK, OWN_COOKIES, UPSTREAM_FAILED, read_exactly, relay
from hivematrix.nexus.hooks import (
    RANDOM,
    composable,
    dress,
    dressed,
    dressed_cache_control,
)
from hivematrix.nexus.sessions import COOKIE_NAME, ServerSessionInterface, StoreUnavailable
from hivematrix.nexus.upstream import (
    Backend,
    Unsendable,
    Upstream,
    UpstreamBroken,
    UpstreamFailed,
)

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

#: The endpoint name the lane's requests are counted under, as the app counts its own.
ENDPOINT = "gateway.service_proxy"
#: Kept as they are when the decoded path is put back into a request line (RFC 3986 pchar and
#: "/"); everything else is percent-encoded, as urllib3 does for the app's requests.
PATH_SAFE = "/!$&'()*+,;=:@-._~%"


class Pass(NamedTuple):
    """A request the lane serves: whose, to where."""

    entry: ServiceEntry
    path: str
    user: signin.SignedIn
    prefs: dict[str, str]


class FastLane:
    """WSGI middleware in front of Nexus's Flask app; see the module's docstring."""

    def __init__(self, app: Flask, inner: WSGIApplication) -> None:
        self.app, self.inner = app, inner
        config = app.config
        self.directory: ServiceDirectory = app.extensions["nexus.directory"]
        self.found: signin.Services = app.extensions["nexus"]
        assert isinstance(app.session_interface, ServerSessionInterface)
        self.sessions = app.session_interface
        self._backends: dict[str, Backend] = {}
        self._lock = threading.Lock()
        self.metrics = app.extensions["hivematrix.metrics"]
        self.renew_margin = float(config["NEXUS_RENEW_MARGIN_SECONDS"])
        self.compose_limit = int(config["NEXUS_COMPOSE_MAX_BYTES"])
        self.connect_timeout = float(config["NEXUS_CONNECT_TIMEOUT"])
        self.read_timeout = float(config["NEXUS_READ_TIMEOUT"])
        self._defaults: dict[tuple[bool, bool], list[tuple[str, str]]] = {}
        self._series: dict[tuple[str, int], tuple[Any, Any]] = {}

    def __call__(self, environ: WSGIEnvironment,
                 start_response: StartResponse) -> Iterable[bytes]:
        try:
            admitted = self.admit(environ)
        except (StoreUnavailable, CoreUnavailable):
            admitted = None  # the app says so properly (503)
        if admitted is None:
            return self.inner(environ, start_response)
        return self.serve(admitted, environ, start_response)

    def admit(self, environ: WSGIEnvironment) -> Pass | None:
        """The request's pass when the lane may serve it; ``None`` sends it to the app."""
        route = self._route(environ)
        if route is None:
            return None
        entry, path = route
        sid = session_cookie(environ.get("HTTP_COOKIE"))
        if not sid or len(sid) > 128:
            return None
        data = self.sessions.store.load(sid)
        if not data or self.sessions.needs_touch(data):
            return None
        token = data.get(signin.JWT)
        if not isinstance(token, str):
            return None
        try:
            claims = self.found.verifier.verify(token).claims
        except InvalidToken:
            return None
        if claims.get("type") == "service" or claims["exp"] - time.time() < self.renew_margin:
            return None
        if not self.found.checker.is_active(str(claims.get("jti")), token):
            return None
        if not entry.allows(claims.get("permission_level")):
            return None
        prefs = data.get(signin.PREFS)
        if not isinstance(prefs, dict) or prefs.get("sub") != claims.get("sub"):
            return None  # the app reads them once per sign-in
        return Pass(entry, path, signin.SignedIn(token, claims),
                    {"theme": prefs["theme"], "color_theme": prefs["color_theme"]})

    def _route(self, environ: WSGIEnvironment) -> tuple[ServiceEntry, str] | None:
        """A bodiless GET or HEAD of ``/<service>/<path>`` for a proxied service."""
        if environ.get("REQUEST_METHOD") not in ("GET", "HEAD"):
            return None
        if (environ.get("CONTENT_LENGTH") not in (None, "", "0")
                or "HTTP_TRANSFER_ENCODING" in environ):
            return None
        if display.TOKEN_PARAM in environ.get("QUERY_STRING", ""):
            return None
        # As Werkzeug decodes the path for the app's own routing.
        raw_path = str(environ.get("PATH_INFO", "")).encode("latin-1").decode("utf-8", "replace")
        service, slash, path = raw_path[1:].partition("/")
        entry = self.directory.get(service) if slash else None
        if entry is None or not entry.proxied:
            return None
        return entry, path

    def backend(self, url: str) -> Backend:
        """The kept-alive connections to a backend, by its URL."""
        found = self._backends.get(url)
        if found is None:
            with self._lock:
                found = self._backends.setdefault(
                    url, Backend(url, connect_timeout=self.connect_timeout))
        return found

    def serve(self, admitted: Pass, environ: WSGIEnvironment,
              start_response: StartResponse) -> Iterable[bytes]:
        started = time.perf_counter()
        entry, method = admitted.entry, str(environ["REQUEST_METHOD"])
        incoming = environ.get("HTTP_X_CORRELATION_ID", "")
        correlation_id = incoming if valid_correlation_id(incoming) else new_correlation_id()
        forwarding = proxy.Forwarding(
            service=entry.name, client_ip=str(environ.get("REMOTE_ADDR", "")),
            proto=str(environ.get("wsgi.url_scheme", "http")),
            host=str(environ.get("HTTP_HOST") or environ.get("SERVER_NAME", "")),
            port=str(environ.get("SERVER_PORT", "")), correlation_id=correlation_id,
            token=admitted.user.token)
        headers = proxy.request_headers(environ_headers(environ), forwarding, OWN_COOKIES, None)
        target = "/" + quote(admitted.path, safe=PATH_SAFE)
        if environ.get("QUERY_STRING"):
            target = f"{target}?{environ['QUERY_STRING']}"
        # Server-sent events may stay quiet for minutes between events.
        read_timeout = (None if "text/event-stream" in environ.get("HTTP_ACCEPT", "")
                        else self.read_timeout)
        try:
            upstream = self.backend(entry.url).get(target, headers, read_timeout)
            answer = self.whole(upstream, entry, method)
            if answer is None:
                response = relay(upstream, entry.name, entry.url, method=method,
                                 compose_limit=self.compose_limit)
        except UpstreamFailed as exc:
            environ[UPSTREAM_FAILED] = exc
            return self.inner(environ, start_response)
        except (UpstreamBroken, Unsendable):
            # The app tries once more and says so; a query it must encode is its to send.
            return self.inner(environ, start_response)
        claims = admitted.user.claims
        secure = environ.get("wsgi.url_scheme") == "https"
        authorized = "HTTP_AUTHORIZATION" in environ
        if answer is not None:
            status = answer.status
            if answer.composable:  # the navigation only for pages, not for every asset
                self.dress(answer, claims, admitted.prefs, entry.name)
            answer.replace(CORRELATION_HEADER, correlation_id)
            sent = answer.wsgi_headers(self._security_headers(secure, authorized))
        else:
            status = response.status_code
            if composable(response):
                response = dress(response, claims, admitted.prefs,
                                 self.directory.navigation(claims.get("permission_level")),
                                 entry.name, app=self.app)
            response.headers[CORRELATION_HEADER] = correlation_id
            apply_security_headers(response.headers, secure=secure, authorized=authorized)
        seconds = time.perf_counter() - started
        self.observe(method, status, seconds)
        log_served(method, str(environ.get("PATH_INFO", "")), status, seconds, correlation_id,
                   str(claims.get("sub")))
        if answer is None:
            return response(environ, start_response)
        start_response(status_line(status), sent)
        return [answer.body]  # a list: the server sends it in one piece, no iteration

    def whole(self, upstream: Upstream, entry: ServiceEntry, method: str) -> Answer | None:
        """The backend's answer read whole, when it is one the relay would read whole (an
        HTML page, a small answer of known size) and Werkzeug would send unchanged: then the
        lane needs no response object. ``None`` leaves the answer unread, for :func:`relay`.

        :raises UpstreamBroken: as :func:`relay`.
        """
        status = upstream.status
        if method != "GET" or status < 200 or status in (204, 304):
            return None  # Werkzeug sends these without a body, or without its headers
        headers = proxy.response_headers(upstream.header_items(), service=entry.name,
                                         backend_origin=entry.url, own_cookies=OWN_COOKIES)
        names = [name.lower() for name, _value in headers]
        if "location" in names or "content-location" in names:
            return None  # Werkzeug rewrites these (IRIs to URIs)
        content_type = upstream.header("Content-Type")
        length = upstream.header("Content-Length")
        known = length is not None and length.isdigit()
        if is_composable(content_type) and (
                length is None or (known and int(length) <= self.compose_limit)):
            try:
                body = upstream.read_all()  # composition works on the page itself
            except UpstreamBroken:
                upstream.finish(complete=False)
                raise
            upstream.finish(complete=True)
            kept = [index for index, name in enumerate(names) if name != "content-encoding"]
            if len(kept) < len(names):
                headers, names = [headers[i] for i in kept], [names[i] for i in kept]
        elif known and length is not None and int(length) <= CHUNK:
            body = read_exactly(upstream, int(length))
            upstream.finish(complete=True)
        else:
            return None  # streamed
        answer = Answer(status, headers, names, body)
        answer.replace("Content-Length", str(len(body)))
        return answer

    def dress(self, answer: Answer, claims: dict[str, Any], prefs: dict[str, str],
              active: str) -> None:
        """:func:`hooks.dress` for an :class:`Answer`."""
        answer.body, policy = dressed(
            answer.body, answer.first("content-type") or "",
            answer.first("content-security-policy"), claims, prefs,
            self.directory.navigation(claims.get("permission_level")), active, app=self.app)
        answer.replace("Content-Length", str(len(answer.body)))
        answer.replace("Content-Security-Policy", policy)
        answer.replace("Cache-Control", dressed_cache_control(answer.first("cache-control")))

    def observe(self, method: str, status: int, seconds: float) -> None:
        """``RequestMetrics.observe`` for the lane's endpoint, with the labelled series
        looked up once rather than per request."""
        key = (method, status)
        series = self._series.get(key)
        if series is None:
            metrics = self.metrics
            series = self._series[key] = (
                metrics.requests.labels(metrics.service, method, ENDPOINT, str(status)),
                metrics.latency.labels(metrics.service, method, ENDPOINT))
        series[0].inc()
        series[1].observe(seconds)

    def _security_headers(self, secure: bool, authorized: bool) -> list[tuple[str, str]]:
        """The kit's headers for every answer (those an answer lacks are added), as
        :func:`apply_security_headers` adds them to an empty set."""
        key = (secure, authorized)
        found = self._defaults.get(key)
        if found is None:
            empty = Headers()
            apply_security_headers(empty, secure=secure, authorized=authorized)
            found = self._defaults[key] = list(empty.items())
        return found


class Answer:
    """An answer read whole, its headers kept as a list (cheaper than Werkzeug's ``Headers``
    for the few changes the lane makes): status, headers, their lower-cased names, body."""

    __slots__ = ("body", "headers", "names", "replaced", "status")

    def __init__(self, status: int, headers: list[tuple[str, str]], names: list[str],
                 body: bytes) -> None:
        self.status, self.headers, self.names, self.body = status, headers, names, body
        #: By lower-cased name, in the order first replaced.
        self.replaced: dict[str, tuple[str, str]] = {}

    @property
    def composable(self) -> bool:
        """As :func:`hooks.composable` reads a response (its first ``Content-Type``)."""
        return is_composable(self.first("content-type"))

    def first(self, lower: str) -> str | None:
        """The first value of a header (by its lower-cased name), as ``Headers.get``."""
        if lower in self.replaced:
            return self.replaced[lower][1]
        for index, name in enumerate(self.names):
            if name == lower:
                return self.headers[index][1]
        return None

    def replace(self, name: str, value: str) -> None:
        """As ``Headers.set``: the first such header takes the value (and the name's
        spelling), later ones go; without one, it comes last."""
        self.replaced[name.lower()] = (name, value)  # (again: keeps the first one's place)

    def wsgi_headers(self, defaults: list[tuple[str, str]]) -> list[tuple[str, str]]:
        """The headers to send: the replacements applied, then the ``defaults`` the answer
        lacks (as :func:`apply_security_headers` adds them)."""
        replaced = self.replaced
        out: list[tuple[str, str]] = []
        placed: set[str] = set()
        for index, lower in enumerate(self.names):
            if lower in replaced:
                if lower not in placed:
                    out.append(replaced[lower])
                    placed.add(lower)
            else:
                out.append(self.headers[index])
        out.extend(pair for lower, pair in replaced.items() if lower not in placed)
        present = set(self.names) | replaced.keys()
        out.extend(pair for pair in defaults if pair[0].lower() not in present)
        return out


@lru_cache(maxsize=128)
def status_line(code: int) -> str:
    """The status line Werkzeug writes for a code."""
    phrase = HTTP_STATUS_CODES.get(code)
    return f"{code} {phrase.upper()}" if phrase else f"{code} UNKNOWN"


def log_served(method: str, path: str, status: int, seconds: float, correlation_id: str,
               user: str) -> None:
    """The kit's request line, with the fields ``log_request`` gives it, handed to the request
    logger's handlers directly: without the stack walk ``Logger.info`` makes to name its
    caller (this function is named instead), which is a sixth of the line's cost."""
    if REQUEST_LOG.isEnabledFor(logging.INFO):
        REQUEST_LOG.handle(REQUEST_LOG.makeRecord(
            REQUEST_LOG.name, logging.INFO, __file__, 0, "request", (), None, "log_served",
            {"method": method, "path": path, "status": status,
             "duration_ms": round(seconds * 1000, 2), "correlation_id": correlation_id,
             "user": user}))


#: One ``name=value`` pair of a Cookie header without quotes (see :func:`session_cookie`).
_COOKIE_PAIR = re.compile(r'[ \t]*([^ \t=";]+)(?:[ \t]*=[ \t]*([^ \t";]*))?[ \t]*')


def session_cookie(header: str | None) -> str | None:
    """The first ``hm_session`` value in a Cookie header, as Werkzeug's ``parse_cookie`` reads
    it: it skips pairs it cannot read, one ``;``-separated pair at a time when no value is
    quoted. Headers with quotes or non-ASCII bytes are left to ``parse_cookie`` itself, and
    ``None`` when it cannot read them at all."""
    if not header:
        return None
    if '"' in header or not header.isascii():
        try:
            return parse_cookie(header).get(COOKIE_NAME)
        except UnicodeDecodeError:
            return None  # (not UTF-8: the app says what it makes of that)
    for pair in header.split(";"):
        found = _COOKIE_PAIR.fullmatch(pair)
        if found is not None and found.group(1) == COOKIE_NAME:
            return found.group(2) or ""
    return None


def environ_headers(environ: WSGIEnvironment) -> list[tuple[str, str]]:
    """The request's headers as Werkzeug's ``EnvironHeaders`` lists them, with what each
    environ key stands for remembered (the same few keys come every time)."""
    names = _HEADER_NAMES
    found = []
    for key, value in environ.items():
        try:
            name = names[key]
        except KeyError:
            name = _header_name(key)
            if len(names) < 4096:
                names[key] = name
        if name is not None and (value or key[:5] == "HTTP_"):  # (CONTENT_* only when set)
            found.append((name, value))
    return found


def _header_name(key: str) -> str | None:
    """The header an environ key holds; ``None`` for the server's and the OS's variables."""
    if key.startswith("HTTP_") and key not in ("HTTP_CONTENT_TYPE", "HTTP_CONTENT_LENGTH"):
        return key[5:].replace("_", "-").title()
    if key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
        return key.replace("_", "-").title()
    return None


_HEADER_NAMES: dict[str, str | None] = {}


def new_correlation_id() -> str:
    """What ``uuid.uuid4().hex`` gives (version and variant bits set), from the pool of
    random bytes rather than an ``os.urandom`` call of its own."""
    raw = bytearray(RANDOM.take(16))
    raw[6] = raw[6] & 0x0F | 0x40
    raw[8] = raw[8] & 0x3F | 0x80
    return raw.hex()


def install(app: Flask) -> None:
    """Put the lane in front of the app, behind ProxyFix when the kit installed one (so the
    lane sees the client's address and scheme as the app does)."""
    outer: Any = app.wsgi_app
    if isinstance(outer, ProxyFix):
        outer.app = FastLane(app, outer.app)
    else:
        app.wsgi_app = FastLane(app, outer)  # type: ignore[method-assign]


def lane_of(app: Flask) -> FastLane | None:
    """The installed lane, if any (for tests and the benchmark)."""
    outer: Any = app.wsgi_app
    if isinstance(outer, ProxyFix):
        outer = outer.app
    return outer if isinstance(outer, FastLane) else None

