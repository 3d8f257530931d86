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
from hivematrix.common.testing import HTML, csrf_of, get_page, submit_form
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
LEVELS = ("admin", "technician", "billing", "client")
MARCH = "year=2026&month=3"
XSS = "<script>alert('x')</script> & Co"


# --- helpers -------------------------------------------------------------------------------

page, csrf, post = get_page, csrf_of, submit_form


def redirected(response: Any) -> str:
    assert response.status_code == 303, (response.status_code, response.get_data(True)[:3000])
    return str(response.headers["Location"])


def text(html: str) -> str:
    """The page's visible text, tags removed and whitespace collapsed."""
    body = re.sub(r"<script.*?</script>|<[^>]+>", " ", html, flags=re.S)
    return " ".join(unescape(body).split())


def by_testid(html: str, name: str) -> str:
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


#: Every form of the pages: (path it posts to, the page that shows it, a body).
def every_form(snapshot: int, row: int, plan: int) -> list[tuple[str, str, dict[str, str]]]:
    settings = "/clients/620547/settings"
    return [
        ("/jobs", f"/?{MARCH}", {"year": "2026", "month": "3"}),
        ("/clients/620547/accept", f"/clients/620547?{MARCH}", {"year": "2026", "month": "3"}),
        (f"{settings}/client", settings, {"per_user_enabled": "on", "per_user": "1.00"}),
        # (A form always has a body; a bodyless POST carrying Authorization is a script's.)
        (f"{settings}/client/delete", settings, {"go": "1"}),
        (f"{settings}/line-items", settings, {"name": "X", "kind": "recurring",
                                              "amount": "1.00"}),
        (f"{settings}/line-items/{row}", settings, {"name": "Y", "kind": "recurring",
                                                    "amount": "2.00"}),
        (f"{settings}/line-items/{row}/delete", settings, {"go": "1"}),
        ("/plans", "/plans", {"plan_name": "Bronze", "term_length": "1 Year"}),
        (f"/plans/{plan}", "/plans", {"per_user": "1.00"}),
        (f"/plans/{plan}/delete", "/plans", {"go": "1"}),
        (f"/archive/invoices/{snapshot}/void", "/archive", {"reason": "wrong"}),
        (f"/archive/invoices/{snapshot}/reissue", "/archive", {"reason": "wrong"}),
        ("/scheduler", "/scheduler", {"enabled": "on", "day_of_month": "5", "hour": "3",
                                      "period": "previous", "scope": "all"}),
    ]


def _state(ledger_db_url: str) -> dict[str, Any]:
    """What the forms above could change."""
    database = in_db(ledger_db_url)
    try:
        with database.transaction() as session:
            return {
                "plans": sorted((plan.plan_name, str(plan.per_user)) for plan in
                                session.scalars(select(BillingPlan))),
                "client": session.scalar(select(ClientBillingOverride.id)),
                "items": sorted((item.name, str(item.amount)) for item in
                                session.scalars(select(CustomLineItem))),
                "snapshots": sorted((snap.invoice_number, snap.void is not None) for snap in
                                    session.scalars(select(BillingSnapshot))),
                "schedule": [(row.enabled, row.day_of_month) for row in
                             session.scalars(select(ScheduledSnapshot))],
                "jobs": len(list(session.scalars(select(SnapshotJob)))),
            }
    finally:
        database.dispose()


def test_technicians_and_clients_cannot_post_any_form(
        client: FlaskClient, as_user: Headers, everything: dict[str, int],
        ledger_db_url: str) -> None:
    before = _state(ledger_db_url)
    tech = as_user("technician")
    # A technician's pages show no forms; a valid token of the browser session (taken from a
    # billing user's page in the same session) still gets a technician nowhere.
    token = csrf(page(client, as_user("billing"), "/plans"))
    for path, _, data in every_form(everything["snapshot"], everything["row"],
                                    everything["plan"]):
        response = client.post(path, headers={**HTML, **tech},
                               data={"csrf_token": token, **data})
        assert response.status_code == 403, (path, response.status_code)
    # A client user has no page to take a token from: a token from nowhere is refused too.
    customer = as_user("client", account_number="620547")
    for path, _, data in every_form(everything["snapshot"], everything["row"],
                                    everything["plan"]):
        response = client.post(path, headers={**HTML, **customer}, data=data)
        assert response.status_code in (400, 403), path
    assert _state(ledger_db_url) == before


def test_forms_refuse_a_missing_or_wrong_csrf_token(
        client: FlaskClient, billing: dict[str, str], everything: dict[str, int],
        ledger_db_url: str) -> None:
    before = _state(ledger_db_url)
    page(client, billing, "/plans")  # a session exists: only the token is missing or wrong
    for path, _, data in every_form(everything["snapshot"], everything["row"],
                                    everything["plan"]):
        for token in (None, "not-the-token"):
            sent = data if token is None else {**data, "csrf_token": token}
            response = client.post(path, headers={**HTML, **billing}, data=sent)
            assert response.status_code == 400, (path, token, response.status_code)
            assert "CSRF" in response.get_data(as_text=True), path
    assert _state(ledger_db_url) == before


# --- the dashboard and the clients table ---------------------------------------------------

