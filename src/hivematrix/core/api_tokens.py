"""Personal API tokens: named, shown once, stored hashed, expiring, revocable."""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from hivematrix.core.models import ApiToken

TOKEN_PREFIX = "hmpat_"  # noqa: S105 - a marker that makes leaked keys greppable, not a secret
IDENTITY_CLAIMS = ("sub", "name", "email", "preferred_username", "permission_level", "groups",
                   "account_number")


class ApiTokenError(ValueError):
    """The API key is unknown, revoked or expired."""


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def create_token(session: Session, *, owner: dict[str, Any], name: str,
                 lifetime: timedelta) -> tuple[ApiToken, str]:
    """Make a token for ``owner`` (JWT claims); returns the row and the token, shown once."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    identity = {claim: owner[claim] for claim in IDENTITY_CLAIMS if claim in owner}
    row = ApiToken(name=name, token_hash=_hash(token), prefix=token[:12], owner_sub=owner["sub"],
                   owner=identity, expires_at=datetime.now(UTC) + lifetime)
    session.add(row)
    session.flush()
    return row, token


def list_tokens(session: Session, owner_sub: str | None = None) -> list[ApiToken]:
    """Tokens of one owner, or of everybody (admins)."""
    query = select(ApiToken).order_by(ApiToken.created_at.desc(), ApiToken.id.desc())
    if owner_sub is not None:
        query = query.where(ApiToken.owner_sub == owner_sub)
    return list(session.scalars(query))


def revoke_token(session: Session, token_id: int, *, owner_sub: str | None) -> bool:
    """Revoke a token; ``owner_sub=None`` (admins) may revoke anybody's. False if not found."""
    row = session.get(ApiToken, token_id)
    if row is None or (owner_sub is not None and row.owner_sub != owner_sub):
        return False
    row.revoked_at = row.revoked_at or datetime.now(UTC)
    return True


def redeem(session: Session, token: str) -> dict[str, Any]:
    """The owner's identity for a valid API key (and note the use).

    :raises ApiTokenError: unknown, revoked or expired.
    """
    row = session.scalar(select(ApiToken).where(ApiToken.token_hash == _hash(token)))
    now = datetime.now(UTC)
    if row is None or row.revoked_at is not None:
        raise ApiTokenError("unknown or revoked API key")
    if row.expires_at <= now:
        raise ApiTokenError("API key has expired")
    row.last_used_at = now
    return dict(row.owner)
