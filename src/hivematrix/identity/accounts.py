"""Users and groups: creating, changing, disabling, password changes and signing in.

Plain functions over a SQLAlchemy session; the caller commits.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from hivematrix.common.db import utcnow
from hivematrix.identity import grants, lockout, passwords
from hivematrix.identity.lockout import LockoutPolicy
from hivematrix.identity.models import GROUPS, Group, User, new_stamp

ADMINS = "admins"
USERNAME_PATTERN = r"^[a-z0-9][a-z0-9._@-]{0,99}$"
_USERNAME = re.compile(USERNAME_PATTERN)
log = logging.getLogger("hivematrix.identity.accounts")
#: Fields an administrator may change with :func:`update_user`.
PROFILE_FIELDS = ("name", "email", "account_number", "enabled")


class AccountError(ValueError):
    """A change to the accounts cannot be made; the message says why (safe to show)."""


class UnknownUser(AccountError, LookupError):
    pass


class UserExists(AccountError):
    pass


class UnknownGroup(AccountError):
    pass


class LastAdmin(AccountError):
    """The change would leave no enabled administrator."""


class InvalidCredentials(Exception):
    """Wrong username or password (or a disabled account): one answer for all of them."""


class AccountLocked(Exception):
    """Too many failed sign-ins for this username."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"too many attempts, try again in {retry_after} s")
        self.retry_after = retry_after


@dataclass(frozen=True)
class PasswordRules:
    min_length: int = passwords.MIN_LENGTH


@dataclass
class NewUser:
    """What :func:`create_user` needs; already shaped by the API schema."""

    username: str
    password: str | None = None
    name: str = ""
    email: str | None = None
    account_number: str | None = None
    groups: list[str] = field(default_factory=list)
    enabled: bool = True
    #: Defaults to True when a password is given: an administrator's password is temporary.
    must_change_password: bool | None = None


def normalise_username(username: str) -> str:
    """Lower-case and trimmed; :raises AccountError: not a valid username."""
    name = username.strip().lower()
    if not _USERNAME.match(name):
        raise AccountError("Username must be 1-100 characters: letters, digits, '.', '_', '@' "
                           "or '-', starting with a letter or digit.")
    return name


def find_user(session: Session, username: str) -> User | None:
    name = username.strip().lower()
    if not _USERNAME.match(name):
        return None  # cannot exist; and never send junk such as NUL to the database
    return session.scalar(select(User).where(User.username == name))


def get_user(session: Session, username: str) -> User:
    """:raises UnknownUser: no such user."""
    user = find_user(session, username)
    if user is None:
        raise UnknownUser(f"No user named {username.strip().lower()!r}.")
    return user


def list_users(session: Session) -> list[User]:
    return list(session.scalars(select(User).order_by(User.username)))


def list_groups(session: Session) -> list[tuple[str, int]]:
    """Every group with its member count."""
    from hivematrix.identity.models import user_groups

    query = (select(Group.name, func.count(user_groups.c.user_id))
             .outerjoin(user_groups, user_groups.c.group_id == Group.id)
             .group_by(Group.name).order_by(Group.name))
    return [(name, count) for name, count in session.execute(query)]


def ensure_groups(session: Session) -> None:
    """Create the platform's groups that are missing (the migration seeds them too)."""
    existing = set(session.scalars(select(Group.name)))
    for name in GROUPS:
        if name not in existing:
            session.add(Group(name=name))
    session.flush()


def _groups(session: Session, names: Iterable[str]) -> list[Group]:
    wanted = sorted({name.strip().lstrip("/") for name in names})
    found = list(session.scalars(select(Group).where(Group.name.in_(wanted))
                                 .order_by(Group.name)))
    missing = sorted(set(wanted) - {group.name for group in found})
    if missing:
        raise UnknownGroup(f"Unknown group(s): {', '.join(missing)}; "
                           f"known groups: {', '.join(GROUPS)}.")
    return found


def admin_exists(session: Session) -> bool:
    """True once any user (enabled or not) belongs to ``admins``."""
    query = select(User.id).join(User.groups).where(Group.name == ADMINS).limit(1)
    return session.scalar(query) is not None


def _is_active_admin(user: User) -> bool:
    return user.enabled and ADMINS in user.group_names


def _other_active_admins(session: Session, user: User) -> int:
    query = (select(func.count(User.id)).join(User.groups)
             .where(Group.name == ADMINS, User.enabled.is_(True), User.id != user.id))
    return session.scalar(query) or 0


def _guard_last_admin(session: Session, user: User, *, stays_admin: bool) -> None:
    if _is_active_admin(user) and not stays_admin and _other_active_admins(session, user) == 0:
        raise LastAdmin(f"{user.username!r} is the last enabled administrator; "
                        "make someone else an administrator first.")


