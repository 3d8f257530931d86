"""How fast tokens are checked and issued by Core.

Run: .venv/bin/python bench/bench_core_tokens.py [--seconds S]

Figures, each measured in this run:
- in-process verification with the kit's TokenVerifier (what every service does per request),
  against the reference of decoding the same JWT without checking its signature;
- validation through Core's POST /api/token/validate over HTTP (Core under gunicorn, SQL
  session store), against the reference of GET /health on the same process;
- exchange latency: POST /api/token/exchange, which asks the identity provider's userinfo
  (a local contract fake) and writes a session.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import jwt

from hivematrix.common.auth import JWKSCache, TokenVerifier
from hivematrix.common.testing import FakeIdentityProvider, ServiceProcess, serve_wsgi


def per_second(call: Callable[[], object], seconds: float) -> tuple[float, list[float]]:
    """Calls per second over ``seconds``, and each call's latency in ms."""
    for _ in range(20):
        call()
    latencies = []
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        started = time.perf_counter()
        call()
        latencies.append((time.perf_counter() - started) * 1000)
    return len(latencies) / (sum(latencies) / 1000), latencies


def row(label: str, rate: float, latencies: list[float]) -> None:
    p50 = statistics.median(latencies)
    p95 = statistics.quantiles(latencies, n=20)[18]
    print(f"{label:<46} {rate:>9,.0f}/s   p50 {p50:6.2f} ms   p95 {p95:6.2f} ms")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=3.0)
    seconds = parser.parse_args().seconds
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # the fake IdP's access log

    idp = FakeIdentityProvider()
    with tempfile.TemporaryDirectory() as home_dir, serve_wsgi(idp.wsgi()) as idp_url:
        idp.url = idp_url
        home = Path(home_dir)
        subprocess.run([sys.executable, "-m", "hivematrix.cli", "init"], check=True,
                       env={"HIVEMATRIX_HOME": str(home), "PATH": ""}, capture_output=True)
        idp.add_user("bench-access-token", sub="bench", groups=["technicians"])
        with ServiceProcess("core", home, env={"OIDC_ISSUER_URL": idp.issuer,
                                               "RATELIMIT_DEFAULT": "1000000 per minute",
                                               "LOG_LEVEL": "WARNING"}) as core, \
                httpx.Client(base_url=core.url) as http:
            token = http.post("/api/token/exchange",
                              json={"access_token": "bench-access-token"}).json()["token"]
            verifier = TokenVerifier(jwks=JWKSCache(f"{core.url}/.well-known/jwks.json"),
                                     service_name="template")

            print(f"each figure measured for {seconds:.0f} s")
            reference, lat = per_second(
                lambda: jwt.decode(token, options={"verify_signature": False}), seconds)
            row("reference: decode without verifying", reference, lat)
            verified, lat = per_second(lambda: verifier.verify(token), seconds)
            row("in-process RS256 verification (kit)", verified, lat)
            print(f"  verification costs {reference / verified:.1f}x an unverified decode")

            health, lat = per_second(lambda: http.get("/health"), seconds)
            row("reference: GET /health over HTTP", health, lat)
            validated, lat = per_second(
                lambda: http.post("/api/token/validate", json={"token": token}), seconds)
            row("POST /api/token/validate over HTTP", validated, lat)
            print(f"  validate takes {health / validated:.1f}x the time of /health")

            # Exchange is limited to 20 per minute per client address; vary it.
            counter = iter(range(10**9))
            exchanged, lat = per_second(lambda: http.post(
                "/api/token/exchange", json={"access_token": "bench-access-token"},
                headers={"X-Forwarded-For": f"10.0.{next(counter) % 250}.{next(counter) % 250}"}),
                seconds)
            row("POST /api/token/exchange (userinfo + session)", exchanged, lat)


if __name__ == "__main__":
    main()