def test_dashboard_totals_contracts_and_errors(client: FlaskClient, billing: dict[str, str],
                                               gold: dict[str, Any]) -> None:
    html = page(client, billing, f"/?{MARCH}")
    # Acme 590 (two users, two assets, backup, 2 hours) + Beta 30; Gamma has no plan.
    assert by_testid(html, "revenue") == "620.00"
    assert by_testid(html, "companies-count") == "3"
    assert by_testid(html, "errors-count") == "1"
    assert by_testid(html, "active-contracts") == "2"
    assert by_testid(html, "expiring-count") == "1"
    assert by_testid(html, "expiring") == f"Beta Law — ends {_beta_end(client, billing)}"
    assert rows(html, "billing-errors") == [
        "Gamma Shop 620549 no plan 'Platinum' for term '1 Year'"]
    for account in ("620547", "620548", "620549"):
        assert f'href="/clients/{account}?year=2026&amp;month=3"' in html
    assert 'href="/api/billing/bulk-invoices?year=2026&amp;month=3"' in html
    # The month picker defaults to this month.
    now = datetime.now(UTC)
    current = page(client, billing, "/")
    assert f'name="year" type="number" min="1970" max="9999" value="{now.year}"' in current
    assert f'<option value="{now.month}" selected>' in current
    assert page(client, billing, "/?month=13", 400)


def _beta_end(client: FlaskClient, billing: dict[str, str]) -> str:
    board = api(client, billing, "GET", f"/api/billing/dashboard?{MARCH}")
    return str(next(row["contract_end_date"] for row in board["companies"]
                    if row["account_number"] == "620548"))


def test_clients_table_search_filters_sort_and_pages(client: FlaskClient,
                                                     billing: dict[str, str],
                                                     gold: dict[str, Any]) -> None:
    def names(query: str) -> list[str]:
        html = page(client, billing, f"/clients?{MARCH}&{query}")
        return [row.split(" 6205")[0] for row in rows(html, "clients")] if (
            'data-testid="clients"' in html) else []

    assert names("") == ["Acme Dental", "Beta Law", "Gamma Shop"]
    assert names("q=ACME") == ["Acme Dental"]
    assert names("q=620548") == ["Beta Law"]
    assert names("plan=Gold") == ["Acme Dental", "Beta Law"]
    assert names("plan=Platinum") == ["Gamma Shop"]  # the plan the company names
    assert names("errors=1") == ["Gamma Shop"]
    assert names("support_level=Billed+Hourly") == ["Acme Dental", "Beta Law"]
    assert names("sort=-total") == ["Acme Dental", "Beta Law", "Gamma Shop"]
    assert names("sort=total") == ["Gamma Shop", "Beta Law", "Acme Dental"]
    assert names("sort=-name") == ["Gamma Shop", "Beta Law", "Acme Dental"]
    assert names("sort=-name&per_page=1&page=2") == ["Beta Law"]
    html = page(client, billing, f"/clients?{MARCH}&sort=-name&per_page=1&page=2")
    assert by_testid(html, "shown-count") == "Showing 2\u20132 of 3 companies."
    # Sort and page links keep the filters and the month.
    assert ('href="/clients?year=2026&amp;month=3&amp;sort=-name&amp;per_page=1&amp;page=3"'
            in html)
    assert 'aria-sort="descending"' in html
    assert "Gamma Shop" in text(page(client, billing, f"/clients?{MARCH}&errors=1"))
    row = rows(page(client, billing, f"/clients?{MARCH}&errors=1"), "clients")[0]
    assert "no plan 'Platinum' for term '1 Year'" in row
    for bad in ("sort=price", "page=0", "page=9", "per_page=500"):
        page(client, billing, f"/clients?{MARCH}&{bad}", 400)
    page(client, billing, "/clients?year=2026&month=0", 400)


# --- one client's bill ---------------------------------------------------------------------

def test_client_page_breaks_the_bill_down(client: FlaskClient, billing: dict[str, str],
                                          gold: dict[str, Any], codex: Codex) -> None:
    api(client, billing, "POST", "/api/overrides/620547/line-items",
        {"name": "Firewall lease", "kind": "recurring", "amount": "10.00"}, 201)
    api(client, billing, "PUT", "/api/overrides/620547/client",
        {"prepaid_hours_monthly": {"enabled": True, "value": "0.5"},
         "prepaid_hours_yearly": {"enabled": True, "value": "1"}})
    html = page(client, billing, f"/clients/620547?{MARCH}")
    assert by_testid(html, "company-name").startswith("Acme Dental")
    assert rows(html, "lines-users") == ["Dana Paid codex 1 25.00 25.00",
                                         "Eli Paid codex 1 25.00 25.00"]
    assert rows(html, "lines-assets-Server") == ["SRV1 Server codex 1 120.00 120.00"]
    assert rows(html, "lines-assets-Workstation") == ["PC1 Workstation codex 1 30.00 30.00"]
    assert by_testid(html, "backup-included") == "1 TB"
    assert by_testid(html, "backup-overage") == "2 TB at 20.00 per TB"
    # 2 hours in March: 0.5 monthly prepaid, 1 of the yearly pool, 0.5 billed.
    assert by_testid(html, "hours-total") == "2"
    assert by_testid(html, "prepaid-monthly-used") == "0.5 of 0.5"
    assert by_testid(html, "prepaid-yearly-remaining").startswith("0 of 1")
    assert by_testid(html, "billable-hours").startswith("0.5 at 150.00")
    assert rows(html, "lines-custom") == ["Firewall lease Recurring manual 1 10.00 10.00"]
    # Users 50, assets 150, backup 90, hours 75, custom 10.
    assert by_testid(html, "bill-total") == "375.00"
    assert by_testid(html, "subtotal-hours") == "75.00"
    assert 'href="/api/billing/invoice/620547?year=2026&amp;month=3"' in html
    assert "Contract ends" in text(html) and 'data-testid="contract-expired"' not in html
    # Gamma's plan does not exist: the reason, and no CSV or accept button.
    gamma = page(client, billing, f"/clients/620549?{MARCH}")
    assert by_testid(gamma, "bill-error") == "no plan 'Platinum' for term '1 Year'"
    assert 'data-testid="download-csv"' not in gamma and "confirm-accept" not in gamma
    page(client, billing, f"/clients/999999?{MARCH}", 404)


