"""Users, passwords and lockout as plain Python over a session, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from hivematrix.common.db import Database
from hivematrix.identity import accounts, grants, lockout, passwords
from hivematrix.identity.accounts import NewUser
from hivematrix.identity.lockout import LockoutPolicy
from hivematrix.identity.models import LoginAttempt, Token, User

POLICY = LockoutPolicy(threshold=3, base_seconds=10, max_seconds=40)
PASSWORD = "correct horse battery"


def add(database: Database, username: str, **fields) -> int:
    with database.transaction() as session:
        user = accounts.create_user(session, NewUser(username=username, password=PASSWORD,
                                                     must_change_password=False, **fields))
        return user.id


# --- passwords -----------------------------------------------------------------------------

def test_hashes_are_argon2id_and_salted() -> None:
    first, second = passwords.hash_password(PASSWORD), passwords.hash_password(PASSWORD)
    assert first.startswith("$argon2id$") and first != second
    assert passwords.verify_password(first, PASSWORD)
    assert not passwords.verify_password(first, PASSWORD + "!")
    assert not passwords.verify_password(None, PASSWORD)
    assert not passwords.verify_password("not a hash", PASSWORD)
    assert not passwords.needs_rehash(first)


@pytest.mark.parametrize(("password", "message"), [
    ("short", "at least 12"), (" " * 12, "blank"), ("x" * 257, "at most 256"),
    ("Some.User.Name", "not be the username")])
def test_policy(password: str, message: str) -> None:
    with pytest.raises(passwords.WeakPassword, match=message):
        passwords.check_policy(password, username="some.user.name")


def test_policy_minimum_can_be_raised_not_lowered() -> None:
    with pytest.raises(passwords.WeakPassword, match="at least 16"):
        passwords.check_policy("x" * 15, min_length=16)
    with pytest.raises(passwords.WeakPassword, match="at least 12"):
        passwords.check_policy("x" * 11, min_length=4)


def test_generated_passwords_are_long_and_random() -> None:
    generated = {passwords.generate_password() for _ in range(20)}
    assert len(generated) == 20 and all(len(p) >= 20 for p in generated)


# --- users ---------------------------------------------------------------------------------

def test_create_user_normalises_and_stores_timestamps_in_utc(database: Database) -> None:
    before = datetime.now(UTC)
    with database.transaction() as session:
        user = accounts.create_user(session, NewUser(
            username=" Kim.Lee ", password=PASSWORD, email=" kim@example.test ",
            account_number="  ", groups=["client", "/billing"]))
    with database.transaction() as session:
        stored = accounts.get_user(session, "KIM.LEE")
        assert stored.username == "kim.lee" and stored.email == "kim@example.test"
        assert stored.account_number is None
        assert stored.group_names == ["billing", "client"]
        assert stored.must_change_password  # a password set by someone else is temporary
        assert stored.created_at.tzinfo is not None and stored.created_at >= before
        assert stored.password_changed_at.utcoffset() == timedelta(0)
        assert len(stored.subject) == 36 and stored.subject != user.username


@pytest.mark.parametrize("username", ["", "-leading", "has space", "x" * 101, "ümlaut"])
def test_invalid_usernames(database: Database, username: str) -> None:
    with database.transaction() as session, pytest.raises(accounts.AccountError):
        accounts.create_user(session, NewUser(username=username))


def test_duplicate_and_unknown(database: Database) -> None:
    add(database, "lee")
    with database.transaction() as session:
        with pytest.raises(accounts.UserExists):
            accounts.create_user(session, NewUser(username="LEE"))
        with pytest.raises(accounts.UnknownGroup, match="wizards"):
            accounts.create_user(session, NewUser(username="max", groups=["wizards"]))
        with pytest.raises(accounts.UnknownUser):
            accounts.get_user(session, "nobody")


def test_user_without_password_cannot_sign_in(database: Database) -> None:
    with database.transaction() as session:
        accounts.create_user(session, NewUser(username="nopw"))
    with database.transaction() as session, pytest.raises(accounts.InvalidCredentials):
        accounts.authenticate(session, "nopw", "", POLICY)


def test_disable_renews_stamp_and_revokes_tokens(database: Database) -> None:
    user_id = add(database, "ned", groups=["technicians"])
    with database.transaction() as session:
        session.add(Token(client_id="core-client", user_id=user_id, sid="s", family="f",
                          auth_time=0, token_type="Bearer", access_token="a" * 64,
                          refresh_token="r" * 64, scope="openid", expires_in=300))
    with database.transaction() as session:
        user = accounts.get_user(session, "ned")
        stamp = user.security_stamp
        accounts.update_user(session, user, {"enabled": False})
        assert user.security_stamp != stamp
    with database.transaction() as session:
        token = session.scalar(select(Token))
        assert token.access_token_revoked_at and token.refresh_token_revoked_at
        assert grants.revoke(session, user_id=user_id) == 0  # nothing left to revoke


def test_last_admin_is_protected(database: Database) -> None:
    add(database, "root", groups=["admins"])
    with database.transaction() as session:
        root = accounts.get_user(session, "root")
        with pytest.raises(accounts.LastAdmin):
            accounts.update_user(session, root, {"enabled": False})
        with pytest.raises(accounts.LastAdmin):
            accounts.set_groups(session, root, ["technicians"])
    add(database, "second", groups=["admins"], enabled=False)
    with database.transaction() as session, pytest.raises(accounts.LastAdmin):
        # A disabled admin does not count.
        accounts.set_groups(session, accounts.get_user(session, "root"), [])
    with database.transaction() as session:
        assert accounts.admin_exists(session)


def test_reset_and_change_password(database: Database) -> None:
    add(database, "olly")
    with database.transaction() as session:
        user = accounts.get_user(session, "olly")
        accounts.reset_password(session, user, "a temporary password")
        assert user.must_change_password
        with pytest.raises(passwords.WeakPassword, match="differ"):
            accounts.change_own_password(session, user, "a temporary password")
        accounts.change_own_password(session, user, "my very own password")
        assert not user.must_change_password
    with database.transaction() as session:
        assert accounts.authenticate(session, "olly", "my very own password", POLICY)


# --- signing in and lockout ----------------------------------------------------------------

def test_authenticate_counts_failures_and_locks(database: Database) -> None:
    add(database, "pat")
    now = datetime.now(UTC)
    for _ in range(3):
        with database.transaction() as session, pytest.raises(accounts.InvalidCredentials):
            accounts.authenticate(session, "pat", "wrong", POLICY, now=now)
    with database.transaction() as session:
        with pytest.raises(accounts.AccountLocked) as locked:
            accounts.authenticate(session, "pat", PASSWORD, POLICY, now=now)
        assert locked.value.retry_after == 10
        later = now + timedelta(seconds=11)
        assert accounts.authenticate(session, "PAT", PASSWORD, POLICY, now=later).username == "pat"
    with database.transaction() as session:
        assert session.scalar(select(LoginAttempt)) is None  # success forgets the failures


def test_unknown_usernames_are_throttled_like_real_ones(database: Database) -> None:
    now = datetime.now(UTC)
    for _ in range(3):
        with database.transaction() as session, pytest.raises(accounts.InvalidCredentials):
            accounts.authenticate(session, "Ghost", "x", POLICY, now=now)
    with database.transaction() as session, pytest.raises(accounts.AccountLocked):
        accounts.authenticate(session, "ghost", "x", POLICY, now=now)


def test_disabled_user_with_right_password_counts_as_failure(database: Database) -> None:
    add(database, "quin", enabled=False)
    with database.transaction() as session, pytest.raises(accounts.InvalidCredentials):
        accounts.authenticate(session, "quin", PASSWORD, POLICY)
    with database.transaction() as session:
        assert session.scalar(select(LoginAttempt.failures)) == 1


def test_lockout_back_off_doubles_up_to_the_cap(database: Database) -> None:
    now = datetime.now(UTC)
    periods = []
    for _ in range(4):
        with database.transaction() as session:
            started = [lockout.record_failure(session, "ray", POLICY, now=now)
                       for _ in range(3)]
        assert started[:2] == [0, 0]
        periods.append(started[2])
        now += timedelta(seconds=started[2] + 1)
    assert periods == [10, 20, 40, 40]


def test_lockout_history_is_forgotten_after_a_quiet_day(database: Database) -> None:
    now = datetime.now(UTC)
    with database.transaction() as session:
        for _ in range(3):
            lockout.record_failure(session, "sam", POLICY, now=now)
    later = now + timedelta(days=2)
    with database.transaction() as session:
        assert lockout.locked_for(session, "sam", now=later) == 0
        assert lockout.record_failure(session, "sam", POLICY, now=later) == 0
        row = session.scalar(select(LoginAttempt))
        assert (row.failures, row.lockouts) == (1, 0)
        assert row.last_failure_at.tzinfo is not None
    with database.transaction() as session:
        assert lockout.purge(session, POLICY, now=later + timedelta(days=2)) == 1


def test_user_model_round_trips(database: Database) -> None:
    add(database, "tia", account_number="ACME-1", groups=["client"])
    with database.transaction() as session:
        user = session.scalar(select(User).where(User.username == "tia"))
        assert user.account_number == "ACME-1" and user.has_password and user.enabled
