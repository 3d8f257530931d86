"""How long Ledger's dashboard and bulk invoice ZIP take for 1,000 companies.

Run: .venv/bin/python bench/ledger_bulk.py [--pg-url URL] [--runs N] [--codex-workers N]

Seeds Codex's benchmark data set (``bench/codex_bulk.py``: 1,000 companies on the Gold,
Silver and Bronze plans, 40,000 contacts, 60,000 assets, 200,000 tickets with time entries)
into a new PostgreSQL database, adds Ledger's tables and the three plans, and serves Codex
and Ledger over real HTTP (werkzeug servers, Codex in a process of its own as in production,
the kit's full request cycle: RS256 tokens against a local JWKS, Ledger's service token from a
local Core). Then, as a billing
user, it asks Ledger for:

- ``GET /api/billing/dashboard`` (every company's bill for this month);
- ``GET /api/billing/bulk-invoices`` (the ZIP of every company's QuickBooks CSV).

Each includes Ledger's one Codex bulk call
(``include_tickets=true&year=&view=billing&format=ndjson``), which Ledger reads as it
streams, billing each company as it arrives. The reference, measured in the same run, is
that Codex call alone, read to the end by a client that does nothing with it: the ratio says
what Ledger adds on top of receiving its data. Each is asked once to warm
up and then ``--runs`` times; the figures are median, min and max wall time.
Targets (issue 8): dashboard under 2 s, ZIP under 5 s.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

from codex_bulk import COMPANIES, codex_process, database, seed, timed
from hivematrix.codex import SERVICE as CODEX
from hivematrix.common import db
from hivematrix.common.testing import FakeCore, SigningKey, TokenFactory, serve_wsgi
from hivematrix.ledger import SERVICE as LEDGER
from hivematrix.ledger import create_app as create_ledger
from hivematrix.ledger import plans

SECRET = "bench-ledger-secret"
PLANS = {
    "Gold": {"per_user": "25.00", "per_workstation": "30.00", "per_server": "120.00",
             "per_vm": "60.00", "per_switch": "15.00", "per_firewall": "40.00",
             "per_printer": "5.00", "per_hour": "150.00", "backup_base_workstation": "10.00",
             "backup_base_server": "50.00", "backup_included_tb": "1.00",
             "backup_per_tb": "20.00", "prepaid_hours_monthly": "2.00"},
    "Silver": {"per_user": "15.00", "per_workstation": "20.00", "per_server": "90.00",
               "per_hour": "120.00"},
    "Bronze": {"per_user": "10.00", "per_workstation": "12.00", "per_hour": "100.00"},
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pg-url", default="postgresql://postgres@127.0.0.1/postgres")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--codex-workers", type=int, default=2,
                        help="CODEX_BULK_WORKERS: connections building Codex's answer")
    args = parser.parse_args()
    with database(args.pg_url) as (sqlalchemy_url, libpq_url):
        assert CODEX.migrations and LEDGER.migrations
        db.upgrade(CODEX.migrations, sqlalchemy_url)
        db.upgrade(LEDGER.migrations, sqlalchemy_url)
        started = time.perf_counter()
        seed(libpq_url)
        print(f"seeded Codex's data set ({COMPANIES:,} companies) in "
              f"{time.perf_counter() - started:.1f} s")
        key = SigningKey.generate()
        tokens = TokenFactory(key)
        core = FakeCore(keys=[key], tokens=tokens)
        core.secrets["ledger"] = SECRET
        with serve_wsgi(core.wsgi()) as core_url, tempfile.TemporaryDirectory() as home:
            core.url = core_url
            common = {"HIVEMATRIX_HOME": str(Path(home)), "CORE_SERVICE_URL": core_url,
                      "SECRET_KEY": "bench", "DATABASE_URL": sqlalchemy_url,
                      "LOG_SHIPPING": False, "LOG_LEVEL": "WARNING"}
            codex = {**common, "CODEX_SCHEDULER": False, "CODEX_BULK_WORKERS": args.codex_workers}
            ledger = create_ledger({**common, "SERVICE_SECRET": SECRET,
                                    "LEDGER_SCHEDULER": False, "HTTP_TIMEOUT": 120})
            with ledger.extensions["hivematrix.db"].transaction() as session:
                for name, rates in PLANS.items():
                    plans.create(session, {"plan_name": name, "term_length": "1 Year",
                                           **rates})
            headers = tokens.headers(tokens.user("billing"))
            with codex_process(codex) as codex_url, serve_wsgi(ledger) as ledger_url, \
                    httpx.Client(base_url=ledger_url, timeout=300) as client:
                (Path(home) / "services.json").write_text(json.dumps(
                    {"codex": {"url": codex_url, "port": int(codex_url.rsplit(":", 1)[1])}}))
                rows = []
                year = time.gmtime().tm_year
                codex_headers = tokens.headers(tokens.service("ledger", "codex"))

                def codex_alone() -> httpx.Response:
                    response = httpx.get(f"{codex_url}/api/companies/bulk?include_tickets=true"
                                         f"&year={year}&view=billing&format=ndjson",
                                         headers=codex_headers, timeout=300)
                    response.raise_for_status()
                    return response

                reference, body = timed(codex_alone, args.runs)
                rows.append(("Codex alone", reference, len(body.content)))
                for label, path in (("dashboard", "/api/billing/dashboard"),
                                    ("bulk ZIP", "/api/billing/bulk-invoices")):
                    def ask(path: str = path) -> httpx.Response:
                        response = client.get(path, headers=headers)
                        response.raise_for_status()
                        return response

                    times, response = timed(ask, args.runs)
                    rows.append((label, times, len(response.content)))
                    if label == "dashboard":
                        summary = response.json()["summary"]
                        print(f"  dashboard: {summary['billed']:,} bills, {summary['errors']} "
                              f"errors, revenue {summary['revenue']}")
    base = statistics.median(rows[0][1])
    print(f"\n{'request':<12} {'median':>9} {'min':>9} {'max':>9} {'size':>9} {'ratio':>6}")
    for label, times, size in rows:
        print(f"{label:<12} {statistics.median(times) * 1000:>7.0f}ms "
              f"{min(times) * 1000:>7.0f}ms {max(times) * 1000:>7.0f}ms {size / 1e6:>7.1f}MB "
              f"{statistics.median(times) / base:>6.1f}")
    print("\ntargets: dashboard < 2000 ms, bulk ZIP < 5000 ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
