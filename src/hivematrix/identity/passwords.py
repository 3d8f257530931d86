"""Password hashing (argon2id through argon2-cffi), the password policy and generated passwords."""

from __future__ import annotations

import contextlib
import secrets
from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

#: The platform-wide minimum; the ``IDENTITY_PASSWORD_MIN_LENGTH`` setting may only raise it.
MIN_LENGTH = 12
#: argon2 hashes anything, but a huge "password" is only a way to burn CPU.
MAX_LENGTH = 256


class WeakPassword(ValueError):
    """The password does not meet the policy; the message says why (safe to show)."""


@cache
def _hasher() -> PasswordHasher:
    # argon2-cffi's defaults follow RFC 9106's recommendation (argon2id, 64 MiB, 3 passes).
    return PasswordHasher()


@cache
def _decoy_hash() -> str:
    return _hasher().hash(secrets.token_urlsafe(16))


def hash_password(password: str) -> str:
    return _hasher().hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """True when ``password`` matches; an absent or malformed hash never matches.

    Without a hash the check still spends the time of a real one, so response times do not
    tell which usernames exist.
    """
    if not password_hash:
        spend_verification_time(password)
        return False
    try:
        return _hasher().verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def spend_verification_time(password: str) -> None:
    """Verify against a throwaway hash: as slow as a real check, never a match."""
    with contextlib.suppress(VerificationError, InvalidHashError):
        _hasher().verify(_decoy_hash(), password)


def needs_rehash(password_hash: str) -> bool:
    """True when the hash was made with weaker parameters than today's."""
    try:
        return _hasher().check_needs_rehash(password_hash)
    except InvalidHashError:
        return True


def check_policy(password: str, *, username: str = "", min_length: int = MIN_LENGTH) -> None:
    """:raises WeakPassword: too short, too long, blank or the username itself."""
    min_length = max(min_length, MIN_LENGTH)
    if len(password) < min_length:
        raise WeakPassword(f"Password must be at least {min_length} characters long.")
    if len(password) > MAX_LENGTH:
        raise WeakPassword(f"Password must be at most {MAX_LENGTH} characters long.")
    if not password.strip():
        raise WeakPassword("Password must not be blank.")
    if username and password.strip().lower() == username.strip().lower():
        raise WeakPassword("Password must not be the username.")


def generate_password() -> str:
    """A random password of 24 URL-safe characters (144 bits)."""
    return secrets.token_urlsafe(18)
