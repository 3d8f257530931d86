"""The ticket wall in a real Chromium, signed in through Nexus: identity, Core, Codex, Beacon
and Nexus run as real processes; Codex holds the seeded tickets and its PSA is the
Freshservice contract fake (behind a gate, so a sync started from the page is still running
when the page first shows it)."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update

from hivematrix.codex.models import Ticket
from hivematrix.common.config import load_settings
from hivematrix.common.db import Database
from hivematrix.common.testing import serve_wsgi, watched_page
from tests.beacon.wall_data import (
    RILEY,
    TICKET_URL,
    VIEWS,
    XSS_DESCRIPTION,
    XSS_SUBJECT,
    WallSeed,
    seed_wall,
)
from tests.codex.fakes.freshservice import API_KEY, FreshserviceFake
from tests.nexus.conftest import Platform, running_platform, sign_in

pytestmark = [pytest.mark.browser, pytest.mark.processes]
OUTPUT = Path(os.environ.get("HIVEMATRIX_TEST_OUTPUT",
                             Path(__file__).resolve().parents[2] / "test-output"))
#: Short, so "within one refresh cycle" is quick to wait for.
REFRESH_SECONDS = 2
WAIT_MS = 30_000
TONES = {"sla-overdue": "status-text--danger", "sla-critical": "status-text--danger",
         "sla-warning": "status-text--warning", "sla-normal": "status-text--success",
         "sla-responded": "status-text--success", "sla-in-progress": "status-text--muted",
         "sla-none": "status-text--muted"}


def gated(app: Callable[..., Iterable[bytes]], gate: threading.Event) -> Callable[..., Any]:
    def wsgi(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        gate.wait(120)
        return app(environ, start_response)

    return wsgi


@dataclass
class WallPlatform:
    platform: Platform
    seed: WallSeed
    codex_db: Database
    gate: threading.Event


@pytest.fixture(scope="module")
def wall_platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WallPlatform]:
    gate = threading.Event()
    home = tmp_path_factory.mktemp("beacon-platform")
    with serve_wsgi(gated(FreshserviceFake().wsgi(), gate)) as vendor_url:
        env = {
            "codex": {"CODEX_SCHEDULER": "false", "CODEX_PSA_PROVIDER": "freshservice",
                      "FRESHSERVICE_URL": vendor_url, "FRESHSERVICE_API_KEY": API_KEY,
                      "FRESHSERVICE_TICKET_URL": TICKET_URL,
                      "CODEX_OUTBOUND_ALLOWLIST": "127.0.0.1"},
            "beacon": {"BEACON_REFRESH_SECONDS": str(REFRESH_SECONDS),
                       "BEACON_VIEWS": json.dumps(VIEWS)},
        }
        with running_platform(home, ("codex", "beacon"), env=env,
                              visible=("codex", "beacon")) as platform:
            database = None
            try:
                # Codex migrated its database on start; put the tickets in it as a sync would.
                url = load_settings("codex",
                                    environ={"HIVEMATRIX_HOME": str(home)})["DATABASE_URL"]
                database = Database(url)
                with database.transaction() as session:
                    seed = seed_wall(session)
                yield WallPlatform(platform, seed, database, gate)
            finally:
                # Let a request held at the vendor finish before the processes stop.
                gate.set()
                if database is not None:
                    database.dispose()


def row(page: Any, ticket: str, section: int | None = None) -> Any:
    scope = f"[data-section='{section}'] " if section else ""
    return page.locator(f"{scope}tr[data-ticket='{ticket}']")


def shown_tickets(page: Any) -> dict[int, set[str]]:
    found: dict[int, set[str]] = {}
    for number in (1, 2, 3, 4):
        rows = page.locator(f"[data-section='{number}'] tbody tr")
        found[number] = {rows.nth(index).get_attribute("data-ticket")
                         for index in range(rows.count())}
    return found


def test_the_wall_shows_updates_filters_and_refreshes(browser: Any,
                                                     wall_platform: WallPlatform) -> None:
    nexus = wall_platform.platform.nexus
    seed = wall_platform.seed
    context, page, problems = watched_page(browser)
    sign_in(page, nexus, "/beacon/helpdesk")

    # Each seeded ticket in its section, with its SLA class and colour; closed and other
    # queues' tickets nowhere.
    assert shown_tickets(page) == {number: seed.in_section(number) for number in (1, 2, 3, 4)}
    for ticket, where in seed.expected.items():
        if not where.section:
            continue
        sla = row(page, ticket, where.section).get_by_test_id("sla")
        assert sla.get_attribute("data-sla") == where.sla, ticket
        assert TONES[where.sla] in (sla.get_attribute("class") or "").split(), ticket
    number = row(page, "101").locator("[data-field=number]")
    assert number.get_attribute("href") == "https://acme-msp.freshservice.com/a/tickets/101"

    # What customers typed is text: nothing ran, nothing became markup.
    subject = row(page, "101").locator("[data-field=subject]")
    assert subject.inner_text() == XSS_SUBJECT
    assert row(page, "101").locator("[data-field=requester]").inner_text().startswith("<b ")
    assert page.locator("main img, main b, main script:not([src*='/beacon/static/'])").count() == 0
    # The detail panel: the full subject and the description, as text.
    subject.click()
    dialog = page.locator("#ticket-detail")
    assert dialog.is_visible()
    assert page.get_by_test_id("detail-subject").inner_text() == XSS_SUBJECT
    description = page.get_by_test_id("detail-description").inner_text()
    assert description.split("\n")[0] == XSS_DESCRIPTION.split("\n")[0]
    assert "Still smoking." in description
    assert page.locator("#ticket-detail script").count() == 0
    dialog.locator(".modal__footer").get_by_role("button", name="Close").click()
    assert not dialog.is_visible()
    assert page.evaluate("typeof window.__pwned") == "undefined"

    OUTPUT.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(OUTPUT / "beacon-wall-light.png"), full_page=True)
    page.locator("[data-theme-toggle]").click()
    page.locator("html[data-theme=dark]").wait_for()
    page.screenshot(path=str(OUTPUT / "beacon-wall-dark.png"), full_page=True)
    page.locator("[data-theme-toggle]").click()
    page.locator("html[data-theme=light]").wait_for()

    # The agent filter narrows the wall, and the choice is in the address.
    page.select_option("#agent_id", RILEY)
    page.wait_for_url(f"{nexus}/beacon/helpdesk?agent_id={RILEY}")
    assert shown_tickets(page) == {1: {"103"}, 2: {"201"}, 3: set(), 4: set()}
    page.select_option("#agent_id", "")
    page.wait_for_url(f"{nexus}/beacon/helpdesk?agent_id=")
    assert shown_tickets(page)[4] == seed.in_section(4)

    # Sorting by a column, by its key rather than its text: most urgent SLA first (Codex's
    # order puts the high-priority 102 first).
    first = page.locator("[data-section='1'] tbody tr").first
    assert first.get_attribute("data-ticket") == "102"
    page.locator("[data-section='1'] th", has_text="Action / SLA").click()
    assert first.get_attribute("data-ticket") == "101"

    # A ticket changes in Codex: the wall follows within a refresh cycle, without reloading.
    page.evaluate("window.__sameDocument = 'yes'")
    with wall_platform.codex_db.transaction() as session:
        session.execute(update(Ticket).where(Ticket.external_id == "401").values(
            status="customer_replied", updated_at=datetime.now(UTC)))
    row(page, "401", 2).wait_for(timeout=WAIT_MS)
    assert row(page, "401", 4).count() == 0
    assert row(page, "401", 2).get_by_test_id("sla").get_attribute("data-sla") == "sla-warning"
    assert page.locator("[data-section='2'] [data-section-count]").inner_text() == "2"
    assert page.evaluate("window.__sameDocument") == "yes"
    # The in-place update kept the column sort the user chose.
    assert first.get_attribute("data-ticket") == "101"
    assert page.locator("[data-section='1'] th[aria-sort=ascending]").inner_text().startswith(
        "Action / SLA")

    # "Last synced" is amber (40 minutes old); syncing from the page shows its progress and
    # then a fresh time.
    state = page.locator("[data-sync-state]")
    assert state.get_attribute("data-stale") == "true"
    assert "status-text--warning" in (state.get_attribute("class") or "")
    page.get_by_role("button", name="Sync tickets now").click()
    progress = page.locator("[data-sync-progress]")
    page.locator("[data-sync-progress][data-job-status=running]").wait_for(timeout=WAIT_MS)
    assert progress.inner_text().startswith("Syncing")
    assert page.get_by_role("button", name="Sync tickets now").is_disabled()
    wall_platform.gate.set()
    page.locator("[data-sync-progress][data-job-status=succeeded]").wait_for(timeout=60_000)
    page.locator("[data-sync-state][data-stale=false]").wait_for(timeout=WAIT_MS)
    assert "status-text--warning" not in (state.get_attribute("class") or "")
    assert page.evaluate("window.__sameDocument") == "yes"
    assert problems == []
    context.close()


def test_the_wall_fits_a_phone(browser: Any, wall_platform: WallPlatform) -> None:
    nexus = wall_platform.platform.nexus
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    page = context.new_page()
    sign_in(page, nexus, "/beacon/helpdesk", username="bill")
    # Wide tables scroll inside their own box; the page itself does not scroll sideways.
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
    assert page.locator("[data-section='1'] tbody tr").count() >= 1
    assert page.get_by_role("button", name="Sync tickets now").count() == 0  # billing
    OUTPUT.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(OUTPUT / "beacon-wall-phone.png"), full_page=True)
    context.close()


def test_a_display_link_opens_the_wall_logged_out_and_a_tampered_one_does_not(
        browser: Any, wall_platform: WallPlatform) -> None:
    platform = wall_platform.platform
    admin = platform.login("alice")
    created = admin.post("/nexus/api/display-links",
                         json={"name": "Lobby TV", "path": "/beacon/display/helpdesk",
                               "days": 1})
    assert created.status_code == 201, created.text
    link = created.json()["url"]

    context, page, problems = watched_page(browser)
    page.goto(link)
    page.get_by_test_id("display").wait_for()
    assert page.locator("nav.side-nav").count() == 0  # no navigation, nobody signed in
    assert row(page, "101", 1).locator("[data-field=subject]").inner_text() == XSS_SUBJECT
    assert page.locator("[data-detail], [data-sync-start], form").count() == 0
    assert "Still smoking" not in page.content()
    # Its data keeps coming through the link (as a cookie now): a poll succeeds.
    page.locator("[data-wall][data-updated]").wait_for(timeout=WAIT_MS)
    assert page.locator("[data-wall-error]").is_hidden()
    OUTPUT.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(OUTPUT / "beacon-display.png"), full_page=True)
    assert problems == []
    context.close()

    token = link.rsplit("=", 1)[1]
    tampered = link[: -len(token)] + ("A" if token[0] != "A" else "B") + token[1:]
    context, page, _problems = watched_page(browser)
    page.goto(tampered)
    # Refused: sent to sign in, and no wall.
    page.locator("#username").wait_for()
    assert "/keycloak/" in page.url
    assert page.get_by_test_id("display").count() == 0
    context.close()
    refused = platform.client().get(tampered.removeprefix(platform.nexus),
                                    headers={"Accept": "application/json"})
    assert refused.status_code == 401