def test_an_expired_contract_is_marked(client: FlaskClient, billing: dict[str, str],
                                       gold: dict[str, Any], codex: Codex,
                                       as_user: Headers) -> None:
    seeding.company(codex.app.test_client(), as_user("admin"), "620551", "Old Firm",
                    billing_plan="Gold", contract_term_length="1 Year",
                    contract_start_date="2020-01-01")
    html = page(client, billing, f"/clients/620551?{MARCH}")
    assert by_testid(html, "contract-expired") == "Contract expired"
    assert by_testid(html, "contract-end") == "2020-12-31 Expired"
    board = page(client, billing, f"/?{MARCH}")
    assert "Old Firm" in by_testid(board, "expired")


# --- the client's billing settings ---------------------------------------------------------

SETTINGS = "/clients/620547/settings"


def total(client: FlaskClient, headers: dict[str, str]) -> str:
    return by_testid(page(client, headers, f"/clients/620547?{MARCH}"), "bill-total")


def test_settings_forms_change_the_bill(client: FlaskClient, billing: dict[str, str],
                                        gold: dict[str, Any], codex: Codex,
                                        ledger_db_url: str) -> None:
    assert total(client, billing) == "590.00"
    # Client override: users free (an enabled 0 is honoured), the hourly rate left alone.
    location = redirected(post(client, billing, f"{SETTINGS}/client",
                               {"per_user_enabled": "on", "per_user": "0",
                                "per_hour": "99.00"}, SETTINGS))
    assert location == f"{SETTINGS}?saved=client"
    html = page(client, billing, location)
    assert by_testid(html, "saved") == "Saved."
    assert 'id="client-per_user_enabled" checked' in html
    assert total(client, billing) == "540.00"
    # Asset override: PC1 free of charge.
    redirected(post(client, billing, f"{SETTINGS}/assets",
                    {"asset_id": str(codex.ids["pc"]), "billing_type": "No Charge"}, SETTINGS))
    assert total(client, billing) == "510.00"
    # User override: Eli at a custom 5.
    redirected(post(client, billing, f"{SETTINGS}/users",
                    {"contact_id": str(codex.ids["eli"]), "billing_type": "Custom",
                     "custom_cost": "5.00"}, SETTINGS))
    assert total(client, billing) == "515.00"
    # Manual asset (a printer) and manual user (paid, but users are free here).
    redirected(post(client, billing, f"{SETTINGS}/manual-assets",
                    {"hostname": "PRN-1", "billing_type": "Custom", "custom_cost": "7.50",
                     "notes": "leased"}, SETTINGS))
    redirected(post(client, billing, f"{SETTINGS}/manual-users",
                    {"full_name": "Temp Worker", "billing_type": "Paid"}, SETTINGS))
    assert total(client, billing) == "522.50"
    # Custom line items of every kind: only those due in March 2026 bill.
    for item in ({"name": "Lease", "kind": "recurring", "amount": "10.00",
                  "start_period": "2026-01", "end_period": "2026-12"},
                 {"name": "Ended", "kind": "recurring", "amount": "1000.00",
                  "end_period": "2026-02"},
                 {"name": "Setup", "kind": "one_off", "amount": "100.00",
                  "one_off_period": "2026-03"},
                 {"name": "Renewal", "kind": "yearly", "amount": "200.00",
                  "yearly_month": "4"}):
        redirected(post(client, billing, f"{SETTINGS}/line-items", item, SETTINGS))
    assert total(client, billing) == "632.50"
    # Feature override: shown, no price.
    redirected(post(client, billing, f"{SETTINGS}/features",
                    {"feature_key": "antivirus", "value": "Defender", "enabled": "on"},
                    SETTINGS))
    bill = page(client, billing, f"/clients/620547?{MARCH}")
    assert "antivirus Defender override" in by_testid(bill, "features")
    assert by_testid(bill, "bill-total") == "632.50"
    html = page(client, billing, SETTINGS)
    assert rows(html, "rows-assets")[0].startswith("PC1 No Charge")
    assert rows(html, "rows-users")[0].startswith("Eli Custom 5.00")
    assert [row.split(" Edit")[0] for row in rows(html, "rows-line-items")] == [
        "Lease Recurring monthly 2026-01 to 2026-12 10.00",
        "Ended Recurring monthly … to 2026-02 1,000.00",
        "Setup One-off 2026-03 100.00", "Renewal Yearly each April 200.00"]

    # Edit a row on its own page; then delete it.
    database = in_db(ledger_db_url)
    with database.transaction() as session:
        setup = session.scalar(select(CustomLineItem.id).where(CustomLineItem.name == "Setup"))
    database.dispose()
    edit = f"{SETTINGS}/line-items/{setup}"
    form = page(client, billing, edit)
    assert 'name="one_off_period" type="month" value="2026-03"' in form
    redirected(post(client, billing, edit, {"name": "Setup", "kind": "one_off",
                                            "amount": "40.00", "one_off_period": "2026-03"},
                    edit))
    assert total(client, billing) == "572.50"
    redirected(post(client, billing, f"{edit}/delete", {"go": "1"}, SETTINGS))
    assert total(client, billing) == "532.50"
    page(client, billing, edit, 404)
    # Removing the client override brings the plan's 25 per user back for Dana and the
    # manual user (Eli keeps his custom 5).
    redirected(post(client, billing, f"{SETTINGS}/client/delete", {"go": "1"}, SETTINGS))
    assert total(client, billing) == "582.50"


