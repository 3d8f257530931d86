"""Display links: a wall screen opens a ticket board without anyone signing in.

An admin creates a link for one page (``/beacon/display/helpdesk``); its token is shown once
and only its hash is kept. The token opens that page and the display's own assets and data
(the prefixes in ``NEXUS_DISPLAY_PATHS`` of the same service), nothing else, until it expires
or is revoked. Requests it admits reach the backend with a Nexus service token and
``X-HiveMatrix-Display: <link name>``, never as a user.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from hivematrix.common.db import utcnow
from hivematrix.nexus.models import DisplayLink

#: Query parameter carrying the token on the first visit; later requests carry the cookie.
TOKEN_PARAM = "display_token"  # noqa: S105 - a parameter name
COOKIE = "hm_display"


class DisplayLinkError(ValueError):
    """The link cannot be created as asked; the message names the field."""


@dataclass(frozen=True)
class NewLink:
    link: DisplayLink
    token: str


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def allowed_prefixes(setting: str) -> list[str]:
    """``NEXUS_DISPLAY_PATHS``: space-separated path prefixes display links may open."""
    return [part for part in setting.split() if part.startswith("/")]


def service_of(path: str) -> str:
    return path.strip("/").split("/", 1)[0]


def create(db: Session, *, name: str, path: str, created_by: str, prefixes: list[str],
           days: int | None) -> NewLink:
    if not any(path.startswith(prefix) for prefix in prefixes):
        raise DisplayLinkError(f"path: must start with one of {', '.join(prefixes) or '(none)'}")
    if days is not None and not 1 <= days <= 3650:
        raise DisplayLinkError("days: must be between 1 and 3650")
    token = secrets.token_urlsafe(32)
    link = DisplayLink(name=name, path=path, token_hash=_hash(token), created_by=created_by,
                       expires_at=utcnow() + timedelta(days=days) if days else None)
    db.add(link)
    db.flush()
    return NewLink(link, token)


def find(db: Session, token: str, now: datetime | None = None) -> DisplayLink | None:
    """The live link for a token, or ``None``."""
    link = db.scalar(select(DisplayLink).where(DisplayLink.token_hash == _hash(token)))
    now = now or utcnow()
    if link is None or link.revoked_at is not None:
        return None
    if link.expires_at is not None and link.expires_at <= now:
        return None
    return link


def admits(link: DisplayLink, request_path: str, prefixes: list[str]) -> bool:
    """A link opens allowed prefixes of its own service only."""
    service = service_of(link.path)
    return any(request_path.startswith(prefix) and service_of(prefix) == service
               for prefix in prefixes)


def revoke(db: Session, link_id: int) -> DisplayLink | None:
    link = db.get(DisplayLink, link_id)
    if link is not None and link.revoked_at is None:
        link.revoked_at = utcnow()
    return link
