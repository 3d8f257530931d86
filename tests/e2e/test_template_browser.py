"""The template's pages in a real Chromium under gunicorn, with the Bearer header Nexus adds."""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from hivematrix.cli import main
from hivematrix.common.testing import FakeCore, ServiceProcess, TokenFactory

pytestmark = [pytest.mark.browser, pytest.mark.processes]


@pytest.fixture
def template_service(hm_home: Path, fake_core: FakeCore) -> Iterator[ServiceProcess]:
    assert CliRunner().invoke(main, ["init"]).exit_code == 0
    with ServiceProcess("template", hm_home, env={"CORE_SERVICE_URL": fake_core.url}) as service:
        yield service


def open_as(browser: Any, tokens: TokenFactory, level: str) -> Any:
    context = browser.new_context(
        extra_http_headers={"Authorization": f"Bearer {tokens.user(level)}"})
    page = context.new_page()
    page.problems = []

    def on_console(message: Any) -> None:
        # Chromium asks every origin for /favicon.ico; services have none (Nexus serves it).
        if message.type == "error" and not message.location.get("url", "").endswith("/favicon.ico"):
            page.problems.append(message.text)

    page.on("console", on_console)
    page.on("pageerror", lambda error: page.problems.append(str(error)))
    return page


def test_technician_adds_a_note(browser: Any, tokens: TokenFactory,
                                template_service: ServiceProcess) -> None:
    page = open_as(browser, tokens, "technician")
    page.goto(f"{template_service.url}/")
    assert page.get_by_test_id("permission-level").inner_text() == "technician"
    page.fill("#note-title", "Replace <b>switch</b> fan")
    page.fill("#note-body", "Closet B")
    page.get_by_role("button", name="Add note").click()
    page.wait_for_url(f"{template_service.url}/")
    row = page.get_by_test_id("notes").locator("tbody tr").first
    assert "Replace <b>switch</b> fan" in row.inner_text()  # shown as text, not markup
    assert page.problems == []
    page.context.close()


def test_blank_title_shows_the_error_next_to_the_field(browser: Any, tokens: TokenFactory,
                                                      template_service: ServiceProcess) -> None:
    page = open_as(browser, tokens, "admin")
    page.goto(f"{template_service.url}/")
    page.fill("#note-title", "   ")
    response_status = []
    page.on("response", lambda response: response_status.append(response.status))
    page.get_by_role("button", name="Add note").click()
    page.wait_for_load_state()
    assert 400 in response_status
    assert page.locator(".form__error").inner_text() == "Title must not be blank."
    page.context.close()


def test_client_sees_no_form_and_admin_page_is_refused(browser: Any, tokens: TokenFactory,
                                                       template_service: ServiceProcess) -> None:
    page = open_as(browser, tokens, "client")
    page.goto(f"{template_service.url}/")
    assert page.locator("form").count() == 0
    response = page.goto(f"{template_service.url}/admin")
    assert response.status == 403
    assert "403 Forbidden" in page.locator(".card__title").inner_text()
    page.context.close()


def test_api_docs_render_without_internet(browser: Any, tokens: TokenFactory,
                                          template_service: ServiceProcess) -> None:
    page = open_as(browser, tokens, "admin")
    page.goto(f"{template_service.url}/docs")
    page.wait_for_selector(".swagger-ui .info .title")
    assert "HiveMatrix Template" in page.locator(".swagger-ui .info .title").inner_text()
    assert page.locator(".opblock-summary-path", has_text="/api/notes").count() == 1
    assert page.problems == []
    page.context.close()