def test_settings_refusals_name_the_field_and_write_nothing(
        client: FlaskClient, billing: dict[str, str], gold: dict[str, Any], codex: Codex,
        ledger_db_url: str) -> None:
    before = _state(ledger_db_url)
    cases = [
        (f"{SETTINGS}/client", {"per_user_enabled": "on", "per_user": "abc"},
         "client-per_user-error", 422, "per_user"),
        (f"{SETTINGS}/client", {"per_user_enabled": "on", "per_user": ""},
         "client-per_user-error", 422, "enabled without a value"),
        (f"{SETTINGS}/assets", {"asset_id": str(codex.ids["pc"]), "billing_type": "Custom"},
         "assets-new-custom_cost-error", 422, "needs a custom cost"),
        (f"{SETTINGS}/assets", {"asset_id": "x", "billing_type": "Server"},
         "assets-new-asset_id-error", 422, "expected an integer"),
        (f"{SETTINGS}/manual-users", {"full_name": "", "billing_type": "Paid"},
         "manual-users-new-full_name-error", 422, "missing"),
        (f"{SETTINGS}/line-items", {"name": "Setup", "kind": "one_off", "amount": "1.00",
                                    "one_off_period": "March"},
         "line-items-new-one_off_period-error", 422, "is not YYYY-MM"),
        (f"{SETTINGS}/line-items", {"name": "Fee", "kind": "recurring", "amount": "1.005"},
         "line-items-new-amount-error", 422, "more than two decimals"),
    ]
    for path, data, error_id, status, words in cases:
        response = post(client, billing, path, data, SETTINGS)
        html = response.get_data(as_text=True)
        assert response.status_code == status, (path, data, response.status_code)
        assert error_id in html, (path, data)
        assert words in by_id(html, error_id), (path, data)
    # A one-off without its month: the whole-row check, shown above the form.
    response = post(client, billing, f"{SETTINGS}/line-items",
                    {"name": "Setup", "kind": "one_off", "amount": "1.00"}, SETTINGS)
    assert response.status_code == 422
    assert "needs its year and month" in by_testid(response.get_data(as_text=True), "form-error")
    # The values typed in are shown again in the failed form.
    response = post(client, billing, f"{SETTINGS}/manual-assets",
                    {"hostname": "NAS", "billing_type": "Custom"}, SETTINGS)
    assert 'id="manual-assets-new-hostname" name="hostname" type="text" value="NAS"' in (
        response.get_data(as_text=True))
    # A second override of the same asset is a conflict, under its field.
    redirected(post(client, billing, f"{SETTINGS}/assets",
                    {"asset_id": str(codex.ids["pc"]), "billing_type": "Server"}, SETTINGS))
    response = post(client, billing, f"{SETTINGS}/assets",
                    {"asset_id": str(codex.ids["pc"]), "billing_type": "VM"}, SETTINGS)
    assert response.status_code == 409
    assert "already" in by_id(response.get_data(as_text=True), "assets-new-asset_id-error")
    after = _state(ledger_db_url)
    assert after == before
    # An edit that empties a required field is refused, and the row keeps its values.
    row = api(client, billing, "POST", "/api/overrides/620547/manual-users",
              {"full_name": "Kim"}, 201)
    edit = f"{SETTINGS}/manual-users/{row['id']}"
    response = post(client, billing, edit, {"full_name": "", "billing_type": "Paid"}, edit)
    assert response.status_code == 422
    assert "missing" in by_id(response.get_data(as_text=True), "edit-full_name-error")
    rows_now = api(client, billing, "GET", "/api/overrides/620547/manual-users")
    assert [entry["full_name"] for entry in rows_now] == ["Kim"]
    assert post(client, billing, f"{SETTINGS}/nonsense", {"go": "1"},
                SETTINGS).status_code == 404


def by_id(html: str, element_id: str) -> str:
    """The text of the element with this id."""
    found = re.search(rf'<(\w+)[^>]*id="{re.escape(element_id)}"[^>]*>(.*?)</\1>', html, re.S)
    assert found, f"no element #{element_id}"
    return text(found.group(2))


# --- plans ---------------------------------------------------------------------------------

