"""Minting and reading HiveMatrix JWTs; mapping identity-provider groups to permission levels."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt

from hivematrix.core.keyring import KeyRing

ISSUER = "hivematrix-core"
USER_AUDIENCE = "hivematrix"
USER_TOKEN_LIFETIME = timedelta(hours=1)
SERVICE_TOKEN_LIFETIME = timedelta(minutes=5)

#: Checked in this order: a member of admins and billing is an admin.
GROUP_LEVELS = (("admins", "admin"), ("technicians", "technician"), ("billing", "billing"))


class TokenError(ValueError):
    """A token Core was asked about is not one of its valid tokens; the message says why."""


def group_names(groups: Any) -> list[str]:
    """Group names with Keycloak's leading ``/`` removed (``/admins`` and ``admins`` match)."""
    if not isinstance(groups, list):
        return []
    return [str(group).strip("/").rsplit("/", 1)[-1] for group in groups if group]


def permission_level(groups: list[str]) -> str:
    """admins -> admin, technicians -> technician, billing -> billing, anything else -> client."""
    for group, level in GROUP_LEVELS:
        if group in groups:
            return level
    return "client"


def user_from_userinfo(claims: dict[str, Any]) -> dict[str, Any]:
    """The identity Core keeps in a session and puts in the JWT."""
    groups = group_names(claims.get("groups"))
    username = claims.get("preferred_username") or claims.get("email") or claims["sub"]
    user = {
        "sub": str(claims["sub"]),
        "name": claims.get("name") or username,
        "email": claims.get("email"),
        "preferred_username": username,
        "permission_level": permission_level(groups),
        "groups": groups,
    }
    # Client users are scoped to their own company.
    if user["permission_level"] == "client" and claims.get("account_number"):
        user["account_number"] = str(claims["account_number"])
    return user


def mint_user_token(keys: KeyRing, user: dict[str, Any], jti: str, *,
                    now: datetime | None = None,
                    lifetime: timedelta = USER_TOKEN_LIFETIME) -> str:
    now = now or datetime.now(UTC)
    claims = {**user, "iss": ISSUER, "aud": USER_AUDIENCE, "jti": jti,
              "iat": int(now.timestamp()), "exp": int((now + lifetime).timestamp())}
    return keys.current.sign(claims)


def mint_service_token(keys: KeyRing, caller: str, target: str, *,
                       now: datetime | None = None) -> str:
    now = now or datetime.now(UTC)
    return keys.current.sign({
        "iss": ISSUER, "aud": target, "sub": f"service:{caller}", "type": "service",
        "calling_service": caller, "target_service": target, "jti": secrets.token_urlsafe(16),
        "iat": int(now.timestamp()), "exp": int((now + SERVICE_TOKEN_LIFETIME).timestamp()),
    })


def read_user_token(keys: KeyRing, token: str, *, verify_exp: bool = True) -> dict[str, Any]:
    """The claims of a user token Core signed.

    ``verify_exp=False`` is for revocation: an expired but genuine token may still be revoked.

    :raises TokenError: not a genuine, unexpired (if asked) HiveMatrix user token.
    """
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError as exc:
        raise TokenError("malformed token") from exc
    if header.get("alg") != "RS256":
        raise TokenError("token algorithm not accepted")
    key = keys.find(str(header.get("kid", "")))
    if key is None:
        raise TokenError("token signed with an unknown key")
    try:
        claims: dict[str, Any] = jwt.decode(
            token, key.private_key.public_key(), algorithms=["RS256"], issuer=ISSUER,
            audience=USER_AUDIENCE, options={"verify_exp": verify_exp,
                                             "require": ["exp", "iat", "sub", "jti"]})
    except jwt.ExpiredSignatureError as exc:
        raise TokenError("token has expired") from exc
    except jwt.PyJWTError as exc:
        raise TokenError(f"invalid token: {exc}") from exc
    if claims.get("type") == "service":
        raise TokenError("service tokens have no session")
    return claims
