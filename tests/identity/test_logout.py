"""RP-initiated logout: registered redirect URIs only, confirmation without an ID token."""

from __future__ import annotations

import pytest
from flask.testing import FlaskClient

from .conftest import OIDC, AuthRequest, RelyingParty, csrf_from


@pytest.fixture
def signed_in(rp: RelyingParty, make_user) -> dict:
    make_user("ria")
    return rp.tokens_for("ria")


@pytest.mark.parametrize("target", ["https://evil.example.test/", "http://127.0.0.1:8000/x",
                                    "http://127.0.0.1:8000"])
def test_unregistered_post_logout_redirect_is_not_followed(client: FlaskClient, signed_in: dict,
                                                           rp: RelyingParty, target: str) -> None:
    response = client.get(f"{OIDC}/logout", query_string={
        "id_token_hint": signed_in["id_token"], "post_logout_redirect_uri": target},
        headers={"Accept": "text/html"})
    assert response.status_code == 200
    assert "Location" not in response.headers
    assert 'data-testid="signed-out"' in response.get_data(as_text=True)
    # Still a logout.
    assert rp.userinfo(signed_in["access_token"]).status_code == 401


@pytest.mark.parametrize("target", ["http://127.0.0.1:8000/keycloak-callback", "https://localhost/"])
def test_registered_post_logout_redirects(client: FlaskClient, signed_in: dict,
                                          target: str) -> None:
    response = client.post(f"{OIDC}/logout", data={
        "id_token_hint": signed_in["id_token"], "post_logout_redirect_uri": target})
    assert response.status_code == 302 and response.headers["Location"] == target


def test_logout_ends_the_browser_session(client: FlaskClient, signed_in: dict,
                                         rp: RelyingParty) -> None:
    assert rp.open_login(AuthRequest()).status_code == 302  # signed in: straight back
    client.get(f"{OIDC}/logout", query_string={"id_token_hint": signed_in["id_token"]})
    assert rp.open_login(AuthRequest()).status_code == 200  # the sign-in form again


def test_forged_id_token_hint_is_an_error_without_redirect(client: FlaskClient,
                                                           signed_in: dict, tokens) -> None:
    forged = tokens.key.sign({"iss": "x", "sub": "y", "aud": "core-client"})
    response = client.get(f"{OIDC}/logout", query_string={
        "id_token_hint": forged, "post_logout_redirect_uri": "http://127.0.0.1:8000/"})
    assert response.status_code == 400 and "Location" not in response.headers


def test_logout_without_id_token_asks_for_confirmation(client: FlaskClient, signed_in: dict,
                                                       rp: RelyingParty) -> None:
    url = (f"{OIDC}/logout?client_id=core-client"
           "&post_logout_redirect_uri=http%3A%2F%2F127.0.0.1%3A8000%2F")
    page = client.get(url, headers={"Accept": "text/html"})
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert 'name="csrf_token"' in html
    assert rp.open_login(AuthRequest()).status_code == 302  # nothing happened yet
    # A cross-site form without the token does nothing.
    assert client.post(url).status_code == 400
    assert rp.open_login(AuthRequest()).status_code == 302
    done = client.post(url, data={"csrf_token": csrf_from(html)},
                       headers={"Accept": "text/html"})
    # Confirmed, but without an ID token there is no redirect.
    assert done.status_code == 200 and "Location" not in done.headers
    assert rp.userinfo(signed_in["access_token"]).status_code == 401
    assert rp.open_login(AuthRequest()).status_code == 200
