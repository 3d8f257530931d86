"""Codex's pages in a real Chromium, signed in through Nexus: identity, Core, Codex and Nexus
run as real processes, and Codex's PSA is the Freshservice contract fake."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from hivematrix.common.config import load_settings
from hivematrix.common.db import Database
from hivematrix.common.testing import serve_wsgi, watched_page
from tests.codex.fakes.freshservice import API_KEY, FreshserviceFake
from tests.codex.page_data import XSS_NAME, XSS_SUBJECT, Seeded, seed
from tests.nexus.conftest import PASSWORD, Platform, running_platform

pytestmark = [pytest.mark.browser, pytest.mark.processes]
OUTPUT = Path(os.environ.get("HIVEMATRIX_TEST_OUTPUT",
                             Path(__file__).resolve().parents[2] / "test-output"))


@dataclass
class Vendor:
    """The PSA fake behind a gate: requests wait until the test opens it, so a sync started
    from the page is certainly still running when the page first shows it."""

    url: str
    gate: threading.Event


def gated(app: Callable[..., Iterable[bytes]], gate: threading.Event) -> Callable[..., Any]:
    def wsgi(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        gate.wait(120)
        return app(environ, start_response)

    return wsgi


@pytest.fixture(scope="module")
def vendor() -> Iterator[Vendor]:
    gate = threading.Event()
    with serve_wsgi(gated(FreshserviceFake().seed().wsgi(), gate)) as url:
        yield Vendor(url, gate)
    gate.set()


@dataclass
class CodexPlatform:
    platform: Platform
    seeded: Seeded


@pytest.fixture(scope="module")
def codex_platform(tmp_path_factory: pytest.TempPathFactory,
                   vendor: Vendor) -> Iterator[CodexPlatform]:
    home = tmp_path_factory.mktemp("codex-platform")
    env = {"codex": {"CODEX_SCHEDULER": "false", "CODEX_PSA_PROVIDER": "freshservice",
                     "FRESHSERVICE_URL": vendor.url, "FRESHSERVICE_API_KEY": API_KEY,
                     "CODEX_OUTBOUND_ALLOWLIST": "127.0.0.1"}}
    with running_platform(home, ("codex",), env=env, visible=("codex",)) as platform:
        # Codex migrated its database on start; put the MSP's data in it.
        url = load_settings("codex", environ={"HIVEMATRIX_HOME": str(home)})["DATABASE_URL"]
        database = Database(url)
        with database.transaction() as session:
            seeded = seed(session)
        database.dispose()
        yield CodexPlatform(platform, seeded)


def test_companies_to_a_company_to_an_asset(browser: Any,
                                            codex_platform: CodexPlatform) -> None:
    nexus = codex_platform.platform.nexus
    seeded = codex_platform.seeded
    context, page, problems = watched_page(browser)
    page.goto(f"{nexus}/codex/")
    page.fill("#username", "alice")
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{nexus}/codex/")

    # The list, composed by Nexus: its stylesheet and navigation around Codex's page.
    assert page.locator("nav.side-nav").is_visible()
    links = page.get_by_test_id("company-link")
    assert sorted(links.all_inner_texts()) == sorted([XSS_NAME, "Beta Law", "Northwind Group"])
    # Sorting is the server's (the list is paged): the header is a link that flips the order.
    page.get_by_role("link", name="Name", exact=True).click()
    page.wait_for_url(f"{nexus}/codex/?sort=-name")
    assert page.locator("th[aria-sort=descending]").inner_text().startswith("Name")

    page.locator("[data-testid=company-link]", has_text="Acme").click()
    page.wait_for_url(f"{nexus}/codex/companies/{seeded.acme}")
    assert page.get_by_test_id("company-name").inner_text() == XSS_NAME
    assert page.get_by_test_id("ticket-subject").first.inner_text() == XSS_SUBJECT
    assert page.get_by_test_id("breadcrumb").inner_text().startswith(
        "Companies \u203a Northwind Group \u203a")
    assert page.locator("[data-testid=topology] li").count() == 4
    assert page.locator("[data-warranty=expired]").count() == 1
    # Nothing customers typed ran or became markup.
    assert page.evaluate("typeof window.__pwned") == "undefined"
    assert page.locator("img[src=x], main script").count() == 0
    # The archive confirmation opens in a modal and can be cancelled.
    page.get_by_role("button", name="Archive").click()
    dialog = page.locator("#confirm-archive")
    assert dialog.is_visible()
    dialog.get_by_role("button", name="Cancel").click()
    assert not dialog.is_visible()
    OUTPUT.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(OUTPUT / "codex-company.png"), full_page=True)

    page.get_by_test_id("asset-link").filter(has_text="ACME-DC1").click()
    page.wait_for_url(f"{nexus}/codex/assets/{seeded.expired_asset}")
    assert page.get_by_test_id("asset-hostname").inner_text() == "ACME-DC1"
    size = page.get_by_test_id("backup-size").locator("span")
    assert size.inner_text() == "3.5 GiB"
    assert size.get_attribute("title") == "3,758,096,384 bytes"
    page.select_option("#billing_type_override", "VM")
    page.get_by_role("button", name="Save").click()
    page.wait_for_url(f"{nexus}/codex/assets/{seeded.expired_asset}?saved=1")
    assert page.get_by_test_id("billing-type").inner_text().startswith("VM override")
    page.screenshot(path=str(OUTPUT / "codex-asset.png"), full_page=True)
    assert problems == []
    context.close()


def test_a_sync_started_in_the_page_is_followed_live(browser: Any, vendor: Vendor,
                                                    codex_platform: CodexPlatform) -> None:
    nexus = codex_platform.platform.nexus
    context, page, problems = watched_page(browser)
    page.goto(f"{nexus}/codex/sync")
    page.fill("#username", "alice")
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{nexus}/codex/sync")
    page.locator("[data-run=psa]").click()
    page.wait_for_url(f"{nexus}/codex/sync/jobs/*")
    # The vendor has not answered yet: the page shows the run and polls it.
    assert page.get_by_test_id("job-status").inner_text() == "running"
    assert page.get_by_test_id("job-finished").inner_text() == "still running"
    vendor.gate.set()
    # The script sees the job end and reloads the page, which then shows the whole log.
    page.locator("[data-testid=job-status][data-job-status=succeeded]").wait_for(
        timeout=60_000)
    log = page.get_by_test_id("job-log").inner_text()
    assert "psa sync from freshservice started by alice" in log
    assert "psa sync finished" in log
    page.goto(f"{nexus}/codex/")
    assert "Cobalt Clinic" in page.get_by_test_id("companies").inner_text()
    assert problems == []
    context.close()
