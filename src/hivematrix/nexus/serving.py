"""How ``hivematrix run nexus`` serves: address, TLS, and the plain-HTTP redirect.

Nexus is the one service that faces the network. The embedded default stays on plain HTTP on
127.0.0.1; with ``NEXUS_TLS`` it serves HTTPS itself (granian with the installed certificate,
a self-signed one made on first start) and, with ``NEXUS_HTTP_REDIRECT_PORT``, answers plain
HTTP on that port with a redirect to HTTPS.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hivematrix.nexus import tls

log = logging.getLogger("hivematrix.nexus.serving")


@dataclass(frozen=True)
class Serving:
    host: str
    #: The HTTP server's TLS options.
    server_args: list[str] = field(default_factory=list)
    #: Plain-HTTP port answered with redirects to HTTPS (0: none).
    redirect_port: int = 0


def prepare(home: Path, config: Mapping[str, Any]) -> Serving:
    """Decide how to serve, making a self-signed certificate on the first TLS start."""
    host = str(config["NEXUS_HOST"])
    if not config["NEXUS_TLS"]:
        return Serving(host)
    if tls.installed(home) is None:
        hostname = config["NEXUS_HOSTNAME"] or socket.getfqdn()
        names = [hostname, "localhost", "127.0.0.1"]
        if host not in ("0.0.0.0", "::", "127.0.0.1"):  # noqa: S104 - a comparison, not a bind
            names.append(host)
        cert, key = tls.self_signed(hostname, names)
        tls.install(home, cert, key)
        log.warning(f"No TLS certificate installed: made a self-signed one for {hostname}. "
                    "Install a real one with `hivematrix tls install CERT KEY`.")
    return Serving(host, ["--ssl-certificate", str(tls.cert_path(home)),
                          "--ssl-keyfile", str(tls.key_path(home))],
                   int(config["NEXUS_HTTP_REDIRECT_PORT"] or 0))
