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
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from flask import Flask
from werkzeug.datastructures import EnvironHeaders
from werkzeug.http import parse_cookie
from werkzeug.middleware.proxy_fix import ProxyFix

from hivematrix.common.auth import InvalidToken
from hivematrix.common.logging import CORRELATION_HEADER, log_request, valid_correlation_id
from hivematrix.common.security import apply_security_headers
from hivematrix.nexus import display, proxy, signin
from hivematrix.nexus.core_client import CoreUnavailable
from hivematrix.nexus.directory import ServiceDirectory, ServiceEntry
from hivematrix.nexus.gateway import OWN_COOKIES, UPSTREAM_FAILED, relay
from hivematrix.nexus.hooks import composable, dress
from hivematrix.nexus.sessions import COOKIE_NAME, ServerSessionInterface, StoreUnavailable
from hivematrix.nexus.upstream import Backend, UpstreamBroken, UpstreamFailed

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

#: The endpoint name the lane's requests are counted under, as the app counts its own.
ENDPOINT = "gateway.service_proxy"
#: Kept as they are when the decoded path is put back into a request line (RFC 3986 pchar and
#: "/"); everything else is percent-encoded, as urllib3 does for the app's requests.
PATH_SAFE = "/!$&'()*+,;=:@-._~%"


@dataclass(frozen=True)
class Pass:
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
        sid = parse_cookie(environ).get(COOKIE_NAME) if "HTTP_COOKIE" in environ else None
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
        correlation_id = incoming if valid_correlation_id(incoming) else uuid.uuid4().hex
        forwarding = proxy.Forwarding(
            service=entry.name, client_ip=str(environ.get("REMOTE_ADDR", "")),
            proto=str(environ.get("wsgi.url_scheme", "http")),
            host=str(environ.get("HTTP_HOST") or environ.get("SERVER_NAME", "")),
            port=str(environ.get("SERVER_PORT", "")), correlation_id=correlation_id,
            token=admitted.user.token)
        headers = proxy.request_headers(EnvironHeaders(environ).items(), forwarding,
                                        OWN_COOKIES, None)
        target = "/" + quote(admitted.path, safe=PATH_SAFE)
        if environ.get("QUERY_STRING"):
            target = f"{target}?{environ['QUERY_STRING']}"
        # Server-sent events may stay quiet for minutes between events.
        read_timeout = (None if "text/event-stream" in environ.get("HTTP_ACCEPT", "")
                        else self.read_timeout)
        try:
            upstream = self.backend(entry.url).get(target, headers, read_timeout)
            response = relay(upstream, entry.name, entry.url, method=method,
                             compose_limit=self.compose_limit)
        except UpstreamFailed as exc:
            environ[UPSTREAM_FAILED] = exc
            return self.inner(environ, start_response)
        except UpstreamBroken:
            return self.inner(environ, start_response)  # the app tries once more, and says so
        claims = admitted.user.claims
        if composable(response):  # the navigation only for pages, not for every asset
            response = dress(response, claims, admitted.prefs,
                             self.directory.navigation(claims.get("permission_level")),
                             entry.name, app=self.app)
        response.headers[CORRELATION_HEADER] = correlation_id
        apply_security_headers(response.headers,
                               secure=environ.get("wsgi.url_scheme") == "https",
                               authorized="HTTP_AUTHORIZATION" in environ)
        seconds = time.perf_counter() - started
        self.metrics.observe(method, ENDPOINT, response.status_code, seconds)
        log_request(method, str(environ.get("PATH_INFO", "")), response.status_code, seconds,
                    correlation_id=correlation_id, user=str(claims.get("sub")))
        return response(environ, start_response)


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

