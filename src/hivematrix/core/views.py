"""Core's API: JWKS, token exchange/validate/revoke, service tokens, personal API tokens."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from apiflask import APIBlueprint
from flask import current_app, g, request
from werkzeug.exceptions import BadGateway, BadRequest, NotFound, ServiceUnavailable, Unauthorized

from hivematrix.common import ratelimit
from hivematrix.common.auth import bearer_token, token_required
from hivematrix.common.db import get_session
from hivematrix.common.registry import read_services
from hivematrix.core import api_tokens, tokens
from hivematrix.core.identity_provider import (
    IdentityProvider,
    IdentityProviderError,
    InvalidAccessToken,
)
from hivematrix.core.keyring import KeyRing
from hivematrix.core.schemas import (
    ApiKeyIn,
    ApiTokenCreatedOut,
    ApiTokenIn,
    ApiTokenOut,
    ExchangeIn,
    MessageOut,
    ServiceTokenIn,
    TokenIn,
    TokenOut,
    ValidateOut,
)
from hivematrix.core.service_secrets import ServiceSecrets
from hivematrix.core.sessions import SessionStore, StoreUnavailable

bp = APIBlueprint("core", __name__, tag="Core")


def _keys() -> KeyRing:
    keys: KeyRing = current_app.extensions["core.keys"]
    return keys


def _store() -> SessionStore:
    store: SessionStore = current_app.extensions["core.sessions"]
    return store


def _store_down(exc: StoreUnavailable) -> ServiceUnavailable:
    current_app.logger.error("session store unavailable: %s", exc)
    return ServiceUnavailable("The session store is unavailable.", retry_after=5)


def _token_from(body: dict[str, Any], field: str) -> str:
    token = body.get(field) or bearer_token()
    if not token:
        raise BadRequest(f"{field}: send the token in the JSON body or as a Bearer token.")
    return str(token)


def _start_session(user: dict[str, Any]) -> dict[str, str]:
    try:
        session = _store().create(user, tokens.USER_TOKEN_LIFETIME)
    except StoreUnavailable as exc:
        raise _store_down(exc) from exc
    return {"token": tokens.mint_user_token(_keys(), user, session.jti, now=session.created_at)}


@bp.get("/.well-known/jwks.json")
@bp.doc(summary="Public signing keys (JWKS)")
@ratelimit.exempt
def jwks() -> tuple[dict[str, Any], int, dict[str, str]]:
    return _keys().jwks(), 200, {"Cache-Control": "public, max-age=60"}


@bp.post("/api/token/exchange")
@bp.doc(summary="Exchange an identity-provider access token for a HiveMatrix JWT")
@ratelimit.limit("20 per minute")
@bp.input(ExchangeIn, arg_name="body")
@bp.output(TokenOut)
def exchange(body: dict[str, Any]) -> dict[str, str]:
    access_token = _token_from(body, "access_token")
    provider: IdentityProvider = current_app.extensions["core.idp"]
    try:
        claims = provider.userinfo(access_token)
    except InvalidAccessToken as exc:
        raise Unauthorized(str(exc)) from exc
    except IdentityProviderError as exc:
        current_app.logger.error("identity provider unavailable: %s", exc)
        raise BadGateway("The identity provider did not answer.") from exc
    return _start_session(tokens.user_from_userinfo(claims))


@bp.post("/api/token/validate")
@bp.doc(summary="Is this HiveMatrix JWT valid and its session active?")
@ratelimit.exempt  # Nexus asks on behalf of every user, all from one address
@bp.input(TokenIn, arg_name="body")
@bp.output(ValidateOut)
def validate(body: dict[str, Any]) -> Any:
    token = _token_from(body, "token")
    try:
        claims = tokens.read_user_token(_keys(), token)
        session = _store().get(claims["jti"])
    except tokens.TokenError as exc:
        return {"valid": False, "error": str(exc)}, 401
    except StoreUnavailable as exc:
        raise _store_down(exc) from exc
    if session is None:
        return {"valid": False, "error": "session not found"}, 401
    if session.revoked:
        return {"valid": False, "error": "session revoked"}, 401
    if not session.is_active():
        return {"valid": False, "error": "session expired"}, 401
    return {"valid": True, "user": session.user}


@bp.post("/api/token/revoke")
@bp.doc(summary="Revoke the session of a HiveMatrix JWT (logout)")
@bp.input(TokenIn, arg_name="body")
@bp.output(MessageOut)
def revoke(body: dict[str, Any]) -> dict[str, str]:
    token = _token_from(body, "token")
    try:
        # An expired but genuine token may still be revoked.
        claims = tokens.read_user_token(_keys(), token, verify_exp=False)
        found = _store().revoke(claims["jti"])
    except tokens.TokenError as exc:
        raise Unauthorized(str(exc)) from exc
    except StoreUnavailable as exc:
        raise _store_down(exc) from exc
    if not found:
        raise NotFound("No such session.")
    return {"message": "Session revoked successfully"}


@bp.post("/service-token")
@bp.doc(summary="Mint a 5-minute token for calling another service",
        description="The caller authenticates with HTTP Basic `<service>:<secret>`.")
@bp.input(ServiceTokenIn, arg_name="body")
@bp.output(TokenOut)
def service_token(body: dict[str, str]) -> dict[str, str]:
    caller, target = body["calling_service"], body["target_service"]
    credentials = request.authorization
    secrets: ServiceSecrets = current_app.extensions["core.service_secrets"]
    if (credentials is None or credentials.type != "basic" or credentials.username != caller
            or not secrets.verify(caller, credentials.password or "")):
        raise Unauthorized("Service credentials are missing or wrong.",
                           www_authenticate=_basic_challenge())
    if caller == target:
        raise BadRequest("target_service: a service does not need a token to call itself.")
    if target not in read_services(current_app.config["SERVICES_FILE"]) and target != "core":
        raise BadRequest(f"target_service: unknown service {target!r}.")
    return {"token": tokens.mint_service_token(_keys(), caller, target)}


def _basic_challenge() -> Any:
    from werkzeug.datastructures import WWWAuthenticate

    return WWWAuthenticate("basic", {"realm": "hivematrix-services"})


# --- personal API tokens -----------------------------------------------------------------

def _require_active_session() -> None:
    """Core's own user routes also refuse a signed-out token (other services leave that
    check to Nexus; Core owns the sessions, so it can make it for free)."""
    try:
        session = _store().get(str(g.user.get("jti", "")))
    except StoreUnavailable as exc:
        raise _store_down(exc) from exc
    if session is None or not session.is_active():
        raise Unauthorized("This session has ended; sign in again.")


@bp.post("/api/tokens")
@bp.doc(summary="Create a personal API token (shown once)")
@token_required
@bp.input(ApiTokenIn, arg_name="body")
@bp.output(ApiTokenCreatedOut, status_code=201)
def create_api_token(body: dict[str, Any]) -> dict[str, Any]:
    _require_active_session()
    session = get_session()
    row, token = api_tokens.create_token(session, owner=g.user, name=body["name"].strip(),
                                         lifetime=timedelta(days=body["expires_in_days"]))
    session.commit()
    # The output schema serialises; handing it already-dumped strings made this a 500.
    return {**{name: getattr(row, name) for name in ApiTokenOut().fields}, "token": token}


@bp.get("/api/tokens")
@bp.doc(summary="List your API tokens (admins: `?all=1` lists everybody's)")
@token_required
@bp.output(ApiTokenOut(many=True))
def list_api_tokens() -> Any:
    _require_active_session()
    everybody = request.args.get("all") == "1" and g.user["permission_level"] == "admin"
    return api_tokens.list_tokens(get_session(), None if everybody else g.user["sub"])


@bp.delete("/api/tokens/<int:token_id>")
@bp.doc(summary="Revoke an API token (your own; admins: anybody's)")
@token_required
@bp.output({}, status_code=204)
def revoke_api_token(token_id: int) -> Any:
    _require_active_session()
    owner = None if g.user["permission_level"] == "admin" else g.user["sub"]
    session = get_session()
    if not api_tokens.revoke_token(session, token_id, owner_sub=owner):
        raise NotFound("No such API token.")
    session.commit()
    return ""


@bp.post("/api/token/from-api-key")
@bp.doc(summary="Exchange a personal API token for a HiveMatrix JWT")
@ratelimit.limit("20 per minute")
@bp.input(ApiKeyIn, arg_name="body")
@bp.output(TokenOut)
def from_api_key(body: dict[str, str]) -> dict[str, str]:
    session = get_session()
    try:
        user = api_tokens.redeem(session, body["api_key"])
    except api_tokens.ApiTokenError as exc:
        raise Unauthorized(str(exc)) from exc
    session.commit()
    return _start_session(user)
