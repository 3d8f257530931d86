"""Sign-in, proxying and sign-out through a real Nexus in front of real services."""

from __future__ import annotations

import pytest

from .conftest import Platform

pytestmark = pytest.mark.processes


def test_sign_in_and_reach_the_template(platform: Platform) -> None:
    client = platform.login("alice", next_path="/template/")
    page = client.get("/template/", headers={"Accept": "text/html"})
    assert page.status_code == 200, page.text
    assert 'data-testid="username">alice<' in page.text
    assert 'class="side-nav"' in page.text
    assert '/nexus/static/global.css' in page.text