def test_plans_create_edit_delete_export_import(client: FlaskClient, billing: dict[str, str],
                                                ledger_db_url: str) -> None:
    response = post(client, billing, "/plans", {
        "plan_name": "Gold", "term_length": "1 Year", "support_level": "Billed Hourly",
        "per_user": "25.00", "per_workstation": "30", "per_server": "120.00",
        "per_hour": "150.00", "backup_base_server": "50.00", "backup_included_tb": "1",
        "backup_per_tb": "20.00", "features": "antivirus: SentinelOne\n\nsoc = Included"},
        "/plans")
    assert redirected(response) == "/plans?done=created"
    html = page(client, billing, "/plans?done=created")
    assert by_testid(html, "notice") == "The plan was created."
    assert rows(html, "plans") == [
        "Gold 1 Year Billed Hourly 25.00 30.00 120.00 150.00 antivirus: SentinelOne; "
        "soc: Included Delete"]
    # The plan now prices Acme's bill.
    assert total(client, billing) == "590.00"
    plan_id = int(re.findall(r'data-plan="(\d+)"', html)[0])
    edit = page(client, billing, f"/plans/{plan_id}")
    assert 'id="plan-per_user" name="per_user" type="text" value="25.00"' in edit
    assert "antivirus: SentinelOne\nsoc: Included</textarea>" in edit
    redirected(post(client, billing, f"/plans/{plan_id}",
                    {"plan_name": "Gold", "term_length": "1 Year", "per_user": "20.00",
                     "features": "antivirus: SentinelOne"}, f"/plans/{plan_id}"))
    assert total(client, billing) == "580.00"
    # Refusals under their field, nothing written.
    for data, error_id, status, words in (
            ({"plan_name": "Gold", "term_length": "1 Year"}, "new-plan_name-error", 409,
             "exists already"),
            ({"plan_name": "", "term_length": "1 Year"}, "new-plan_name-error", 422,
             "missing"),
            ({"plan_name": "Silver", "term_length": "1 Year", "per_vm": "-1"},
             "new-per_vm-error", 422, "negative"),
            ({"plan_name": "Silver", "term_length": "1 Year", "features": "no separator"},
             "new-features-error", 422, "line 1"),
            ({"plan_name": "Silver", "term_length": "1 Year", "support_level": "Gold"},
             "new-support_level-error", 422, "is not one of")):
        response = post(client, billing, "/plans", data, "/plans")
        assert response.status_code == status, (data, response.status_code)
        assert words in by_id(response.get_data(as_text=True), error_id), data
    response = post(client, billing, f"/plans/{plan_id}", {"per_server": "x"},
                    f"/plans/{plan_id}")
    assert response.status_code == 422
    assert "per_server" in by_id(response.get_data(as_text=True), "plan-per_server-error")
    assert 'value="x"' in response.get_data(as_text=True)  # what was typed, shown again

    # Export, then import it back changed: one updated, one created.
    exported = client.get("/plans/export.json", headers=billing)
    assert exported.status_code == 200 and exported.mimetype == "application/json"
    assert exported.headers["Content-Disposition"] == (
        'attachment; filename="billing-plans.json"')
    document = json.loads(exported.data)
    assert [(plan["plan_name"], plan["per_user"]) for plan in document["plans"]] == [
        ("Gold", "20.00")]
    document["plans"][0]["per_user"] = "22.00"
    document["plans"].append({**document["plans"][0], "plan_name": "Silver"})
    response = post(client, billing, "/plans/import", {
        "file": (io.BytesIO(json.dumps(document).encode()), "plans.json")}, "/plans",
        content_type="multipart/form-data")
    location = redirected(response)
    assert by_testid(page(client, billing, location), "notice") == (
        "Imported: 1 plans created, 1 updated.")
    assert total(client, billing) == "584.00"
    # A bad file is refused whole, with the reason.
    bad = {"plans": [{**document["plans"][0], "plan_name": "Platinum"},
                     {"plan_name": "Broken", "term_length": "1 Year", "per_user": 1.5}]}
    for body, words in ((json.dumps(bad).encode(), "plans[1].per_user"),
                        (b"{not json", "not a JSON document")):
        response = post(client, billing, "/plans/import",
                        {"file": (io.BytesIO(body), "plans.json")}, "/plans",
                        content_type="multipart/form-data")
        assert response.status_code in (400, 422)
        assert words in by_id(response.get_data(as_text=True), "import-file-error")
    names = [plan["plan_name"] for plan in api(client, billing, "GET", "/api/plans")]
    assert names == ["Gold", "Silver"]
    # Delete.
    redirected(post(client, billing, f"/plans/{plan_id}/delete", {"go": "1"}, "/plans"))
    assert [plan["plan_name"] for plan in api(client, billing, "GET", "/api/plans")] == [
        "Silver"]
    bill = page(client, billing, f"/clients/620547?{MARCH}")
    assert by_testid(bill, "bill-error") == "no plan 'Gold' for term '1 Year'"
    page(client, billing, f"/plans/{plan_id}", 404)


# --- accepting bills, the archive ----------------------------------------------------------

def test_accept_bill_then_archived_badge_and_already_accepted(
        client: FlaskClient, billing: dict[str, str], gold: dict[str, Any],
        ledger_db_url: str) -> None:
    before = page(client, billing, f"/clients/620547?{MARCH}")
    assert 'data-testid="accept-form"' in before and "archived-badge" not in before
    location = redirected(accept(client, billing, notes="March, as agreed"))
    assert location == "/clients/620547?accepted=1&year=2026&month=3"
    html = page(client, billing, location)
    assert by_testid(html, "accepted-notice") == "The bill is accepted and archived."
    assert by_testid(html, "archived-badge") == "Archived: 620547-202603"
    assert 'data-testid="accept-form"' not in html
    # Accepting again (a second tab, a double click): a clear message, nothing written.
    response = post(client, billing, "/clients/620547/accept",
                    {"year": "2026", "month": "3"}, "/plans")
    assert response.status_code == 409
    message = by_testid(response.get_data(as_text=True), "page-error")
    assert message.startswith("This bill is already accepted (invoice 620547-202603)")
    # A bill with an error cannot be accepted; the reason is shown.
    response = post(client, billing, "/clients/620549/accept",
                    {"year": "2026", "month": "3"}, "/plans")
    assert response.status_code == 422
    assert "no plan 'Platinum' for term '1 Year'" in by_testid(response.get_data(as_text=True),
                                                            "page-error")
    for data in ({"year": "2026"}, {"year": "2026", "month": "13"}, {"year": "x", "month": "3"}):
        response = post(client, billing, "/clients/620548/accept", data, "/plans")
        assert response.status_code == 400, data
    assert _state(ledger_db_url)["snapshots"] == [("620547-202603", False)]
    # The dashboard counts it, and the snapshot page has the lines and the notes.
    board = page(client, billing, f"/?{MARCH}")
    assert by_testid(board, "accepted-count") == "1"
    snap = snapshot_id(_archived_link(html))
    detail = page(client, billing, f"/archive/invoices/{snap}")
    assert "Notes March, as agreed" in by_testid(detail, "snapshot-details")
    assert by_testid(detail, "snapshot-total") == "590.00"
    assert "users Dana Paid codex 1 25.00 25.00" in rows(detail, "snapshot-lines")
    csv = client.get(f"/archive/snapshots/{snap}/csv", headers=billing)
    assert csv.status_code == 200 and csv.data.startswith(b"InvoiceNo,Customer")
    assert f'href="/archive/snapshots/{snap}/csv"' in detail


