"""Ledger's pages in a real Chromium, signed in through Nexus: identity, Core, Codex, Ledger
and Nexus run as real processes.

Codex is seeded through its API (companies, contacts, assets) by an admin signed in through
Nexus; a ticket and its time entries go straight into Codex's database, as its PSA sync
writes them (Codex has no API that creates tickets). Ledger's plan and a custom line item
are created through Ledger's API by the billing user, also through Nexus.

The bill of Acme Dental for March 2026, worked by hand from that data and the Gold plan:

- users: Dana and Eli at 25.00 (Fay is inactive, not billed)            =  50.00
- assets: SRV1 (Server) 120.00, PC1 (Workstation) 30.00                 = 150.00
- backup: one backed-up workstation (0.5 TB) at 5.00 and one server
  (3 TB) at 50.00; 2 TB included (1 per device), 1.5 TB over at 20.00   =  85.00
- hours: 2 in March (the February entry is February's), 1 prepaid a
  month, 1 billed at 150.00                                             = 150.00
- custom: "Firewall lease", recurring, 10.00                            =  10.00
                                                                  total   445.00

Beta Law: one workstation, nobody to bill = 30.00. Gamma Shop names a plan Ledger does not
have: an error, no total. Revenue 475.00.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from hivematrix.codex.models import Ticket, TimeEntry
from hivematrix.common.config import load_settings
from hivematrix.common.db import Database
from hivematrix.common.testing import watched_page
from tests.codex import seeding
from tests.nexus.conftest import Platform, running_platform, sign_in

pytestmark = [pytest.mark.browser, pytest.mark.processes]
OUTPUT = Path(os.environ.get("HIVEMATRIX_TEST_OUTPUT",
                             Path(__file__).resolve().parents[2] / "test-output"))
TB = 2**40
MARCH = "year=2026&month=3"
GOLD = {"plan_name": "Gold", "term_length": "1 Year", "support_level": "Billed Hourly",
        "per_user": "25.00", "per_workstation": "30.00", "per_server": "120.00",
        "per_hour": "150.00", "backup_base_workstation": "5.00",
        "backup_base_server": "50.00", "backup_included_tb": "1", "backup_per_tb": "20.00",
        "prepaid_hours_monthly": "1", "features": {"antivirus": "SentinelOne"}}
#: Acme's QuickBooks rows (after the header fields), each worked out in the docstring.
ACME_ROWS = [
    ["Managed Users", "Users", "2", "25.00", "50.00"],
    ["Managed Devices", "Servers", "1", "120.00", "120.00"],
    ["Managed Devices", "Workstations", "1", "30.00", "30.00"],
    ["Backup Services", "Workstation backup base fee", "1", "5.00", "5.00"],
    ["Backup Services", "Server backup base fee", "1", "50.00", "50.00"],
    ["Backup Services", "Backup storage overage (TB)", "1.5", "20.00", "30.00"],
    ["Hourly Labor", "Billable hours (Billed Hourly)", "1", "150.00", "150.00"],
    ["Custom Services", "Firewall lease (Recurring)", "1", "10.00", "10.00"],
]


@dataclass
class LedgerPlatform:
    platform: Platform
    #: Beta Law's contract end, as Codex computed it from the start date the test sent.
    beta_end: str


def ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, (response.status_code, response.text)
    return response.json()


def seed_codex(admin: httpx.Client) -> None:
    """Companies, contacts and assets through Codex's API, as an admin through Nexus."""
    # Contract ends are relative to the real today, which the dashboard measures from: Acme's
    # runs for most of a year, Beta's one-year contract ends in 9 days.
    today = datetime.now(UTC).date()
    soon = today + timedelta(days=10)
    soon = soon.replace(year=soon.year - 1, day=min(soon.day, 28))
    companies = [("620547", "Acme Dental", "Gold", (today - timedelta(days=30)).isoformat()),
                 ("620548", "Beta Law", "Gold", soon.isoformat()),
                 ("620549", "Gamma Shop", "Platinum", None)]
    for account, name, plan, start in companies:
        ok(admin.post("/codex/api/companies", json={
            "account_number": account, "name": name, "billing_plan": plan,
            "contract_term_length": "1 Year", "contract_start_date": start}), 201)
    for name, role, active in (("Dana", "primary", True), ("Eli", "general", True),
                               ("Fay", "general", False)):
        ok(admin.post("/codex/api/contacts", json={
            "name": name, "email": f"{name.lower()}@acme.example", "active": active,
            "roles": [{"account_number": "620547", "role": role}]}), 201)
    for account, hostname, category, backup in (("620547", "SRV1", "Server", 3 * TB),
                                                ("620547", "PC1", "Laptop", TB // 2),
                                                ("620548", "BPC", "Desktop", None)):
        created = ok(admin.post("/codex/api/assets", json={
            "account_number": account, "hostname": hostname, "device_category": category,
            "backup_bytes": backup}), 201)
        assert created["billing_type"] == ("Server" if category == "Server" else "Workstation")


def seed_tickets(home: Path) -> None:
    """A closed ticket with time in February and March, as the PSA sync writes it."""
    url = load_settings("codex", environ={"HIVEMATRIX_HOME": str(home)})["DATABASE_URL"]
    database = Database(url)
    try:
        with database.transaction() as session:
            worked = Ticket(source="freshservice", external_id="1", number="101",
                            company_id=seeding.company_id(session, "620547"),
                            subject="Server slow", status="closed", priority="high",
                            created_at=datetime(2026, 2, 20, tzinfo=UTC),
                            closed_at=datetime(2026, 3, 4, tzinfo=UTC),
                            total_hours=Decimal("3.50"))
            session.add(worked)
            session.flush()
            session.add_all([
                TimeEntry(ticket_id=worked.id, external_id="a", hours=Decimal("1.50"),
                          billable=True, executed_at=datetime(2026, 2, 20, tzinfo=UTC)),
                TimeEntry(ticket_id=worked.id, external_id="b", hours=Decimal("2.00"),
                          billable=True, executed_at=datetime(2026, 3, 3, tzinfo=UTC))])
    finally:
        database.dispose()


@pytest.fixture(scope="module")
def ledger_platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LedgerPlatform]:
    home = tmp_path_factory.mktemp("ledger-platform")
    # This test accepts bills itself; the scheduler has its own test.
    env = {"codex": {"CODEX_SCHEDULER": "false"}, "ledger": {"LEDGER_SCHEDULER": "false"}}
    with running_platform(home, ("codex", "ledger"), env=env,
                          visible=("codex", "ledger")) as platform:
        with closing(platform.login("alice")) as admin:
            seed_codex(admin)
            beta = ok(admin.get("/codex/api/companies/620548"))
        seed_tickets(home)
        with closing(platform.login("bill")) as billing:
            ok(billing.post("/ledger/api/plans", json=GOLD), 201)
            ok(billing.post("/ledger/api/overrides/620547/line-items", json={
                "name": "Firewall lease", "kind": "recurring", "amount": "10.00"}), 201)
        yield LedgerPlatform(platform, str(beta["contract_end_date"]))


