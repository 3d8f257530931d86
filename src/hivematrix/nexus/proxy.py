"""The header rules of the reverse proxy, as plain functions of headers in and headers out.

Requests to a backend carry Nexus's Bearer token and forwarding headers, never the browser's
own credentials for Nexus; responses come back without hop-by-hop headers and with their
cookies confined to the service's path.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from http.cookies import CookieError, SimpleCookie
from urllib.parse import urlsplit

#: RFC 9110 section 7.6.1, plus the de-facto ones.
HOP_BY_HOP = frozenset({
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "proxy-connection",
    "te", "trailer", "trailers", "transfer-encoding", "upgrade",
})
#: Replaced by Nexus: a client must not choose its own identity or forwarding chain.
REQUEST_OVERRIDDEN = frozenset({
    "host", "authorization", "cookie", "content-length", "x-forwarded-for",
    "x-forwarded-proto", "x-forwarded-host", "x-forwarded-port", "x-forwarded-prefix",
    "x-real-ip", "forwarded", "x-correlation-id",
})
#: Recomputed by the WSGI server or by composition.
RESPONSE_DROPPED = frozenset({"content-length", "server", "date"})


@dataclass(frozen=True)
class Forwarding:
    """What Nexus tells a backend about the original request."""

    service: str
    client_ip: str
    proto: str
    host: str
    port: str
    correlation_id: str
    token: str | None


def _connection_tokens(headers: Iterable[tuple[str, str]]) -> set[str]:
    """Header names listed in ``Connection`` are hop-by-hop for this message too."""
    named: set[str] = set()
    for name, value in headers:
        if name.lower() == "connection":
            named.update(part.strip().lower() for part in value.split(",") if part.strip())
    return named


def request_headers(incoming: Iterable[tuple[str, str]], forwarding: Forwarding,
                    own_cookies: frozenset[str],
                    content_length: str | None) -> list[tuple[str, str]]:
    """The headers for the backend request."""
    incoming = list(incoming)
    dropped = HOP_BY_HOP | REQUEST_OVERRIDDEN | _connection_tokens(incoming)
    out = [(name, value) for name, value in incoming if name.lower() not in dropped]
    cookies = filter_cookie_header([value for name, value in incoming
                                    if name.lower() == "cookie"], own_cookies)
    if cookies:
        out.append(("Cookie", cookies))
    if content_length:
        out.append(("Content-Length", content_length))
    if forwarding.token:
        out.append(("Authorization", f"Bearer {forwarding.token}"))
    out += [
        ("X-Forwarded-For", forwarding.client_ip),
        ("X-Forwarded-Proto", forwarding.proto),
        ("X-Forwarded-Host", forwarding.host),
        ("X-Forwarded-Port", forwarding.port),
        ("X-Forwarded-Prefix", f"/{forwarding.service}"),
        ("X-Correlation-ID", forwarding.correlation_id),
    ]
    return out


def filter_cookie_header(values: list[str], own_cookies: frozenset[str]) -> str:
    """The browser's cookies minus Nexus's own (its session never reaches a backend)."""
    kept = []
    for value in values:
        for pair in value.split(";"):
            name = pair.split("=", 1)[0].strip()
            if name and name not in own_cookies:
                kept.append(pair.strip())
    return "; ".join(kept)


def response_headers(upstream: Iterable[tuple[str, str]], *, service: str, backend_origin: str,
                     own_cookies: frozenset[str]) -> list[tuple[str, str]]:
    """The backend's headers as the browser should see them."""
    upstream = list(upstream)
    dropped = HOP_BY_HOP | RESPONSE_DROPPED | _connection_tokens(upstream)
    out: list[tuple[str, str]] = []
    for name, value in upstream:
        lower = name.lower()
        if lower in dropped:
            continue
        if lower == "set-cookie":
            cookie = scope_cookie(value, service, own_cookies)
            if cookie:
                out.append(("Set-Cookie", cookie))
        elif lower == "location":
            out.append(("Location", rewrite_location(value, service, backend_origin)))
        else:
            out.append((name, value))
    return out


def scope_cookie(header: str, service: str, own_cookies: frozenset[str]) -> str | None:
    """Confine a backend's cookie to ``/<service>`` on Nexus's host; refuse Nexus's names.

    Backends share Nexus's origin, so without this a backend could overwrite (or read through
    a broader path) another service's cookie or Nexus's session.
    """
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(header)
    except CookieError:
        return None
    if len(jar) != 1:
        return None
    (name, morsel), = jar.items()
    if name in own_cookies:
        return None
    prefix = f"/{service}"
    path = morsel["path"] or "/"
    if not (path == prefix or path.startswith(prefix + "/")):
        path = prefix + (path if path != "/" else "")
    morsel["path"] = path
    morsel["domain"] = ""
    if not morsel["samesite"]:
        morsel["samesite"] = "Lax"
    return morsel.OutputString()


def rewrite_location(location: str, service: str, backend_origin: str) -> str:
    """A redirect to the backend's own address becomes a path under ``/<service>``."""
    parts = urlsplit(location)
    origin = urlsplit(backend_origin)
    if parts.scheme and (parts.scheme, parts.netloc) == (origin.scheme, origin.netloc):
        rest = location[len(f"{parts.scheme}://{parts.netloc}"):]
        return f"/{service}{rest if rest.startswith('/') else '/' + rest}"
    return location
