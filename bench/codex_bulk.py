"""How long Codex's two big reads take on a realistically large MSP, in PostgreSQL.

Run: .venv/bin/python bench/codex_bulk.py [--pg-url URL] [--runs N] [--keep]

Seeds a new PostgreSQL database (migrated with Codex's Alembic history) by COPY with
1,000 companies, 40,000 contacts (one role each), 60,000 assets (2% retired), 200,000
tickets over three years, each with one time entry, of which 5,000 are active (the rest
closed), and 25 PSA agents. Then Codex's app answers, over real HTTP (a werkzeug server
in a process of its own, the kit's full request cycle with RS256 token verification against a
local JWKS):

- ``GET /api/companies/bulk?include_tickets=true`` (every ticket) and the same with
  ``&year=2026`` (what Ledger asks for a bill); the first also from an app that builds it on
  one connection (``CODEX_BULK_WORKERS=1``) instead of the default two;
- ``GET /api/tickets/active`` (5,000 active tickets sectioned with SLA texts).

The two "built" rows are the bulk document made in-process (database and encoding, no HTTP),
to tell the database's share from the transfer of a document of ~100 MB.

Each is asked once to warm up and then ``--runs`` times; the figures are the median, min and
max wall time and the answer's size. The reference, measured in the same run, is reading the
same rows from PostgreSQL with a plain ``SELECT`` into Python tuples and nothing else
(the floor any implementation pays); the ratio says what the endpoint adds on top.
Targets (issue 6): bulk under 3 s, active feed under 300 ms.
"""

from __future__ import annotations

import argparse
import multiprocessing
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg
from sqlalchemy.engine import make_url

from hivematrix.codex import SERVICE, bulk, create_app
from hivematrix.common import db
from hivematrix.common.testing import FakeCore, SigningKey, TokenFactory, serve_wsgi

COMPANIES, CONTACTS, ASSETS, TICKETS, ACTIVE, AGENTS = 1_000, 40_000, 60_000, 200_000, 5_000, 25
NOW = datetime.now(UTC).replace(microsecond=0)
CATEGORIES = ["Desktop", "Laptop", "Server", "Virtual Machine", "Network Device", "Printer",
              "Firewall", "ESXi Host"]
ACTIVE_STATUSES = ["open", "pending", "customer_replied", "waiting_customer", "on_hold",
                   "update_needed", "scheduled"]
PRIORITIES = [("low", 1), ("medium", 2), ("high", 3), ("urgent", 4)]


def _copy(cursor: psycopg.Cursor[Any], table: str, columns: list[str],
          rows: Iterator[tuple[Any, ...]]) -> None:
    with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)