def _archived_link(html: str) -> str:
    found = re.search(r'href="(/archive/invoices/\d+)"[^>]*data-testid="archived-badge"', html)
    assert found
    return found.group(1)


def test_archive_search_void_and_reissue(client: FlaskClient, billing: dict[str, str],
                                         gold: dict[str, Any], ledger_db_url: str) -> None:
    redirected(accept(client, billing))
    redirected(accept(client, billing, "620548"))

    def found(query: str) -> list[str]:
        html = page(client, billing, f"/archive?{query}")
        return [row.split(" ")[0] for row in rows(html, "snapshots")] if (
            'data-testid="snapshots"' in html) else []

    assert found("") == ["620547-202603", "620548-202603"]
    assert found("company=acme") == ["620547-202603"]
    assert found("company=620548") == ["620548-202603"]
    assert found("invoice_number=0548-2026") == ["620548-202603"]
    assert found("year=2026&month=3") == ["620547-202603", "620548-202603"]
    assert found("year=2026&month=4") == []
    today = datetime.now(UTC).date().isoformat()
    assert found(f"from_date={today}&to_date={today}") == ["620547-202603", "620548-202603"]
    assert found("to_date=2020-01-01") == []
    assert found("per_page=1&page=2") == ["620548-202603"]
    for bad in ("from_date=yesterday", "month=13", "year=x", "page=0"):
        page(client, billing, f"/archive?{bad}", 400)

    acme = snapshot_id(_archived_link(page(client, billing, f"/clients/620547?{MARCH}")))
    beta = snapshot_id(_archived_link(page(client, billing, f"/clients/620548?{MARCH}")))
    detail = f"/archive/invoices/{acme}"
    # A reason is required.
    response = post(client, billing, f"{detail}/reissue", {"reason": " "}, detail)
    assert response.status_code == 422
    assert "reason" in by_testid(response.get_data(as_text=True), "page-error")
    # Re-issue after a price change: the original stays, voided; the new one is -R1.
    api(client, billing, "PUT", f"/api/plans/{gold['id']}", {"per_user": "30.00"})
    location = redirected(post(client, billing, f"{detail}/reissue",
                               {"reason": "Price corrected"}, detail))
    new = snapshot_id(location)
    html = page(client, billing, location)
    assert "Invoice 620547-202603-R1" in text(html)
    assert by_testid(html, "notice") == "The bill was re-issued as 620547-202603-R1."
    assert by_testid(html, "snapshot-total") == "600.00"
    assert by_testid(html, "replaces") == "Replaces 620547-202603 ."
    old = page(client, billing, detail)
    assert by_testid(old, "void-badge") == "Void"
    assert by_testid(old, "snapshot-total") == "590.00"
    assert "Price corrected" in by_testid(old, "void-details")
    assert by_testid(old, "successor") == "Re-issued as 620547-202603-R1 ."
    assert "confirm-reissue" not in old  # the successor exists: nothing more to do here
    # The client page links the live snapshot.
    assert _archived_link(page(client, billing, f"/clients/620547?{MARCH}")) == (
        f"/archive/invoices/{new}")
    # Void only: the period is open again, and a second void is refused with a message.
    beta_page = f"/archive/invoices/{beta}"
    redirected(post(client, billing, f"{beta_page}/void", {"reason": "Sent twice"},
                    beta_page))
    assert "archived-badge" not in page(client, billing, f"/clients/620548?{MARCH}")
    response = post(client, billing, f"{beta_page}/void", {"reason": "again"}, beta_page)
    assert response.status_code == 409
    assert "voided already" in by_testid(response.get_data(as_text=True), "page-error")
    assert _state(ledger_db_url)["snapshots"] == [
        ("620547-202603", True), ("620547-202603-R1", False), ("620548-202603", True)]
    page(client, billing, "/archive/invoices/999", 404)


# --- accepting every bill, the scheduler ---------------------------------------------------

