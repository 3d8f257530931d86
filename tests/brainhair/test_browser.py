"""Brainhair's chat in a real Chromium, signed in through Nexus: identity, Core, Codex,
Ledger, Brainhair and Nexus run as real processes, and Brainhair's model is the stand-in
``claude`` (the Claude Code CLI's contract) calling our MCP bridge.

The reply streams into the page as sanitised markdown; the model's markup (an
``<img onerror>``) is shown as text; the write it asks for opens the approval modal, and
approving it changes Ledger.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import expect

from hivematrix.common.testing import watched_page
from tests.fakes import claude_cli as fake
from tests.nexus.conftest import Platform, running_platform, sign_in

pytestmark = [pytest.mark.browser, pytest.mark.processes]
WAIT_MS = 30_000
ACME = "620547"
MARKUP = '<img src=x onerror="alert(1)">'
STEPS = [
    {"say": f"Acme's bill uses the **plan rate**. Note: {MARKUP} is how the ticket looked.\n"},
    {"tool": "ledger_set_override",
     "input": {"account_number": ACME, "set": {"per_user": "44.00"}}},
    {"say": "The per-user rate is now 44.00."},
]


def ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, (response.status_code, response.text)
    return response.json()


@pytest.fixture(scope="module")
def chat_platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    home = tmp_path_factory.mktemp("brainhair-platform")
    wrapper = fake.install(home / "model", {"steps": STEPS})
    env = {"codex": {"CODEX_SCHEDULER": "false"}, "ledger": {"LEDGER_SCHEDULER": "false"},
           "brainhair": {"BRAINHAIR_BACKEND": "claude-cli", "BRAINHAIR_CLI_PATH": str(wrapper),
                         "BRAINHAIR_SCHEDULER": "false"}}
    with running_platform(home, ("codex", "ledger", "brainhair"), env=env,
                          visible=("codex", "ledger", "brainhair")) as platform:
        with closing(platform.login("alice")) as admin:
            ok(admin.post("/codex/api/companies", json={
                "account_number": ACME, "name": "Acme Dental"}), 201)
        yield platform


def per_user(platform: Platform) -> Any:
    with closing(platform.login("alice")) as admin:
        body = ok(admin.get(f"/ledger/api/overrides/{ACME}/client"))
    return (body.get("per_user") or {}).get("value")


def test_a_reply_streams_markup_stays_text_and_an_approval_is_answered(
        browser: Any, chat_platform: Platform, tmp_path: Path) -> None:
    nexus = chat_platform.nexus
    context, page, problems = watched_page(browser)
    try:
        sign_in(page, nexus, "/brainhair/", username="alice")
        assert page.locator("nav.side-nav").is_visible()
        page.fill("#chat-message", "Set Acme's per-user rate to 44")
        page.keyboard.press("Enter")

        # The user's message and the streaming reply appear; the write asks first.
        log = page.locator("[data-chat-log]")
        expect(log.locator("[data-role=user]")).to_contain_text("per-user rate to 44")
        modal = page.locator("[data-approval-modal]")
        expect(modal).to_be_visible(timeout=WAIT_MS)
        expect(modal.locator("[data-approval-details]")).to_contain_text("44.00")
        assert per_user(chat_platform) in (None, "")  # nothing written yet
        streaming = log.locator("[data-role=assistant]").last
        expect(streaming).to_contain_text("Acme's bill uses the plan rate")
        # Streamed text is already the server's sanitised markdown: bold, markup as text.
        expect(streaming.locator("strong")).to_have_text("plan rate")
        expect(streaming).to_contain_text(MARKUP)
        assert streaming.locator("img").count() == 0
        modal.locator("[data-approval-approve]").click()
        expect(modal).to_be_hidden()

        # Done: the stored, sanitised transcript replaces the streamed text.
        reply = log.locator("[data-role=assistant]").last
        expect(reply).to_contain_text("The per-user rate is now 44.00.", timeout=WAIT_MS)
        expect(page.locator("[data-chat-stop]")).to_be_hidden()
        expect(reply).to_contain_text(MARKUP)
        assert log.locator("img").count() == 0
        assert "session=" in page.url
        assert str(per_user(chat_platform)) in ("44.00", "44")

        # Reloading shows the same conversation from the database.
        page.reload()
        expect(page.locator("[data-chat-log] [data-role=assistant]").last).to_contain_text(
            MARKUP)
        assert page.locator("[data-chat-log] img").count() == 0
        assert problems == []
    finally:
        context.close()
