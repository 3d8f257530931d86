"""Issued codes and tokens as plain data operations, on SQLite and PostgreSQL."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from hivematrix.common.db import Database
from hivematrix.identity import accounts, grants
from hivematrix.identity.models import AuthorizationCode, Token, digest


@pytest.fixture
def user_id(database: Database) -> int:
    with database.transaction() as session:
        return accounts.create_user(session, accounts.NewUser(username="una")).id


def add_token(database: Database, user_id: int, name: str, *, auth_time: int,
              family: str = "f", sid: str = "s") -> None:
    with database.transaction() as session:
        session.add(Token(client_id="core-client", user_id=user_id, sid=sid, family=family,
                          auth_time=auth_time, token_type="Bearer",
                          access_token=digest(f"a-{name}"), refresh_token=digest(f"r-{name}"),
                          scope="openid", expires_in=300, issued_at=auth_time))


def add_code(database: Database, user_id: int, code: str, created_at: datetime) -> None:
    with database.transaction() as session:
        session.add(AuthorizationCode(code=digest(code), client_id="core-client",
                                      user_id=user_id, sid="s", family="f",
                                      created_at=created_at, auth_time=int(time.time())))


def test_revoke_needs_a_criterion(database: Database) -> None:
    with database.transaction() as session, pytest.raises(ValueError):
        grants.revoke(session)


def test_revoke_by_sid_leaves_other_sessions(database: Database, user_id: int) -> None:
    now = int(time.time())
    add_token(database, user_id, "one", auth_time=now, sid="browser-1", family="x")
    add_token(database, user_id, "two", auth_time=now, sid="browser-2", family="y")
    with database.transaction() as session:
        assert grants.revoke(session, sid="browser-1") == 1
    with database.transaction() as session:
        assert grants.find_access_token(session, "a-one").is_revoked()
        assert not grants.find_access_token(session, "a-two").is_revoked()


def test_codes_are_single_use_and_stored_hashed(database: Database, user_id: int) -> None:
    add_code(database, user_id, "the-code", datetime.now(UTC))
    with database.transaction() as session:
        assert session.scalar(select(AuthorizationCode.code)) != "the-code"
        assert grants.claim_code(session, "the-code", "other-client") is None
        assert grants.claim_code(session, "the-code", "core-client") is not None
    with database.transaction() as session:
        assert grants.claim_code(session, "the-code", "core-client") is None


def test_refresh_tokens_are_single_use(database: Database, user_id: int) -> None:
    add_token(database, user_id, "t", auth_time=int(time.time()))
    with database.transaction() as session:
        assert grants.claim_refresh_token(session, "r-t", "core-client") is not None
    with database.transaction() as session:
        assert grants.claim_refresh_token(session, "r-t", "core-client") is None
        assert grants.find_access_token(session, "a-t").is_revoked()  # replay: family revoked


def test_purge_deletes_only_what_is_stale(database: Database, user_id: int) -> None:
    now = datetime.now(UTC)
    add_code(database, user_id, "old", now - timedelta(days=2))
    add_code(database, user_id, "new", now)
    add_token(database, user_id, "old", auth_time=int(time.time()) - 3 * 86400)
    add_token(database, user_id, "new", auth_time=int(time.time()))
    with database.transaction() as session:
        grants.purge(session, session_max_seconds=36000)
    with database.transaction() as session:
        assert session.scalar(select(func.count()).select_from(AuthorizationCode)) == 1
        assert grants.find_access_token(session, "a-old") is None
        assert grants.find_access_token(session, "a-new") is not None