def create_user(session: Session, new: NewUser, rules: PasswordRules = PasswordRules()) -> User:
    """Add a user.

    :raises AccountError: invalid username, taken username, unknown group or weak password.
    """
    username = normalise_username(new.username)
    if find_user(session, username) is not None:
        raise UserExists(f"A user named {username!r} already exists.")
    user = User(username=username, name=new.name.strip(), email=_blank_to_none(new.email),
                account_number=_blank_to_none(new.account_number), enabled=new.enabled,
                groups=_groups(session, new.groups))
    if new.password is not None:
        must_change = True if new.must_change_password is None else new.must_change_password
        _set_password(user, new.password, rules, must_change=must_change)
    session.add(user)
    session.flush()
    return user


def _blank_to_none(value: str | None) -> str | None:
    if value is None:
        return None
    return value.strip() or None


def update_user(session: Session, user: User, changes: dict[str, Any]) -> User:
    """Change profile fields and the enabled flag; disabling ends all of the user's sessions.

    :raises LastAdmin: disabling the last enabled administrator.
    """
    unknown = set(changes) - set(PROFILE_FIELDS)
    if unknown:
        raise AccountError(f"Cannot change: {', '.join(sorted(unknown))}.")
    if changes.get("enabled") is False:
        _guard_last_admin(session, user, stays_admin=False)
    if "name" in changes:
        user.name = (changes["name"] or "").strip()
    for key in ("email", "account_number"):
        if key in changes:
            setattr(user, key, _blank_to_none(changes[key]))
    if "enabled" in changes and changes["enabled"] != user.enabled:
        user.enabled = bool(changes["enabled"])
        if not user.enabled:
            end_sessions(session, user)
    user.updated_at = utcnow()
    session.flush()
    return user


def end_sessions(session: Session, user: User) -> None:
    """Sign the user out everywhere: browser sessions end, tokens stop working."""
    user.security_stamp = new_stamp()
    grants.revoke(session, user_id=user.id)


def set_groups(session: Session, user: User, names: Iterable[str]) -> User:
    """Replace the user's groups.

    :raises UnknownGroup: a name is not one of the platform's groups.
    :raises LastAdmin: removing the last enabled administrator from ``admins``.
    """
    groups = _groups(session, names)
    _guard_last_admin(session, user, stays_admin=any(g.name == ADMINS for g in groups))
    user.groups = groups
    user.updated_at = utcnow()
    session.flush()
    return user


def _set_password(user: User, password: str, rules: PasswordRules, *, must_change: bool) -> None:
    passwords.check_policy(password, username=user.username, min_length=rules.min_length)
    user.password_hash = passwords.hash_password(password)
    user.must_change_password = must_change
    user.password_changed_at = utcnow()
    user.security_stamp = new_stamp()


def reset_password(session: Session, user: User, password: str, *, temporary: bool = True,
                   rules: PasswordRules = PasswordRules()) -> User:
    """An administrator sets a password (temporary by default) and lifts any lockout.

    Existing browser sessions end; issued tokens stay valid until they expire.

    :raises passwords.WeakPassword: the password breaks the policy.
    """
    _set_password(user, password, rules, must_change=temporary)
    lockout.clear(session, user.username)
    user.updated_at = utcnow()
    session.flush()
    return user


def change_own_password(session: Session, user: User, new_password: str,
                        rules: PasswordRules = PasswordRules()) -> User:
    """The user replaces their (temporary) password.

    :raises passwords.WeakPassword: breaks the policy or equals the current password.
    """
    passwords.check_policy(new_password, username=user.username, min_length=rules.min_length)
    if passwords.verify_password(user.password_hash, new_password):
        raise passwords.WeakPassword("The new password must differ from the current one.")
    _set_password(user, new_password, rules, must_change=False)
    user.updated_at = utcnow()
    session.flush()
    return user


def authenticate(session: Session, username: str, password: str, policy: LockoutPolicy,
                 *, now: datetime | None = None) -> User:
    """Check a sign-in.

    :raises AccountLocked: the username is locked (the password is not even checked).
    :raises InvalidCredentials: unknown user, wrong password or disabled account; the failure
        is counted towards a lockout.
    """
    now = now or utcnow()
    name = lockout.normalise(username)
    if not name:
        passwords.spend_verification_time(password)
        raise InvalidCredentials()
    retry_after = lockout.locked_for(session, name, now=now)
    if retry_after:
        raise AccountLocked(retry_after)
    user = find_user(session, name)
    if user is None:
        passwords.spend_verification_time(password)
        ok = False
    else:
        ok = passwords.verify_password(user.password_hash, password) and user.enabled
    if not ok:
        if lockout.record_failure(session, name, policy, now=now):
            log.warning("sign-in locked after repeated failures", extra={"username": name})
        raise InvalidCredentials()
    assert user is not None and user.password_hash is not None
    lockout.clear(session, name)
    if passwords.needs_rehash(user.password_hash):
        user.password_hash = passwords.hash_password(password)
    return user
