"""The signed-in user of a browser session: verified, checked for revocation, renewed in time.

The session holds the HiveMatrix JWT and the identity provider's refresh token. Each request
verifies the JWT locally (Core's keys, cached), asks :class:`SessionChecker` whether Core
still knows the session (cached, or told at once over Redis), and shortly before the JWT
expires swaps the refresh token for a new one, so an active user is never cut off hourly.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

from flask import current_app, request, session

from hivematrix.common.auth import InvalidToken, TokenVerifier
from hivematrix.nexus import sessions
from hivematrix.nexus.core_client import CoreClient, ExchangeRefused, SessionChecker
from hivematrix.nexus.oidc import LoginRejected, OidcClient, ProviderTokens, ProviderUnavailable

#: Session keys.
JWT, REFRESH, ID_TOKEN, LOGIN, PREFS = "jwt", "refresh_token", "id_token", "login", "prefs"

_renewing = threading.Lock()


@dataclass(frozen=True)
class SignedIn:
    token: str
    claims: dict[str, Any]


@dataclass(frozen=True)
class Services:
    """What sign-in needs, kept in ``app.extensions["nexus"]``."""

    verifier: TokenVerifier
    checker: SessionChecker
    core: CoreClient
    oidc: OidcClient


def services() -> Services:
    found: Services = current_app.extensions["nexus"]
    return found


def store_sign_in(hivematrix_token: str, tokens: ProviderTokens) -> None:
    session[JWT] = hivematrix_token
    session[REFRESH] = tokens.refresh_token
    if tokens.id_token:
        session[ID_TOKEN] = tokens.id_token


def sign_out_locally() -> None:
    session.clear()


def current_user() -> SignedIn | None:
    """The session's user, or ``None`` (signed out, revoked, expired beyond renewal).

    :raises CoreUnavailable: Core cannot say whether the session is still valid.
    """
    token = session.get(JWT)
    if not token:
        return None
    found = services()
    try:
        claims = found.verifier.verify(token).claims
    except InvalidToken:
        claims = None
    if claims is None or claims.get("type") == "service":
        return _renew_or_drop(None)
    if not found.checker.is_active(str(claims.get("jti")), token):
        if _renewed_elsewhere(token):  # another worker renewed it and retired this JWT
            return current_user()
        sign_out_locally()  # revoked at Core: never renewed
        return None
    if claims["exp"] - time.time() < current_app.config["NEXUS_RENEW_MARGIN_SECONDS"]:
        return _renew_or_drop(SignedIn(token, claims))
    return SignedIn(token, claims)


def _renewed_elsewhere(token: str) -> bool:
    """Re-read the session past the cache; adopt newer tokens another worker stored."""
    sid = sessions.current().sid
    fresh = sessions.interface().store.load(sid, fresh=True) if sid else None
    if not fresh or not fresh.get(JWT) or fresh.get(JWT) == token:
        return False
    for key in (JWT, REFRESH, ID_TOKEN):
        session[key] = fresh.get(key)
    return True


def _renew_or_drop(current: SignedIn | None) -> SignedIn | None:
    """Renew with the refresh token; keep ``current`` while the provider is merely down."""
    refresh_token = session.get(REFRESH)
    if not refresh_token:
        if current is None:
            sign_out_locally()
        return current
    found = services()
    with _renewing:
        # Another thread may have renewed this session meanwhile (a page and its assets):
        # adopt its tokens so the spent refresh token is not replayed (which ends the sign-in).
        if _renewed_elsewhere(session.get(JWT) or ""):
            return SignedIn(session[JWT], found.verifier.verify(session[JWT]).claims)
        try:
            tokens = found.oidc.refresh(refresh_token)
            new_token = found.core.exchange(tokens.access_token, request.remote_addr)
            claims = found.verifier.verify(new_token).claims
        except (LoginRejected, ExchangeRefused, InvalidToken):
            sign_out_locally()
            return None
        except ProviderUnavailable as exc:
            current_app.logger.warning(f"could not renew a browser session: {exc}")
            if current is None:
                sign_out_locally()
            return current
        old = session.get(JWT)
        store_sign_in(new_token, tokens)
        # Saved now, inside the lock, so a concurrent request sees the new tokens.
        sessions.interface().save_now(sessions.current())
    if old:
        found.core.revoke(old)  # the superseded Core session should not linger
    current_app.logger.info("renewed a browser session",
                            extra={"username": claims.get("preferred_username")})
    return SignedIn(new_token, claims)