def test_accept_all_runs_in_the_background_with_a_progress_page(
        client: FlaskClient, billing: dict[str, str], gold: dict[str, Any],
        ledger_app: Flask, ledger_db_url: str) -> None:
    response = post(client, billing, "/jobs", {"year": "2026", "month": "3"}, f"/?{MARCH}")
    location = redirected(response)
    assert re.fullmatch(r"/jobs/\d+", location)
    join_jobs(ledger_app)
    html = page(client, billing, location)
    assert by_testid(html, "job-status") == "finished"
    assert by_testid(html, "job-progress") == "3 of 3 companies"
    assert (by_testid(html, "job-created"), by_testid(html, "job-skipped"),
            by_testid(html, "job-failed")) == ("2", "0", "1")
    assert rows(html, "job-errors") == [
        "620549 620549 2026-03: no plan 'Platinum' for term '1 Year'"]
    assert "ledger-job.js" not in html  # a finished job is not polled
    assert _state(ledger_db_url)["snapshots"] == [("620547-202603", False),
                                                  ("620548-202603", False)]
    # The job is in the scheduler page's history.
    history = rows(page(client, billing, "/scheduler"), "jobs")
    assert history[0].split(" UTC")[0].startswith(f"{location.rsplit('/', 1)[1]} 2026-03")
    assert history[0].endswith("finished 3 / 3 2 0 1")
    # A job that has not finished is followed by the static script, polling its JSON.
    queued = api(client, billing, "GET", "/archive/jobs")[0]
    database = in_db(ledger_db_url)
    with database.transaction() as session:
        job = SnapshotJob(year=2026, month=4, status="queued", trigger="manual",
                          triggered_by="test", errors=[])
        session.add(job)
        session.flush()
        waiting = job.id
    database.dispose()
    html = page(client, billing, f"/jobs/{waiting}")
    poll = re.search(r'data-job-poll="([^"]+)"', html)
    assert poll and poll.group(1).endswith(f"/jobs/{waiting}"), poll
    assert api(client, billing, "GET", poll.group(1))["status"] == "queued"
    assert '<script src="/static/ledger-job.js" defer></script>' in html
    script = client.get("/static/ledger-job.js")
    assert script.status_code == 200 and b"textContent" in script.data
    assert b"innerHTML" not in script.data
    assert api(client, billing, "GET", f"/archive/jobs/{waiting}")["status"] == "queued"
    assert queued["status"] == "finished"
    page(client, billing, "/jobs/999", 404)


def test_scheduler_config_is_saved(client: FlaskClient, billing: dict[str, str],
                                   ledger_db_url: str) -> None:
    html = page(client, billing, "/scheduler")
    assert 'id="day_of_month" name="day_of_month" type="number" min="1" max="28" value="1"' in (
        html)
    location = redirected(post(client, billing, "/scheduler", {
        "enabled": "on", "day_of_month": "5", "hour": "3", "period": "current",
        "scope": "list", "account_numbers": "620547, 620548\n620547"}, "/scheduler"))
    assert by_testid(page(client, billing, location), "saved") == "The schedule was saved."
    config = api(client, billing, "GET", "/archive/scheduler/config")
    assert config == {"enabled": True, "day_of_month": 5, "hour": 3, "period": "current",
                      "account_numbers": ["620547", "620548"], "last_run_period": None}
    html = page(client, billing, "/scheduler")
    assert 'id="schedule-enabled" checked' in html
    assert 'name="scope" value="list" checked' in html
    assert ">620547\n620548</textarea>" in html
    for data, field, words in (
            ({"day_of_month": "31", "hour": "3", "period": "previous", "scope": "all"},
             "day_of_month", "between 1 and 28"),
            ({"day_of_month": "1", "hour": "24", "period": "previous", "scope": "all"},
             "hour", "between 0 and 23"),
            ({"day_of_month": "1", "hour": "2", "period": "next", "scope": "all"},
             "period", "is not one of"),
            ({"day_of_month": "1", "hour": "2", "period": "previous", "scope": "list",
              "account_numbers": " "}, "account_numbers", "at least one")):
        response = post(client, billing, "/scheduler", data, "/scheduler")
        assert response.status_code == 422, data
        assert words in by_id(response.get_data(as_text=True), f"{field}-error"), data
    assert api(client, billing, "GET", "/archive/scheduler/config") == config
    # Back to every company, disabled.
    redirected(post(client, billing, "/scheduler", {
        "day_of_month": "5", "hour": "3", "period": "previous", "scope": "all"}, "/scheduler"))
    config = api(client, billing, "GET", "/archive/scheduler/config")
    assert (config["enabled"], config["account_numbers"], config["period"]) == (
        False, None, "previous")


# --- escaping ------------------------------------------------------------------------------

def test_a_company_name_with_markup_is_escaped_everywhere(
        client: FlaskClient, billing: dict[str, str], gold: dict[str, Any],
        xss_company: str, ledger_app: Flask) -> None:
    api(client, billing, "POST", f"/api/overrides/{xss_company}/manual-assets",
        {"hostname": "<img src=x onerror=alert(1)>", "billing_type": "<b>Odd</b>"}, 201)
    location = redirected(accept(client, billing, xss_company))
    snap = snapshot_id(_archived_link(page(client, billing, location)))
    redirected(post(client, billing, "/jobs", {"year": "2026", "month": "3"}, f"/?{MARCH}"))
    join_jobs(ledger_app)
    job = api(client, billing, "GET", "/archive/jobs")[0]["id"]
    for path in (f"/?{MARCH}", f"/clients?{MARCH}", f"/clients/{xss_company}?{MARCH}",
                 f"/clients/{xss_company}/settings", "/archive", "/archive?company=script",
                 f"/archive/invoices/{snap}", f"/jobs/{job}"):
        html = page(client, billing, path)
        assert "<script>alert" not in html and "<img src=x" not in html, path
        assert "<b>Odd" not in html, path
    for path in (f"/?{MARCH}", f"/clients?{MARCH}", f"/clients/{xss_company}?{MARCH}",
                 f"/clients/{xss_company}/settings", "/archive", f"/archive/invoices/{snap}"):
        assert "&lt;script&gt;alert(" in page(client, billing, path), path
    bill = page(client, billing, f"/clients/{xss_company}?{MARCH}")
    assert "&lt;img src=x onerror=alert(1)&gt;" in bill
    assert "unknown billing" in by_testid(bill, "warnings")