def seed(libpq_url: str) -> None:
    rng = random.Random(6)
    stamp = NOW
    with psycopg.connect(libpq_url) as connection, connection.cursor() as cursor:
        _copy(cursor, "codex_companies",
              ["id", "account_number", "name", "description", "compliance_level",
               "billing_plan", "contract_term_length", "domains", "main_phone", "address",
               "active", "created_at", "updated_at"],
              ((i, str(100000 + i), f"Company {i:04d}", "", "standard",
                rng.choice(["Gold", "Silver", "Bronze"]), "1 Year",
                f'["company{i}.example"]', "555-0100", "", True, stamp, stamp)
               for i in range(1, COMPANIES + 1)))
        _copy(cursor, "codex_contacts",
              ["id", "name", "first_name", "last_name", "email", "secondary_emails",
               "work_phone", "mobile_phone", "title", "active", "vip", "created_at",
               "updated_at"],
              ((i, f"Person {i}", "Person", str(i), f"person{i}@example.test", "[]", "", "",
                "Staff", rng.random() > 0.1, False, stamp, stamp)
               for i in range(1, CONTACTS + 1)))
        _copy(cursor, "codex_contact_roles", ["contact_id", "company_id", "role"],
              ((i, (i % COMPANIES) + 1, "general") for i in range(1, CONTACTS + 1)))
        _copy(cursor, "codex_assets",
              ["id", "company_id", "hostname", "device_category", "billing_type",
               "billing_type_unmapped", "operating_system", "serial_number", "model",
               "manufacturer", "internal_ip", "external_ip", "online", "patch_status",
               "antivirus_product", "last_logged_in_user", "domain", "description",
               "portal_url", "web_remote_url", "backup_bytes", "udfs", "source",
               "created_at", "updated_at", "retired_at"],
              ((i, (i % COMPANIES) + 1, f"HOST-{i:05d}", category := rng.choice(CATEGORIES),
                {"Server": "Server", "ESXi Host": "Server", "Virtual Machine": "VM",
                 "Network Device": "Switch", "Printer": "Printer", "Firewall": "Firewall"
                 }.get(category, "Workstation"), False, "Windows 11", "", "", "", "", "",
                True, "", "", "", "", "", "", "", rng.randrange(0, 4 * 2**40), "{}", "rmm",
                stamp, stamp, stamp if rng.random() < 0.02 else None)
               for i in range(1, ASSETS + 1)))
        _copy(cursor, "codex_psa_agents",
              ["id", "source", "external_id", "name", "email", "active", "job_title",
               "group_ids", "created_at", "updated_at"],
              ((i, "freshservice", str(i), f"Agent {i}", f"agent{i}@msp.test", True, "Tech",
                "[]", stamp, stamp) for i in range(1, AGENTS + 1)))
        active = set(rng.sample(range(1, TICKETS + 1), ACTIVE))

        ticket_rows = []
        for i in range(1, TICKETS + 1):
            created = NOW - timedelta(minutes=rng.randrange(0, 3 * 365 * 24 * 60))
            updated = created + timedelta(minutes=rng.randrange(0, 3 * 24 * 60))
            priority, rank = rng.choice(PRIORITIES)
            status = rng.choice(ACTIVE_STATUSES) if i in active else "closed"
            if i in active:
                created = NOW - timedelta(minutes=rng.randrange(0, 20 * 24 * 60))
                updated = NOW - timedelta(minutes=rng.randrange(0, 5 * 24 * 60))
            updated = min(updated, NOW)
            ticket_rows.append((
                i, "freshservice", str(10_000_000 + i), str(i), (i % COMPANIES) + 1,
                f"Ticket {i} subject", "", "description", status, "", priority, rank,
                "Incident", None, f"Requester {i % 977}", "", str(rng.randrange(1, 30)),
                rng.choice(["1", "2"]), created, updated, None if i in active else updated,
                created + timedelta(hours=rng.choice([2, 8, 24])), None, None, None, "1.25",
                NOW))

        _copy(cursor, "codex_tickets",
              ["id", "source", "external_id", "number", "company_id", "subject",
               "description_html", "description_text", "status", "status_raw", "priority",
               "priority_raw", "ticket_type", "requester_external_id", "requester_name",
               "requester_email", "responder_external_id", "group_id", "created_at",
               "updated_at", "closed_at", "fr_due_by", "due_by", "first_responded_at",
               "agent_responded_at", "total_hours", "synced_at"], iter(ticket_rows))
        # One entry per ticket, logged when the ticket was last worked on.
        _copy(cursor, "codex_time_entries",
              ["id", "ticket_id", "external_id", "agent_external_id", "hours", "billable",
               "note", "executed_at"],
              ((row[0], row[0], f"te{row[0]}", "1", "1.25", True, "", row[19])
               for row in ticket_rows))
        for table in ("codex_companies", "codex_contacts", "codex_assets", "codex_psa_agents",
                      "codex_tickets", "codex_time_entries"):
            cursor.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                           f"(SELECT max(id) FROM {table}))")
        connection.commit()
    # A database in use has its visibility map and hint bits set; a freshly copied one gets
    # them from whatever reads it first (or autovacuum, during the measurements). Set now.
    with psycopg.connect(libpq_url, autocommit=True) as connection:
        connection.execute("VACUUM (ANALYZE)")


def reference_bulk(libpq_url: str, year: int | None) -> None:
    where = (f"WHERE t.created_at >= '{year}-01-01' AND t.created_at < '{year + 1}-01-01'"
             if year else "")
    with psycopg.connect(libpq_url) as connection, connection.cursor() as cursor:
        for query in ("SELECT * FROM codex_companies",
                      "SELECT * FROM codex_assets WHERE retired_at IS NULL",
                      "SELECT r.*, c.name, c.email, c.active FROM codex_contact_roles r "
                      "JOIN codex_contacts c ON c.id = r.contact_id",
                      f"SELECT t.id, t.company_id, t.subject, t.status, t.created_at FROM "
                      f"codex_tickets t {where}",
                      f"SELECT e.* FROM codex_time_entries e JOIN codex_tickets t ON "
                      f"t.id = e.ticket_id {where}"):
            cursor.execute(query)
            cursor.fetchall()


def reference_active(libpq_url: str) -> None:
    with psycopg.connect(libpq_url) as connection, connection.cursor() as cursor:
        cursor.execute("SELECT t.*, c.account_number, c.name, a.name FROM codex_tickets t "
                       "LEFT JOIN codex_companies c ON c.id = t.company_id LEFT JOIN "
                       "codex_psa_agents a ON a.source = t.source AND a.external_id = "
                       "t.responder_external_id WHERE t.status NOT IN ('closed', 'resolved')")
        cursor.fetchall()


def timed(action: Callable[[], Any], runs: int) -> tuple[list[float], Any]:
    result = action()  # warm-up
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        result = action()
        times.append(time.perf_counter() - started)
    return times, result


def _serve_codex(settings: dict[str, Any], ready: Any, stop: Any) -> None:
    with serve_wsgi(create_app(settings)) as url:
        ready.put(url)
        stop.wait()


