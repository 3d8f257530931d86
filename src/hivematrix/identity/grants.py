"""Issued OAuth state as plain data operations: revoking tokens, finding them, pruning them.

Tokens and codes are looked up by their SHA-256 digest (see :func:`models.digest`).
"""

from __future__ import annotations

import time
from datetime import timedelta

from sqlalchemy import delete, or_, select, update
from sqlalchemy.orm import Session

from hivematrix.common.db import utcnow
from hivematrix.identity.models import AuthorizationCode, Token, digest

#: Used or expired codes are kept this long (replay detection, nonce checks), then deleted.
CODE_RETENTION = timedelta(days=1)


def revoke(session: Session, *, user_id: int | None = None, sid: str | None = None,
           family: str | None = None) -> int:
    """Revoke every live access and refresh token matching the given criteria.

    :returns: how many tokens were revoked.
    """
    criteria = []
    if user_id is not None:
        criteria.append(Token.user_id == user_id)
    if sid is not None:
        criteria.append(Token.sid == sid)
    if family is not None:
        criteria.append(Token.family == family)
    if not criteria:
        raise ValueError("revoke needs at least one criterion")
    now = int(time.time())
    live = or_(Token.access_token_revoked_at == 0, Token.refresh_token_revoked_at == 0)
    result = session.execute(
        update(Token).where(*criteria, live)
        .values(access_token_revoked_at=now, refresh_token_revoked_at=now)
        .execution_options(synchronize_session=False))
    return int(getattr(result, "rowcount", 0) or 0)


def find_access_token(session: Session, access_token: str) -> Token | None:
    return session.scalar(select(Token).where(Token.access_token == digest(access_token)))


def find_refresh_token(session: Session, refresh_token: str) -> Token | None:
    return session.scalar(select(Token).where(Token.refresh_token == digest(refresh_token)))


def claim_code(session: Session, code: str, client_id: str) -> AuthorizationCode | None:
    """Mark an authorization code used and return it; ``None`` when it is unknown or spent.

    Spending is a single conditional UPDATE, so two parallel exchanges cannot both succeed.
    Presenting a spent code revokes every token issued from it (RFC 6749 section 4.1.2).
    """
    hashed = digest(code)
    result = session.execute(
        update(AuthorizationCode)
        .where(AuthorizationCode.code == hashed, AuthorizationCode.client_id == client_id,
               AuthorizationCode.used_at.is_(None))
        .values(used_at=utcnow()).execution_options(synchronize_session=False))
    found = session.scalar(select(AuthorizationCode).where(
        AuthorizationCode.code == hashed, AuthorizationCode.client_id == client_id))
    if found is None:
        return None
    if not getattr(result, "rowcount", 0):
        revoke(session, family=found.family)
        return None
    session.refresh(found)
    return None if found.is_expired() else found


def claim_refresh_token(session: Session, refresh_token: str, client_id: str) -> Token | None:
    """Spend a refresh token (they rotate on every use) and return its row.

    A refresh token that was already spent means it leaked: every token of its family is
    revoked, so both the thief and the legitimate client have to sign in again.
    """
    hashed = digest(refresh_token)
    result = session.execute(
        update(Token)
        .where(Token.refresh_token == hashed, Token.client_id == client_id,
               Token.refresh_token_revoked_at == 0)
        .values(refresh_token_revoked_at=int(time.time()))
        .execution_options(synchronize_session=False))
    found = session.scalar(select(Token).where(Token.refresh_token == hashed,
                                               Token.client_id == client_id))
    if found is None:
        return None
    if not getattr(result, "rowcount", 0):
        revoke(session, family=found.family)
        return None
    session.refresh(found)
    return found


def purge(session: Session, *, session_max_seconds: int) -> None:
    """Delete codes past their retention and tokens that can no longer be used for anything."""
    session.execute(delete(AuthorizationCode).where(
        AuthorizationCode.created_at < utcnow() - CODE_RETENTION))
    # A token's refresh half dies with its session; its access half long before that.
    cutoff = int(time.time()) - session_max_seconds - int(CODE_RETENTION.total_seconds())
    session.execute(delete(Token).where(Token.auth_time < cutoff, Token.issued_at < cutoff))
