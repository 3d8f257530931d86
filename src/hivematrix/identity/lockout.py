"""Sign-in throttling per username: after a run of failures the username is locked for a
period that doubles with each lockout, up to a cap.

Unknown usernames are counted exactly like real ones, so the answers never tell which exist.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from hivematrix.common.db import utcnow
from hivematrix.identity.models import USERNAME_MAX, LoginAttempt


@dataclass(frozen=True)
class LockoutPolicy:
    """``threshold`` failures lock a username for ``base_seconds``, doubling per lockout."""

    threshold: int = 5
    base_seconds: int = 30
    max_seconds: int = 900
    #: A username with no failure for this long starts again from a clean slate.
    forget_after: timedelta = timedelta(hours=24)

    def period(self, lockouts: int) -> timedelta:
        """How long the ``lockouts``-th lockout (1-based) lasts."""
        seconds = self.base_seconds * 2 ** max(0, min(lockouts - 1, 30))
        return timedelta(seconds=min(seconds, self.max_seconds))


def normalise(username: str) -> str:
    """The form usernames are stored and compared in (control characters dropped)."""
    printable = "".join(char for char in username if char.isprintable())
    return printable.strip().lower()[:USERNAME_MAX]


def _seconds(delta: timedelta) -> int:
    return max(1, math.ceil(delta.total_seconds()))


def _row(session: Session, username: str) -> LoginAttempt | None:
    query = select(LoginAttempt).where(LoginAttempt.username == username).with_for_update()
    return session.scalar(query)


def locked_for(session: Session, username: str, *, now: datetime | None = None) -> int:
    """Seconds until ``username`` may try again; 0 when it is not locked."""
    now = now or utcnow()
    row = session.scalar(select(LoginAttempt).where(LoginAttempt.username == normalise(username)))
    if row is None or row.locked_until is None or row.locked_until <= now:
        return 0
    return _seconds(row.locked_until - now)


def record_failure(session: Session, username: str, policy: LockoutPolicy,
                   *, now: datetime | None = None) -> int:
    """Count a failed sign-in; returns the seconds of the lockout it started (0 for none).

    The row is locked while it is updated (PostgreSQL), so parallel guesses cannot slip
    past the threshold. The caller commits.
    """
    now = now or utcnow()
    name = normalise(username)
    row = _row(session, name)
    if row is None:
        try:
            with session.begin_nested():
                session.add(LoginAttempt(username=name, failures=0, lockouts=0,
                                         last_failure_at=now))
        except IntegrityError:
            pass  # another request created it first
        row = _row(session, name)
        assert row is not None
    if row.last_failure_at + policy.forget_after < now and not _is_locked(row, now):
        row.failures, row.lockouts = 0, 0
    row.failures += 1
    row.last_failure_at = now
    if row.failures < policy.threshold:
        return 0
    row.lockouts += 1
    row.failures = 0
    period = policy.period(row.lockouts)
    row.locked_until = now + period
    return _seconds(period)


def _is_locked(row: LoginAttempt, now: datetime) -> bool:
    return row.locked_until is not None and row.locked_until > now


def clear(session: Session, username: str) -> None:
    """Forget the failures of ``username`` (a successful sign-in, or an administrator's reset)."""
    session.execute(delete(LoginAttempt).where(LoginAttempt.username == normalise(username)))


def purge(session: Session, policy: LockoutPolicy, *, now: datetime | None = None) -> int:
    """Delete records that no longer matter (keeps the table small under username spraying)."""
    now = now or utcnow()
    result = session.execute(delete(LoginAttempt).where(
        LoginAttempt.last_failure_at < now - policy.forget_after,
        or_(LoginAttempt.locked_until.is_(None), LoginAttempt.locked_until < now)))
    return int(getattr(result, "rowcount", 0) or 0)