@contextmanager
def codex_process(settings: dict[str, Any]) -> Iterator[str]:
    """Codex served by a process of its own, as in production (not a thread sharing the
    benchmark's interpreter lock with the client or with Ledger); yields its base URL."""
    context = multiprocessing.get_context("fork")
    ready, stop = context.Queue(), context.Event()
    child = context.Process(target=_serve_codex, args=(settings, ready, stop), daemon=True)
    child.start()
    try:
        yield ready.get(timeout=60)
    finally:
        stop.set()
        child.join(10)
        if child.is_alive():
            child.kill()


@contextmanager
def database(server_url: str) -> Iterator[tuple[str, str]]:
    name = f"hm_bench_codex_{uuid.uuid4().hex[:8]}"
    admin = make_url(server_url)
    libpq = admin.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(libpq, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    try:
        yield (admin.set(drivername="postgresql+psycopg", database=name)
               .render_as_string(hide_password=False),
               admin.set(drivername="postgresql", database=name)
               .render_as_string(hide_password=False))
    finally:
        with psycopg.connect(libpq, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pg-url", default="postgresql://postgres@127.0.0.1/postgres")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with database(args.pg_url) as (sqlalchemy_url, libpq_url):
        assert SERVICE.migrations
        db.upgrade(SERVICE.migrations, sqlalchemy_url)
        started = time.perf_counter()
        seed(libpq_url)
        print(f"seeded {COMPANIES:,} companies, {CONTACTS:,} contacts, {ASSETS:,} assets, "
              f"{TICKETS:,} tickets ({ACTIVE:,} active) with {TICKETS:,} time entries in "
              f"{time.perf_counter() - started:.1f} s")
        key = SigningKey.generate()
        tokens = TokenFactory(key)
        core = FakeCore(keys=[key], tokens=tokens)
        with serve_wsgi(core.wsgi()) as core_url, tempfile.TemporaryDirectory() as home:
            core.url = core_url
            app = create_app({"HIVEMATRIX_HOME": str(Path(home)), "CORE_SERVICE_URL": core_url,
                              "SECRET_KEY": "bench", "DATABASE_URL": sqlalchemy_url,
                              "LOG_SHIPPING": False, "LOG_LEVEL": "WARNING"})
            settings = {"HIVEMATRIX_HOME": str(Path(home)), "CORE_SERVICE_URL": core_url,
                        "SECRET_KEY": "bench", "DATABASE_URL": sqlalchemy_url,
                        "LOG_SHIPPING": False, "LOG_LEVEL": "WARNING", "CODEX_SCHEDULER": False}
            headers = tokens.headers(tokens.service("ledger", "codex"))
            beacon = tokens.headers(tokens.service("beacon", "codex"))
            with codex_process(settings) as url, \
                    codex_process({**settings, "CODEX_BULK_WORKERS": 1}) as one_url, \
                    httpx.Client(base_url=url, timeout=120) as client:
                rows = []
                codex_db = app.extensions["hivematrix.db"]
                for label, year in (("  built, all", None), ("  built, 2026", 2026)):
                    def build(year: int | None = year) -> bytes:
                        with codex_db.transaction() as session:
                            return bulk.companies_bulk_json(session, include_tickets=True,
                                                            year=year)

                    times, body = timed(build, args.runs)
                    ref_times, _ = timed(lambda year=year: reference_bulk(libpq_url, year),
                                         args.runs)
                    rows.append((label, times, ref_times, len(body)))
                for label, path, who, reference in (
                        ("bulk, all tickets", "/api/companies/bulk?include_tickets=true",
                         headers, lambda: reference_bulk(libpq_url, None)),
                        ("  one connection", f"{one_url}/api/companies/bulk?include_tickets=true",
                         headers, lambda: reference_bulk(libpq_url, None)),
                        ("bulk, year 2026", "/api/companies/bulk?include_tickets=true&year=2026",
                         headers, lambda: reference_bulk(libpq_url, 2026)),
                        ("tickets/active", "/api/tickets/active", beacon,
                         lambda: reference_active(libpq_url))):
                    def ask(path: str = path, who: dict[str, str] = who) -> httpx.Response:
                        response = client.get(path, headers=who)
                        response.raise_for_status()
                        return response

                    times, response = timed(ask, args.runs)
                    ref_times, _ = timed(reference, args.runs)
                    rows.append((label, times, ref_times, len(response.content)))
                    if label == "tickets/active":
                        print(f"  active feed: {response.json()['total_active']:,} tickets")
    print(f"\n{'request':<20} {'median':>9} {'min':>9} {'max':>9} {'size':>9} "
          f"{'SQL only':>9} {'ratio':>6}")
    for label, times, ref_times, size in rows:
        median, reference = statistics.median(times), statistics.median(ref_times)
        print(f"{label:<20} {median * 1000:>7.0f}ms {min(times) * 1000:>7.0f}ms "
              f"{max(times) * 1000:>7.0f}ms {size / 1e6:>7.1f}MB {reference * 1000:>7.0f}ms "
              f"{median / reference:>6.1f}")
    print("\ntargets: bulk < 3000 ms, tickets/active < 300 ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
