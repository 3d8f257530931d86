"""Test JWTs for trying an endpoint by hand, signed with Core's current key."""

from __future__ import annotations

import re
import secrets
from datetime import timedelta
from pathlib import Path

from hivematrix.core import tokens
from hivematrix.core.keyring import KeyRing

LEVELS = ("admin", "technician", "billing", "client")
LONGEST = timedelta(hours=24)
_DURATION = re.compile(r"(\d+)([smhd])")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def parse_ttl(text: str) -> timedelta:
    """``90s``, ``30m``, ``1h`` or ``1d``; at most a day: a test token should not linger."""
    found = _DURATION.fullmatch(text.strip().lower())
    if not found or int(found.group(1)) == 0:
        raise ValueError(f"{text!r} is not a duration like 30m, 1h or 1d")
    ttl = timedelta(**{_UNITS[found.group(2)]: int(found.group(1))})
    if ttl > LONGEST:
        raise ValueError(f"{text!r} is longer than the longest test token (24h)")
    return ttl


def create_test_token(home: Path, *, level: str, ttl: timedelta, username: str) -> str:
    """A user token as Core would issue it, for ``username`` at ``level``."""
    if level not in LEVELS:
        raise ValueError(f"level must be one of {', '.join(LEVELS)}")
    keys = KeyRing.open(home / "keys", publish_for=tokens.USER_TOKEN_LIFETIME, create=False)
    groups = {"admin": ["admins"], "technician": ["technicians"], "billing": ["billing"],
              "client": []}[level]
    user = {"sub": f"test:{username}", "name": f"{username} (test token)",
            "preferred_username": username, "email": None, "permission_level": level,
            "groups": groups, "test_token": True}
    return tokens.mint_user_token(keys, user, jti=f"test-{secrets.token_urlsafe(12)}",
                                  lifetime=ttl)
