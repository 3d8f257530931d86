"""The reverse proxy: ``/<service>/<path>`` to the service, ``/keycloak/<path>`` to the IdP.

Bodies stream both ways (uploads, downloads, server-sent events) without being held in
memory; only HTML pages, which get Nexus's navigation and stylesheet, are read whole (up to
``NEXUS_COMPOSE_MAX_BYTES``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import urllib3
from flask import Blueprint, current_app, g, redirect, request, url_for
from urllib3.util import SKIP_HEADER
from werkzeug.wrappers import Response

from hivematrix.common import ratelimit
from hivematrix.common.db import get_session
from hivematrix.common.errors import problem, wants_html
from hivematrix.common.logging import current_correlation_id
from hivematrix.common.security import csrf_exempt
from hivematrix.common.service_client import ServiceCallError, ServiceClient
from hivematrix.nexus import display, proxy
from hivematrix.nexus.compose import is_composable
from hivematrix.nexus.directory import ServiceDirectory
from hivematrix.nexus.oidc import PUBLIC_PREFIX
from hivematrix.nexus.upstream import (
    Upstream,
    UpstreamBroken,
    UpstreamFailed,
    Urllib3Upstream,
    failure,
)

gw = Blueprint("gateway", __name__)
log = logging.getLogger("hivematrix.nexus.gateway")

METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
#: A request without a body may be sent again on a fresh connection when a kept-alive one
#: turns out to be closed; a streamed body cannot be replayed.
RETRY_ONCE = urllib3.Retry(total=1, connect=1, read=0, status=0, other=0, redirect=False)
#: Set in the WSGI environ by the fast lane (:mod:`hivematrix.nexus.lane`) to the
#: :class:`UpstreamFailed` of its request, so the view answers it without a second try.
UPSTREAM_FAILED = "hivematrix.nexus.upstream_failed"
CHUNK = 64 * 1024
#: Cookies that belong to Nexus and never reach a backend (nor may a backend set them).
OWN_COOKIES = frozenset({"hm_session", "hm_nexus_session", display.COOKIE})


def _pool() -> urllib3.PoolManager:
    pool: urllib3.PoolManager = current_app.extensions["nexus.http"]
    return pool


def _body() -> Iterator[bytes] | None:
    if request.content_length == 0 or (request.content_length is None
                                        and "chunked" not in request.headers.get(
                                            "Transfer-Encoding", "").lower()):
        return None
    stream = request.stream

    def chunks() -> Iterator[bytes]:
        while chunk := stream.read(CHUNK):
            yield chunk

    return chunks()


def _timeout() -> urllib3.Timeout:
    config = current_app.config
    # Server-sent events may stay quiet for minutes between events.
    read = None if "text/event-stream" in request.headers.get("Accept", "") \
        else config["NEXUS_READ_TIMEOUT"]
    return urllib3.Timeout(connect=config["NEXUS_CONNECT_TIMEOUT"], read=read)


def forward(service: str, base_url: str, path: str, token: str | None,
            extra_headers: list[tuple[str, str]] | None = None) -> Response:
    """Send the current request to ``base_url/path`` and relay the answer."""
    forwarding = proxy.Forwarding(
        service=service, client_ip=request.remote_addr or "", proto=request.scheme,
        host=request.host, port=str(request.environ.get("SERVER_PORT", "")),
        correlation_id=current_correlation_id() or "", token=token)
    headers = urllib3.HTTPHeaderDict()
    for name, value in proxy.request_headers(request.headers.items(), forwarding, OWN_COOKIES,
                                             request.headers.get("Content-Length")):
        headers.add(name, value)
    for name, value in extra_headers or []:
        headers.add(name, value)
    # Only what the browser sent: no urllib3 User-Agent, no "Accept-Encoding: identity".
    for name in ("User-Agent", "Accept-Encoding"):
        if name not in headers:
            headers[name] = SKIP_HEADER
    url = f"{base_url}/{path}"
    query = _query_without_display_token()
    if query:
        url = f"{url}?{query}"
    body = _body()
    failed = request.environ.get(UPSTREAM_FAILED)
    try:
        if failed is not None:  # the fast lane tried already: answer its error, not again
            raise failed
        try:
            upstream = _pool().urlopen(
                request.method, url, body=body, headers=headers, redirect=False,
                retries=RETRY_ONCE if body is None else False, timeout=_timeout(),
                preload_content=False, decode_content=False,
                chunked=body is not None and "Content-Length" not in headers)
        except urllib3.exceptions.HTTPError as exc:
            raise failure(exc) from exc
        return relay(Urllib3Upstream(upstream), service, base_url, method=request.method,
                     compose_limit=current_app.config["NEXUS_COMPOSE_MAX_BYTES"])
    except UpstreamFailed as exc:
        if exc.kind == "timeout":
            return problem(504, f"The service '{service}' did not answer in time.",
                           title="Gateway timeout")
        current_app.logger.warning(f"backend {service} unreachable at {base_url}: {exc}")
        return problem(502, f"The service '{service}' is not reachable right now.",
                       title="Service unavailable")
    except UpstreamBroken:
        return problem(502, f"The service '{service}' broke off its answer.",
                       title="Service unavailable")


def _query_without_display_token() -> str:
    """The query string as sent, minus a display token (backends never see it)."""
    query = request.query_string.decode("latin-1")
    if display.TOKEN_PARAM not in query:
        return query
    return "&".join(part for part in query.split("&")
                    if part.split("=", 1)[0] != display.TOKEN_PARAM)


def relay(upstream: Upstream, service: str, base_url: str, *, method: str,
          compose_limit: int) -> Response:
    """The backend's answer as a response: HTML pages read whole (to be composed), the rest
    streamed. Needs no request context (the fast lane calls it too).

    :raises UpstreamBroken: the backend broke off a page before it was whole.
    """
    headers = proxy.response_headers(upstream.header_items(), service=service,
                                     backend_origin=base_url, own_cookies=OWN_COOKIES)
    content_type = upstream.header("Content-Type")
    length = upstream.header("Content-Length")
    small = length is None or (length.isdigit() and int(length) <= compose_limit)
    if method != "HEAD" and is_composable(content_type) and small:
        try:
            body = upstream.read_all()  # composition works on the page itself
        except UpstreamBroken:
            upstream.finish(complete=False)
            raise
        upstream.finish(complete=True)
        headers = [(k, v) for k, v in headers if k.lower() != "content-encoding"]
        # Composed afterwards (hooks.dress), as every buffered HTML answer is.
        return Response(body, status=upstream.status, headers=headers)
    if method != "HEAD" and length is not None and length.isdigit() and int(length) <= CHUNK:
        # A small answer of known size (most API calls) in one piece: streaming it costs
        # the server more than the bytes are worth.
        body = read_exactly(upstream, int(length))
        upstream.finish(complete=True)
        response = Response(body, status=upstream.status, headers=headers)
        if content_type is None:
            del response.headers["Content-Type"]
        return response

    finished = False

    def stream() -> Iterator[bytes]:
        nonlocal finished
        try:
            # As they arrive, not gathered into fixed chunks: events must not wait.
            while chunk := upstream.read_some(CHUNK):
                yield chunk
            finished = True
        except UpstreamBroken:
            log.warning(f"backend {service} broke off a streamed answer")

    def done() -> None:
        upstream.finish(complete=finished)

    response = Response(stream(), status=upstream.status, headers=headers,
                        direct_passthrough=True)
    if length is not None:
        response.headers["Content-Length"] = length
    if content_type is None:
        del response.headers["Content-Type"]
    response.call_on_close(done)
    return response


def read_exactly(upstream: Upstream, size: int) -> bytes:
    """``size`` bytes of the body as sent. :raises UpstreamBroken: fewer came."""
    chunks, remaining = [], size
    try:
        while remaining > 0:
            chunk = upstream.read_some(remaining)
            if not chunk:
                raise UpstreamBroken(f"{remaining} of {size} bytes missing")
            chunks.append(chunk)
            remaining -= len(chunk)
    except UpstreamBroken:
        upstream.finish(complete=False)
        raise
    return b"".join(chunks)


def _sign_in_first() -> Response:
    if request.method in ("GET", "HEAD") and wants_html():
        return redirect(url_for("nexus.login", next=request.full_path.rstrip("?")))
    return problem(401, "Sign in first.", headers={"WWW-Authenticate": 'Bearer realm="hivematrix"'})


@gw.route("/<service>/", defaults={"path": ""}, methods=METHODS,
          provide_automatic_options=False)
@gw.route("/<service>/<path:path>", methods=METHODS, provide_automatic_options=False)
@csrf_exempt  # each backend checks its own forms
@ratelimit.exempt  # each backend limits per user; one page can mean dozens of requests
def service_proxy(service: str, path: str) -> Response:
    directory: ServiceDirectory = current_app.extensions["nexus.directory"]
    entry = directory.get(service)
    if entry is None or not entry.proxied:
        return problem(404, f"There is no service called '{service}'.", title="Unknown service")
    user = g.get("nexus_user")
    if user is None:
        return _display_or_sign_in(service, entry.url, path)
    if not entry.allows(user.claims.get("permission_level")):
        return problem(403, f"You do not have access to '{entry.title}'.", title="Forbidden")
    g.nexus_service = service
    return forward(service, entry.url, path, user.token)


def _display_or_sign_in(service: str, base_url: str, path: str) -> Response:
    """Wall displays: a valid display link opens its pages without a user session."""
    prefixes = display.allowed_prefixes(current_app.config["NEXUS_DISPLAY_PATHS"])
    from_query = request.args.get(display.TOKEN_PARAM)
    token = from_query or request.cookies.get(display.COOKIE)
    link = display.find(get_session(), token) if token and len(token) < 100 else None
    if link is None or not display.admits(link, request.path, prefixes):
        return _sign_in_first()
    client: ServiceClient = current_app.extensions["hivematrix.service_client"]
    try:
        service_token = client.token_for(service)
    except ServiceCallError as exc:
        current_app.logger.error(f"display link cannot reach {service}: {exc}")
        return problem(503, "The display cannot be shown right now; it retries by itself.",
                       title="Service unavailable", headers={"Retry-After": "10"})
    response = forward(service, base_url, path, service_token,
                       [("X-HiveMatrix-Display", link.name)])
    if from_query:
        # Later requests of the display (its data, its assets) carry the token as a cookie.
        max_age = (int((link.expires_at - link.created_at).total_seconds())
                   if link.expires_at else 365 * 24 * 3600)
        response.set_cookie(display.COOKIE, from_query, max_age=max_age, path=f"/{service}",
                            httponly=True, samesite="Lax", secure=request.is_secure)
    return response


@gw.route(f"{PUBLIC_PREFIX}/<path:path>", methods=METHODS, provide_automatic_options=False)
@csrf_exempt
@ratelimit.exempt  # the provider limits its own sign-in attempts
def identity_proxy(path: str) -> Response:
    """The provider's public pages and endpoints (sign-in page, logout), for browsers."""
    if not path.startswith(("realms/", "resources/")):
        return problem(404, "Not found.")
    base = current_app.config["KEYCLOAK_BACKEND_URL"].rstrip("/")
    return forward(PUBLIC_PREFIX.strip("/"), base, path, None)


def needs_user(endpoint: str | None) -> bool:
    return endpoint in {"gateway.service_proxy", "nexus.home", "nexus.get_preferences",
                        "nexus.put_preferences", "nexus.design", "nexus.list_display_links",
                        "nexus.create_display_link", "nexus.revoke_display_link"}
