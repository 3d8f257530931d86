"""The platform in a real browser: Chromium through Nexus to identity, Core and template."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from hivematrix.common.testing import watched_page

from .conftest import PASSWORD, Platform

pytestmark = pytest.mark.processes
#: Screenshots land here (git-ignored); CI keeps the folder as the run's output.
OUTPUT = Path(os.environ.get("HIVEMATRIX_TEST_OUTPUT",
                             Path(__file__).resolve().parents[2] / "test-output"))


def sign_in(page: Any, platform: Platform, username: str) -> None:
    page.fill("#username", username)
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")


def test_sign_in_theme_and_sign_out_in_a_browser(browser: Any, platform: Platform) -> None:
    context, page, problems = watched_page(browser)
    page.goto(f"{platform.nexus}/template/")
    # Not signed in: Nexus sends the browser to the provider's page, styled by Nexus.
    assert "/keycloak/realms/hivematrix/protocol/openid-connect/auth" in page.url
    assert page.locator("link[href^='/nexus/static/global.css']").count() == 1
    sign_in(page, platform, "alice")

    page.wait_for_url(f"{platform.nexus}/template/")
    assert page.get_by_test_id("username").inner_text() == "alice"
    nav = page.locator("nav.side-nav")
    assert nav.is_visible()
    assert nav.evaluate("n => getComputedStyle(n).position") == "fixed"
    assert nav.locator(".side-nav__link--active").inner_text() == "Template"
    card = page.locator(".card").first
    assert card.evaluate("c => getComputedStyle(c).borderRadius") != "0px"  # styled
    light_background = page.evaluate("getComputedStyle(document.body).backgroundColor")

    with page.expect_response(lambda r: r.url.endswith("/nexus/api/preferences")) as saved:
        page.click("[data-theme-toggle]")
    assert saved.value.status == 200
    assert page.evaluate("document.documentElement.dataset.theme") == "dark"
    page.reload()
    assert page.evaluate("document.documentElement.dataset.theme") == "dark"
    assert page.evaluate("getComputedStyle(document.body).backgroundColor") != light_background

    OUTPUT.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(OUTPUT / "nexus-template-signed-in.png"), full_page=True)

    # The collapsed navigation survives a reload (applied before first paint).
    page.click("[data-nav-toggle]")
    page.reload()
    assert page.evaluate("document.documentElement.classList.contains('sidebar-collapsed')")
    page.click("[data-nav-toggle]")

    page.click("[data-testid=logout]")
    page.wait_for_url(f"{platform.nexus}/logged-out")
    assert "signed out" in page.inner_text("h1")
    page.goto(f"{platform.nexus}/template/")
    assert page.locator("#password").is_visible()  # the provider asks again
    assert problems == []
    context.close()


@pytest.mark.parametrize("path", [
    "/keycloak-callback?error=%3Cimg%20src%3Dx%20onerror%3Dalert(1)%3E"
    "&error_description=%3Cscript%3Ealert(2)%3C%2Fscript%3E",
    "/" + quote("<img src=x onerror=alert(3)>") + "/",
    "/" + quote("\"><script>alert(4)</script>") + "/x",
    "/login?next=javascript:alert(5)",
    "/login?next=" + quote("/template/\"><script>alert(6)</script>"),
])
def test_payloads_in_urls_never_run(browser: Any, platform: Platform, path: str) -> None:
    context, page, problems = watched_page(browser)
    page.goto(f"{platform.nexus}{path}")
    if "/openid-connect/auth" in page.url:
        sign_in(page, platform, "tom")
        page.wait_for_load_state("load")
    page.wait_for_timeout(200)
    assert not [p for p in problems if p.startswith("dialog")], problems
    assert page.locator("img[src=x]").count() == 0
    context.close()
