"""Ledger's web pages against a real Codex served over HTTP: every page at every permission
level, the forms (CSRF, permission, field errors, nothing half-written), and escaping of the
company names Codex hands over. The table and form helpers are tested alone at the end."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Callable
from datetime import UTC, datetime
from html import unescape
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from hivematrix.common.db import Database
from hivematrix.ledger.errors import LedgerError
from hivematrix.ledger.models import (
    BillingPlan,
    BillingSnapshot,
    ClientBillingOverride,
    CustomLineItem,
    ScheduledSnapshot,
    SnapshotJob,
)
from hivematrix.ledger.pages import forms, tables
from tests.codex import seeding
from tests.ledger.conftest import GOLD_PLAN, Codex, join_jobs

Headers = Callable[..., dict[str, str]]
HTML = {"Accept": "text/html"}
LEVELS = ("admin", "technician", "billing", "client")
MARCH = "year=2026&month=3"
XSS = "<script>alert('x')</script> & Co"


# --- helpers -------------------------------------------------------------------------------

def page(client: FlaskClient, headers: dict[str, str], path: str, status: int = 200) -> str:
    response = client.get(path, headers={**HTML, **headers})
    assert response.status_code == status, (path, response.status_code,
                                            response.get_data(as_text=True)[:3000])
    return response.get_data(as_text=True)


def csrf(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, "the page has no form with a CSRF token"
    return found.group(1)


def post(client: FlaskClient, headers: dict[str, str], path: str, data: dict[str, Any],
         form_page: str, **kwargs: Any) -> Any:
    """Submit a form the way a browser does: with the token of the page that shows it."""
    token = csrf(page(client, headers, form_page))
    return client.post(path, headers={**HTML, **headers}, data={"csrf_token": token, **data},
                       **kwargs)


def redirected(response: Any) -> str:
    assert response.status_code == 303, (response.status_code, response.get_data(True)[:3000])
    return str(response.headers["Location"])


def text(html: str) -> str:
    """The page's visible text, tags removed and whitespace collapsed."""
    body = re.sub(r"<script.*?</script>|<[^>]+>", " ", html, flags=re.S)
    return " ".join(unescape(body).split())


def testid(html: str, name: str) -> str:
    """The text of the element with this data-testid."""
    found = re.search(rf'<(\w+)[^>]*data-testid="{re.escape(name)}"[^>]*>(.*?)</\1>', html,
                      re.S)
    assert found, f"no element {name}"
    return text(found.group(2))


def rows(html: str, name: str) -> list[str]:
    table = re.search(rf'<table[^>]*data-testid="{re.escape(name)}".*?<tbody>(.*?)</tbody>',
                      html, re.S)
    assert table, f"no table {name}"
    return [text(row) for row in re.findall(r"<tr[^>]*>(.*?)</tr>", table.group(1), re.S)]


def api(client: FlaskClient, headers: dict[str, str], method: str, path: str,
        body: Any = None, status: int = 200) -> Any:
    response = client.open(path, method=method, json=body, headers=headers)
    assert response.status_code == status, (response.status_code, response.get_data(True))
    return response.get_json()


def in_db(ledger_db_url: str) -> Database:
    return Database(ledger_db_url)


@pytest.fixture
def billing(as_user: Headers) -> dict[str, str]:
    return as_user("billing")


@pytest.fixture
def gold(client: FlaskClient, billing: dict[str, str]) -> dict[str, Any]:
    """The Gold plan (through the API), which Acme Dental and Beta Law are on."""
    return dict(api(client, billing, "POST", "/api/plans", GOLD_PLAN, 201))


@pytest.fixture
def xss_company(codex: Codex, as_user: Headers) -> str:
    """A fourth company whose name is markup, on the Gold plan."""
    seeding.company(codex.app.test_client(), as_user("admin"), "620550", XSS,
                    billing_plan="Gold", contract_term_length="1 Year")
    return "620550"


def accept(client: FlaskClient, headers: dict[str, str], account: str = "620547",
           notes: str = "") -> Any:
    return post(client, headers, f"/clients/{account}/accept",
                {"year": "2026", "month": "3", "notes": notes},
                f"/clients/{account}?{MARCH}")


def snapshot_id(location: str) -> int:
    found = re.search(r"/archive/invoices/(\d+)", location)
    assert found, location
    return int(found.group(1))


#: Every page, as (path, what it must show) once Acme's March bill is accepted.
def every_page(snapshot: int, job: int, row: int, plan: int) -> list[tuple[str, str]]:
    return [
        (f"/?{MARCH}", "Billing for March 2026"),
        (f"/clients?{MARCH}", "Clients — March 2026"),
        (f"/clients/620547?{MARCH}", "Acme Dental"),
        ("/clients/620547/settings", "Billing settings: Acme Dental"),
        (f"/clients/620547/settings/line-items/{row}", "Custom line items: entry"),
        ("/plans", "Billing plans"),
        (f"/plans/{plan}", "Gold (1 Year)"),
        ("/archive", "Archive of accepted bills"),
        (f"/archive/invoices/{snapshot}", "Invoice 620547-202603"),
        ("/scheduler", "Monthly snapshots"),
        (f"/jobs/{job}", "Accepting the bills of 2026-03"),
    ]


@pytest.fixture
def everything(client: FlaskClient, billing: dict[str, str], gold: dict[str, Any],
               ledger_app: Flask) -> dict[str, int]:
    """A line item, Acme's March bill accepted, and a finished "accept all" job."""
    line = api(client, billing, "POST", "/api/overrides/620547/line-items",
               {"name": "Firewall lease", "kind": "recurring", "amount": "10.00"}, 201)
    snap = snapshot_id(_accepted(client, billing))
    job = api(client, billing, "POST", "/archive/jobs", {"year": 2026, "month": 3}, 202)
    join_jobs(ledger_app)
    return {"snapshot": snap, "job": int(job["id"]), "row": int(line["id"]),
            "plan": int(gold["id"])}


def _accepted(client: FlaskClient, billing: dict[str, str]) -> str:
    redirected(accept(client, billing))
    html = page(client, billing, f"/clients/620547?{MARCH}")
    found = re.search(r'href="(/archive/invoices/\d+)"[^>]*data-testid="archived-badge"', html)
    assert found, "no Archived badge after accepting"
    return found.group(1)


# --- who sees what -------------------------------------------------------------------------

def test_every_page_renders_for_staff_and_is_refused_to_clients(
        client: FlaskClient, as_user: Headers, everything: dict[str, int]) -> None:
    pages = every_page(everything["snapshot"], everything["job"], everything["row"],
                       everything["plan"])
    for level in ("admin", "technician", "billing"):
        headers = as_user(level)
        for path, shown in pages:
            html = page(client, headers, path)
            assert shown in text(html), (level, path)
        # Write forms only for billing and admin users.
        for path, form in (("/clients/620547/settings", 'data-testid="add-assets"'),
                           ("/plans", 'data-testid="create-plan"'),
                           (f"/?{MARCH}", 'data-testid="accept-all-form"')):
            assert (form in page(client, headers, path)) == (level != "technician"), (
                level, path)
    customer = as_user("client", account_number="620547")
    for path, _ in pages:
        page(client, customer, path, 403)
    for path, _ in pages:
        assert client.get(path, headers=HTML).status_code == 401, path
