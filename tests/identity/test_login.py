"""The sign-in page: CSRF, generic errors, lockout with back-off, disabled users and the
forced password change of the first administrator."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from hivematrix.identity import accounts

from .conftest import PASSWORD, AuthRequest, RelyingParty, query_of

INVALID = "Invalid username or password."


def error_text(response) -> str:
    match = re.search(r'data-testid="(?:login|change)-error">([^<]*)<',
                      response.get_data(as_text=True))
    return match.group(1) if match else ""


def test_login_without_csrf_token_is_rejected(client: FlaskClient, make_user) -> None:
    make_user("ann")
    request = AuthRequest()
    response = client.post(request.url(), data={"step": "sign_in", "username": "ann",
                                                "password": PASSWORD})
    assert response.status_code == 400
    assert "CSRF" in response.json["detail"]


def test_login_page_escapes_what_the_user_typed(rp: RelyingParty) -> None:
    response = rp.sign_in(AuthRequest(), "<script>alert(1)</script>", "wrong password!")
    page = response.get_data(as_text=True)
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;" in page


def test_unknown_user_and_wrong_password_get_the_same_answer(rp: RelyingParty,
                                                             make_user) -> None:
    make_user("bob")
    unknown = rp.sign_in(AuthRequest(), "nobody", PASSWORD)
    wrong = rp.sign_in(AuthRequest(), "bob", "not the password")
    assert unknown.status_code == wrong.status_code == 400
    assert error_text(unknown) == error_text(wrong) == INVALID


def test_usernames_are_case_insensitive(rp: RelyingParty, make_user) -> None:
    make_user("carla")
    response = rp.sign_in(AuthRequest(), "  CARLA ", PASSWORD)
    assert response.status_code == 302


@pytest.mark.parametrize("username", ["dave", "ghost"])
def test_brute_force_is_locked_out_with_429(rp: RelyingParty, make_user, username: str) -> None:
    make_user("dave")
    for _ in range(5):
        response = rp.sign_in(AuthRequest(), username, "guess guess guess")
        assert response.status_code == 400 and error_text(response) == INVALID
    locked = rp.sign_in(AuthRequest(), username, PASSWORD)  # even the right password
    assert locked.status_code == 429
    retry_after = int(locked.headers["Retry-After"])
    assert 25 <= retry_after <= 30
    assert error_text(locked) == f"Too many attempts, try again in {retry_after} s."
    # Other usernames are unaffected.
    make_user("erik")
    assert rp.sign_in(AuthRequest(), "erik", PASSWORD).status_code == 302


def test_lockout_period_grows_and_success_resets(rp: RelyingParty, make_user, app: Flask) -> None:
    from datetime import UTC, datetime, timedelta

    from sqlalchemy import update

    from hivematrix.identity.models import LoginAttempt

    make_user("fay")

    def expire_lock() -> None:
        with app.extensions["hivematrix.db"].transaction() as session:
            session.execute(update(LoginAttempt).values(
                locked_until=datetime.now(UTC) - timedelta(seconds=1)))

    for _ in range(5):
        rp.sign_in(AuthRequest(), "fay", "nope nope nope")
    first = int(rp.sign_in(AuthRequest(), "fay", PASSWORD).headers["Retry-After"])
    expire_lock()
    for _ in range(5):
        rp.sign_in(AuthRequest(), "fay", "nope nope nope")
    second = int(rp.sign_in(AuthRequest(), "fay", PASSWORD).headers["Retry-After"])
    assert second > first
    expire_lock()
    assert rp.sign_in(AuthRequest(), "fay", PASSWORD).status_code == 302
    with app.extensions["hivematrix.db"].transaction() as session:
        assert session.query(LoginAttempt).count() == 0


def test_disabled_user_cannot_sign_in(rp: RelyingParty, make_user, app: Flask) -> None:
    make_user("gil", enabled=False)
    response = rp.sign_in(AuthRequest(), "gil", PASSWORD)
    assert response.status_code == 400 and error_text(response) == INVALID


def test_disabling_ends_sessions_and_refresh_tokens(rp: RelyingParty, make_user,
                                                    app: Flask) -> None:
    make_user("hal")
    tokens = rp.tokens_for("hal")
    with app.extensions["hivematrix.db"].transaction() as session:
        accounts.update_user(session, accounts.get_user(session, "hal"), {"enabled": False})
    assert rp.refresh(tokens["refresh_token"]).json["error"] == "invalid_grant"
    assert rp.userinfo(tokens["access_token"]).status_code == 401
    # The browser session is gone too: the login form is shown again.
    again = rp.open_login(AuthRequest())
    assert again.status_code == 200 and 'name="password"' in again.get_data(as_text=True)


def first_admin_password(hm_home: Path) -> str:
    return (hm_home / "initial-admin-password").read_text().strip()


def test_first_admin_must_change_password_before_continuing(rp: RelyingParty,
                                                            hm_home: Path) -> None:
    initial = first_admin_password(hm_home)
    request = AuthRequest()
    response = rp.sign_in(request, "admin", initial)
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert 'name="new_password"' in page and 'name="csrf_token"' in page
    assert "Location" not in response.headers

    def change(new: str, confirm: str | None = None):
        return rp.submit(request, {"step": "change_password", "new_password": new,
                                   "confirm_password": new if confirm is None else confirm},
                         page)

    assert error_text(change("short")) == "Password must be at least 12 characters long."
    assert error_text(change("a long new password", "another one!!")) == (
        "The two passwords do not match.")
    assert error_text(change(initial)) == "The new password must differ from the current one."
    done = change("my own admin password")
    assert done.status_code == 302
    params = query_of(done.headers["Location"])
    assert params["state"] == request.state and params["code"]
    # The initial password is spent and its file is gone.
    assert not (hm_home / "initial-admin-password").exists()
    assert rp.sign_in(AuthRequest(), "admin", initial, prompt="login").status_code == 400
    fresh = rp.sign_in(AuthRequest(), "admin", "my own admin password", prompt="login")
    assert fresh.status_code == 302


def test_password_change_needs_csrf_and_a_fresh_sign_in(rp: RelyingParty, hm_home: Path,
                                                        client: FlaskClient) -> None:
    request = AuthRequest()
    rp.sign_in(request, "admin", first_admin_password(hm_home))
    no_csrf = client.post(request.url(), data={"step": "change_password",
                                               "new_password": "my own admin password",
                                               "confirm_password": "my own admin password"})
    assert no_csrf.status_code == 400
    # Without having entered the current password in this browser, there is nothing to change.
    other = RelyingParty(client.application.test_client(), rp.secret)
    page = other.open_login(request).get_data(as_text=True)
    response = other.submit(request, {"step": "change_password",
                                      "new_password": "my own admin password",
                                      "confirm_password": "my own admin password"}, page)
    assert response.status_code == 400
    assert "sign in again" in error_text(response)


def test_temporary_password_from_an_admin_forces_a_change(rp: RelyingParty, make_user) -> None:
    make_user("ida", must_change_password=True)
    response = rp.sign_in(AuthRequest(), "ida", PASSWORD)
    assert response.status_code == 200 and 'name="new_password"' in response.get_data(True)


def test_login_page_csp_lets_the_form_redirect_to_the_client_only(rp: RelyingParty) -> None:
    page = rp.open_login(AuthRequest())
    policy = page.headers["Content-Security-Policy"]
    assert "form-action 'self' http://127.0.0.1:8000;" in policy
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy
    assert page.headers["Cache-Control"] == "no-store"
    assert "<script" not in page.get_data(as_text=True)


@pytest.mark.parametrize("username", ["\x00admin", "a\x00", "x" * 500, "admin\n"])
def test_odd_usernames_are_just_wrong(rp: RelyingParty, username: str) -> None:
    response = rp.sign_in(AuthRequest(), username, "whatever password")
    assert response.status_code == 400 and error_text(response) == INVALID