# --- the helpers, alone --------------------------------------------------------------------

ROWS = [
    {"account_number": "2", "company_name": "beta", "plan_name": "Gold",
     "support_level": "Billed Hourly", "total": "30.00", "user_count": 1, "asset_count": 4,
     "hours": "0", "contract_end_date": "2026-05-01", "error": None},
    {"account_number": "1", "company_name": "Acme", "plan_name": "Silver",
     "support_level": "All Inclusive", "total": "120.50", "user_count": 3, "asset_count": 1,
     "hours": "2.5", "contract_end_date": None, "error": None},
    {"account_number": "3", "company_name": "Gamma", "plan_name": "Platinum",
     "support_level": None, "total": "0.00", "user_count": 0, "asset_count": 0,
     "hours": "0", "contract_end_date": "2025-01-01", "error": "no plan"},
]


def accounts(found: list[Any]) -> list[str]:
    return [row["account_number"] for row in found]


def test_table_selection_and_order() -> None:
    assert accounts(tables.select_rows(ROWS, q="AC")) == ["1"]
    assert accounts(tables.select_rows(ROWS, q="3")) == ["3"]
    assert accounts(tables.select_rows(ROWS, plan="Gold")) == ["2"]
    assert accounts(tables.select_rows(ROWS, support_level="All Inclusive")) == ["1"]
    assert accounts(tables.select_rows(ROWS, errors_only=True)) == ["3"]
    assert accounts(tables.select_rows(ROWS, q="a", plan="Silver")) == ["1"]
    assert accounts(tables.sort_rows(ROWS, "name")) == ["1", "2", "3"]  # any case
    assert accounts(tables.sort_rows(ROWS, "-total")) == ["1", "2", "3"]
    assert accounts(tables.sort_rows(ROWS, "hours")) == ["2", "3", "1"]  # ties by account
    assert accounts(tables.sort_rows(ROWS, "contract_end")) == ["3", "2", "1"]  # none last
    assert accounts(tables.sort_rows(ROWS, "-users")) == ["1", "2", "3"]


def test_table_query_pages_and_links() -> None:
    query = tables.TableQuery({"q": " acme ", "sort": "-total", "page": "2", "per_page": "1"},
                              tuple(tables.SORTS))
    assert query.values == {"q": "acme"}
    pager, shown = query.window(ROWS)
    assert (pager.pages, pager.first_shown, pager.last_shown) == (3, 2, 2)
    assert accounts(list(shown)) == ["1"]
    assert query.link_args(page=3) == {"q": "acme", "sort": "-total", "per_page": 1,
                                       "page": 3}
    headers = query.headers()
    assert headers["total"] == tables.SortHeader("total", "descending")
    assert headers["name"] == tables.SortHeader("name", None)
    assert tables.Pager(5, 10, 100).links() == [1, None, 3, 4, 5, 6, 7, None, 10]
    assert tables.Pager(1, 10, 0).links() == [1]
    for args, field in (({"sort": "price"}, "sort"), ({"page": "0"}, "page"),
                        ({"per_page": "201"}, "per_page"), ({"page": "two"}, "page")):
        with pytest.raises(LedgerError) as refused:
            tables.TableQuery(args, tuple(tables.SORTS))
        assert (refused.value.field, refused.value.status) == (field, 400)
    with pytest.raises(LedgerError, match="page: must be between 1 and 3"):
        tables.TableQuery({"page": "4", "per_page": "1"}, tuple(tables.SORTS)).window(ROWS)


def test_form_conversions() -> None:
    assert forms.parse_features("antivirus: SentinelOne\n\n soc = Included \nsat:") == {
        "antivirus": "SentinelOne", "soc": "Included", "sat": ""}
    for bad, words in (("no separator", "line 1"), (": value", "line 1"),
                       ("a: 1\na: 2", "appears twice")):
        with pytest.raises(LedgerError, match=words):
            forms.parse_features(bad)
    assert forms.features_text({"a": "1", "b": "2"}) == "a: 1\nb: 2"
    assert forms.row_body("line-items", {"name": " Fee ", "kind": "yearly", "amount": "5",
                                         "yearly_month": "4", "start_period": ""}) == {
        "name": "Fee", "description": "", "kind": "yearly", "amount": "5",
        "start_period": None, "end_period": None, "one_off_period": None, "yearly_month": 4}
    # What does not convert is handed on, for the module to refuse by name.
    assert forms.row_body("assets", {"asset_id": "x"})["asset_id"] == "x"
    assert forms.row_body("features", {"feature_key": "k", "value": "v"})["enabled"] is False
    client = forms.client_body({"per_user_enabled": "on", "per_user": "0", "per_vm": "5"})
    assert client["per_user"] == {"enabled": True, "value": "0"}
    assert client["per_vm"] == {"enabled": False, "value": "5"}
    assert client["plan_name"] == {"enabled": False, "value": None}
    assert forms.plan_body({"plan_name": "Gold", "per_user": "", "features": ""}) == {
        "plan_name": "Gold", "features": {}}
    assert forms.account_list("1, 2\n3;1  4") == ["1", "2", "3", "4"]
    assert forms.schedule_body({"day_of_month": "5", "hour": "0", "period": "current",
                                "scope": "all"}) == {
        "enabled": False, "day_of_month": 5, "hour": 0, "period": "current",
        "account_numbers": None}
    assert forms.schedule_body({"enabled": "on", "scope": "list",
                                "account_numbers": "9 8"})["account_numbers"] == ["9", "8"]
    with pytest.raises(LedgerError, match="scope"):
        forms.schedule_body({"scope": "some"})
