"""A setup token guards the first administrator instead of a generated password."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from hivematrix.identity import accounts, create_app

from .conftest import AuthRequest, RelyingParty, csrf_from

TOKEN = "s3tup-token-for-tests-0123456789"


@pytest.fixture
def setup_app(settings: dict[str, Any]) -> Iterator[Flask]:
    app = create_app({**settings, "HIVEMATRIX_SETUP_TOKEN": TOKEN})
    yield app
    app.extensions["hivematrix.db"].dispose()


@pytest.fixture
def setup_client(setup_app: Flask) -> FlaskClient:
    return setup_app.test_client()


def post_setup(client: FlaskClient, password: str = "a strong first password",
               confirm: str | None = None, username: str = "boss") -> Any:
    page = client.get(f"/setup?token={TOKEN}", headers={"Accept": "text/html"})
    assert page.status_code == 200
    return client.post(f"/setup?token={TOKEN}", headers={"Accept": "text/html"}, data={
        "csrf_token": csrf_from(page.get_data(as_text=True)), "token": TOKEN,
        "username": username, "password": password,
        "confirm_password": password if confirm is None else confirm})


def test_with_a_setup_token_no_admin_is_created(setup_app: Flask, hm_home: Path) -> None:
    assert not (hm_home / "initial-admin-password").exists()
    with setup_app.extensions["hivematrix.db"].transaction() as session:
        assert accounts.list_users(session) == []


@pytest.mark.parametrize("query", ["", "?token=wrong", "?token="])
def test_setup_refuses_a_missing_or_wrong_token(setup_client: FlaskClient, query: str) -> None:
    response = setup_client.get(f"/setup{query}")
    assert response.status_code == 403


def test_setup_creates_the_first_admin_once(setup_client: FlaskClient, setup_app: Flask,
                                            hm_home: Path) -> None:
    page = setup_client.get(f"/setup?token={TOKEN}", headers={"Accept": "text/html"})
    assert 'name="csrf_token"' in page.get_data(as_text=True)
    assert post_setup(setup_client, confirm="something else").status_code == 400
    assert post_setup(setup_client, password="short").status_code == 400
    done = post_setup(setup_client)
    assert done.status_code == 201
    assert 'data-testid="admin-username">boss<' in done.get_data(as_text=True)
    # From now on the page does not exist, token or not.
    assert setup_client.get(f"/setup?token={TOKEN}").status_code == 404
    assert setup_client.post(f"/setup?token={TOKEN}", json={}).status_code == 404
    # And the administrator signs in without a forced change.
    master = json.loads((hm_home / "configs" / "master_config.json").read_text())
    rp = RelyingParty(setup_app.test_client(), master["keycloak"]["client_secret"])
    response = rp.sign_in(AuthRequest(), "boss", "a strong first password")
    assert response.status_code == 302


def test_setup_post_needs_csrf(setup_client: FlaskClient) -> None:
    response = setup_client.post(f"/setup?token={TOKEN}", data={
        "token": TOKEN, "username": "boss", "password": "a strong first password",
        "confirm_password": "a strong first password"})
    assert response.status_code == 400


def test_setup_is_404_without_a_configured_token(client: FlaskClient) -> None:
    assert client.get(f"/setup?token={TOKEN}").status_code == 404
