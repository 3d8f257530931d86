"""What the shared kit costs per request, measured against a bare Flask app in the same run.

Run: .venv/bin/python bench/bench_kit_overhead.py [--requests N]

Three endpoints, each served in-process through Flask's test client (no network), so the
figures isolate the framework work: a bare Flask view (the reference), the kit's /health, and
the template's /api/data with RS256 token verification, rate limiting, metrics, logging and a
SQLite query.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from collections.abc import Callable

from flask import Flask

from hivematrix.common import db
from hivematrix.common.keys import SigningKey
from hivematrix.common.testing import FakeCore, TokenFactory, serve_wsgi
from hivematrix.template import SERVICE, create_app


def rate(label: str, call: Callable[[], object], requests: int) -> float:
    for _ in range(min(200, requests)):
        call()
    started = time.perf_counter()
    for _ in range(requests):
        call()
    per_second = requests / (time.perf_counter() - started)
    print(f"{label:<44} {per_second:>9,.0f} req/s  {1e6 / per_second:>8,.0f} us/req")
    return per_second


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=3000)
    requests = parser.parse_args().requests

    bare = Flask("bare")
    bare.add_url_rule("/ping", "ping", lambda: {"status": "ok"})
    bare_client = bare.test_client()

    key = SigningKey.generate()
    tokens = TokenFactory(key)
    core = FakeCore(keys=[key], tokens=tokens)
    with tempfile.TemporaryDirectory() as home, serve_wsgi(core.wsgi()) as core_url:
        url = f"sqlite:///{home}/template.db"
        db.upgrade(SERVICE.migrations, url)
        app = create_app({"HIVEMATRIX_HOME": home, "CORE_SERVICE_URL": core_url,
                          "DATABASE_URL": url, "SECRET_KEY": "bench",
                          "RATELIMIT_DEFAULT": "1000000 per minute"})
        for name in ("", "werkzeug"):  # measure the work, not stderr
            logging.getLogger(name).setLevel(logging.WARNING)
        client = app.test_client()
        headers = tokens.headers(tokens.user("technician"))

        print(f"{requests} requests each, in-process")
        reference = rate("bare Flask view (reference)", lambda: bare_client.get("/ping"), requests)
        health = rate("kit /health (disk + database checks)", lambda: client.get("/health"),
                      requests)
        data = rate("template /api/data (JWT + rate limit + query)",
                    lambda: client.get("/api/data", headers=headers), requests)
        print(f"ratio /health : reference   = {reference / health:5.1f}x the time per request")
        print(f"ratio /api/data : reference = {reference / data:5.1f}x the time per request")


if __name__ == "__main__":
    main()