def cells(row: Any) -> list[str]:
    return [text.strip() for text in row.locator("td").all_inner_texts()]


def space_below_grid(page: Any) -> float:
    """Pixels between the page's row of cards and the card under it (0: they touch)."""
    return float(page.evaluate("""() => {
        const grid = document.querySelector("main .grid");
        return grid.nextElementSibling.getBoundingClientRect().top
            - grid.getBoundingClientRect().bottom;
    }"""))


def test_billing_user_reads_downloads_and_accepts_a_bill(
        browser: Any, ledger_platform: LedgerPlatform) -> None:
    nexus = ledger_platform.platform.nexus
    context, page, problems = watched_page(browser)
    sign_in(page, nexus, f"/ledger/?{MARCH}", username="bill")

    # The dashboard: revenue of the two bills that could be calculated, every company, the
    # plan error and the contract ending soon.
    assert page.locator("nav.side-nav").is_visible()
    assert page.get_by_test_id("revenue").inner_text() == "475.00"
    assert page.get_by_test_id("companies-count").inner_text() == "3"
    assert page.get_by_test_id("errors-count").inner_text() == "1"
    assert page.get_by_test_id("accepted-count").inner_text() == "0"
    assert page.get_by_test_id("expiring-count").inner_text() == "1"
    assert page.get_by_test_id("expiring").inner_text() == (
        f"Beta Law — ends {ledger_platform.beta_end}")
    companies = page.get_by_test_id("dashboard-companies").locator("tbody tr")
    assert [cells(companies.nth(index))[:3] for index in range(companies.count())] == [
        ["Acme Dental", "Gold", "445.00"], ["Beta Law", "Gold", "30.00"],
        ["Gamma Shop", "Platinum", "—"]]
    assert cells(page.get_by_test_id("billing-errors").locator("tbody tr").first) == [
        "Gamma Shop", "620549", "no plan 'Platinum' for term '1 Year'"]
    # Laid out as read: the revenue on one line (its row no taller than the one-line row of
    # the count under it), and every card as wide as the page's content.
    revenue = page.get_by_test_id("revenue").bounding_box()
    count = page.get_by_test_id("companies-count").bounding_box()
    assert revenue and count and revenue["height"] <= count["height"] + 1, (revenue, count)
    widths = {round(box["width"]) for box in (
        page.locator("main .card").nth(index).bounding_box() or {"width": 0}
        for index in range(page.locator("main .card").count()))}
    assert len(widths) == 1, widths

    # A second tab on Acme's bill, opened before the first accepts it (a colleague, say).
    other = context.new_page()
    other.goto(f"{nexus}/ledger/clients/620547?{MARCH}")

    # Acme's page, from the dashboard's link: the hand-worked total and its parts.
    page.get_by_test_id("company-link").filter(has_text="Acme Dental").click()
    page.wait_for_url(f"{nexus}/ledger/clients/620547?{MARCH}")
    assert page.get_by_test_id("company-name").inner_text() == "Acme Dental"
    assert page.get_by_test_id("bill-total").inner_text() == "445.00"
    subtotals = {name: page.get_by_test_id(f"subtotal-{name}").inner_text()
                 for name in ("users", "assets", "backup", "hours", "custom")}
    assert subtotals == {"users": "50.00", "assets": "150.00", "backup": "85.00",
                         "hours": "150.00", "custom": "10.00"}
    users = page.get_by_test_id("lines-users").locator("tbody tr")
    assert [cells(users.nth(index))[0] for index in range(users.count())] == ["Dana", "Eli"]
    assert page.get_by_test_id("hours-total").inner_text() == "2"
    assert page.get_by_test_id("billable-hours").inner_text().startswith("1 at 150.00")
    assert page.get_by_test_id("backup-overage").inner_text() == "1.5 TB at 20.00 per TB"
    assert page.get_by_test_id("archived-badge").count() == 0
    assert space_below_grid(page) > 0

    # "Download CSV": the QuickBooks rows of exactly that bill.
    with page.expect_download() as started:
        page.get_by_test_id("download-csv").click()
    download = started.value
    assert download.suggested_filename == "620547-202603.csv"
    with open(download.path(), encoding="utf-8", newline="") as handle:
        table = list(csv.reader(handle))
    assert table[0] == ["InvoiceNo", "Customer", "InvoiceDate", "DueDate",
                        "Item(Product/Service)", "Description", "Qty", "Rate", "Amount"]
    assert {tuple(row[:4]) for row in table[1:]} == {
        ("620547-202603", "Acme Dental", "03/31/2026", "04/30/2026")}
    assert [row[4:] for row in table[1:]] == ACME_ROWS
    assert sum(Decimal(row[8]) for row in table[1:]) == Decimal("445.00")

    # Accept through the confirmation dialog: the notice and the "Archived" badge.
    page.get_by_role("button", name="Accept bill").click()
    dialog = page.locator("#confirm-accept")
    assert dialog.is_visible()
    dialog.locator("#accept-notes").fill("March, checked against the contract")
    dialog.locator(".modal__footer").get_by_role("button", name="Accept bill").click()
    page.wait_for_url(f"{nexus}/ledger/clients/620547?accepted=1&{MARCH}")
    assert page.get_by_test_id("accepted-notice").inner_text() == (
        "The bill is accepted and archived.")
    assert page.get_by_test_id("archived-badge").inner_text() == "Archived: 620547-202603"
    assert page.get_by_role("button", name="Accept bill").count() == 0

    # The second tab still offers to accept; doing so says it is accepted already.
    other.get_by_role("button", name="Accept bill").click()
    with other.expect_response(lambda response: response.request.method == "POST") as posted:
        other.locator("#confirm-accept .modal__footer").get_by_role(
            "button", name="Accept bill").click()
    assert posted.value.url == f"{nexus}/ledger/clients/620547/accept"
    assert posted.value.status == 409
    error = other.get_by_test_id("page-error")
    error.wait_for()
    assert error.inner_text().startswith(
        "This bill is already accepted (invoice 620547-202603)")
    assert other.get_by_test_id("archived-badge").inner_text() == "Archived: 620547-202603"
    other.close()

    # The archive lists the snapshot, and its page has the accepted total and the notes.
    page.locator("nav.tabs").get_by_role("link", name="Archive").click()
    page.wait_for_url(f"{nexus}/ledger/archive")
    snapshots = page.get_by_test_id("snapshots").locator("tbody tr")
    assert snapshots.count() == 1
    row = cells(snapshots.first)
    assert row[:4] == ["620547-202603", "Acme Dental (620547)", "2026-03", "445.00"]
    assert (row[5], row[6]) == ("bill", "Accepted")
    page.get_by_test_id("snapshot-link").click()
    assert page.get_by_test_id("snapshot-total").inner_text() == "445.00"
    assert space_below_grid(page) > 0
    OUTPUT.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(OUTPUT / "ledger-snapshot.png"), full_page=True)
    assert "March, checked against the contract" in page.get_by_test_id(
        "snapshot-details").inner_text()

    # The dashboard now counts it, and shows it archived.
    page.goto(f"{nexus}/ledger/?{MARCH}")
    assert page.get_by_test_id("accepted-count").inner_text() == "1"
    acme = page.get_by_test_id("dashboard-companies").locator("tr[data-account='620547']")
    assert cells(acme)[4] == "Archived"

    OUTPUT.mkdir(parents=True, exist_ok=True)
    # The choice is saved in the background; the next page follows it once it is stored.
    with page.expect_response(lambda response: response.request.method == "PUT") as saved:
        page.locator("[data-theme-toggle]").click()
    assert saved.value.ok
    page.locator("html[data-theme=dark]").wait_for()
    page.screenshot(path=str(OUTPUT / "ledger-dashboard-dark.png"), full_page=True)
    page.goto(f"{nexus}/ledger/clients/620547?{MARCH}")
    page.locator("html[data-theme=dark]").wait_for()
    page.screenshot(path=str(OUTPUT / "ledger-client-dark.png"), full_page=True)
    with page.expect_response(lambda response: response.request.method == "PUT"):
        page.locator("[data-theme-toggle]").click()
    page.locator("html[data-theme=light]").wait_for()
    assert problems == []
    context.close()


def test_a_technician_reads_bills_but_cannot_accept_them(
        browser: Any, ledger_platform: LedgerPlatform) -> None:
    nexus = ledger_platform.platform.nexus
    context, page, problems = watched_page(browser)
    sign_in(page, nexus, f"/ledger/clients/620548?{MARCH}", username="tom")
    assert page.get_by_test_id("bill-total").inner_text() == "30.00"
    assert page.get_by_test_id("download-csv").is_visible()
    assert page.get_by_role("button", name="Accept bill").count() == 0
    assert page.locator("#confirm-accept, [data-testid=accept-form]").count() == 0
    page.goto(f"{nexus}/ledger/?{MARCH}")
    assert page.get_by_test_id("revenue").inner_text() == "475.00"
    assert page.get_by_role("button", name="Accept all bills").count() == 0
    assert problems == []
    context.close()
