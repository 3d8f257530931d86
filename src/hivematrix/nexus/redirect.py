"""A tiny plain-HTTP server that sends every request to the HTTPS address.

Run beside Nexus by ``hivematrix run nexus`` when TLS and a redirect port are configured:
``python -m hivematrix.nexus.redirect HOST PORT HTTPS_PORT [PUBLIC_HOST]``.
"""

from __future__ import annotations

import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit


def target(host_header: str | None, path: str, https_port: int, public_host: str | None) -> str:
    """The HTTPS URL for a plain-HTTP request (the configured host wins over the header)."""
    host = public_host or urlsplit(f"//{host_header or 'localhost'}").hostname or "localhost"
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"  # an IPv6 literal
    port = "" if https_port == 443 else f":{https_port}"
    return f"https://{host}{port}{path if path.startswith('/') else '/'}"


def make_handler(https_port: int, public_host: str | None) -> type[BaseHTTPRequestHandler]:
    class Redirect(BaseHTTPRequestHandler):
        def _redirect(self) -> None:
            self.send_response(308)
            self.send_header("Location", target(self.headers.get("Host"), self.path,
                                                https_port, public_host))
            self.send_header("Content-Length", "0")
            self.send_header("Connection", "close")
            self.end_headers()

        do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = _redirect

        def log_message(self, format: str, *args: object) -> None:
            """Quiet: Nexus logs the requests that matter."""

    return Redirect


def main(argv: list[str]) -> None:
    host, port, https_port = argv[0], int(argv[1]), int(argv[2])
    public_host = argv[3] if len(argv) > 3 else None
    ThreadingHTTPServer((host, port), make_handler(https_port, public_host)).serve_forever()


if __name__ == "__main__":
    main(sys.argv[1:])
