"""Verifying HiveMatrix JWTs and guarding views by caller.

Core signs user tokens (``aud=hivematrix``) and service tokens (``type=service``,
``aud=<target service>``) with RS256; every service verifies them locally against Core's JWKS.
Routes declare who may call them:

- ``@token_required``: any signed-in user;
- ``@permission_required("admin", "billing")`` / ``@admin_required``: users at those levels;
- ``@service_allowed("ledger")``: service tokens from the named callers;
- ``@any_service_allowed``: service tokens from every caller (the view reads ``g.service``).

The decorators stack, so ``@token_required`` over ``@service_allowed("helm")`` admits users and
Helm. A service token is never treated as a user: a route admits services only by name.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import wraps
from typing import Any, ParamSpec, TypeVar

import httpx
import jwt
from flask import current_app, g, request
from werkzeug.exceptions import Forbidden, ServiceUnavailable, Unauthorized

PERMISSION_LEVELS = ("admin", "technician", "billing", "client")
USER_AUDIENCE = "hivematrix"
ALGORITHMS = ["RS256"]

P = ParamSpec("P")
R = TypeVar("R")


class InvalidToken(Exception):
    """The bearer token cannot be accepted; the message says why (safe to show)."""


class KeysUnavailable(Exception):
    """Core's JWKS cannot be fetched and no cached copy exists."""


@dataclass(frozen=True)
class Principal:
    """Who is calling: a user (``claims`` of a user token) or another service."""

    claims: dict[str, Any]

    @property
    def is_service(self) -> bool:
        return self.claims.get("type") == "service"

    @property
    def service(self) -> str | None:
        """The calling service's name, for service tokens."""
        return str(self.claims["calling_service"]) if self.is_service else None

    @property
    def subject(self) -> str:
        return str(self.claims["sub"])

    @property
    def permission_level(self) -> str | None:
        return None if self.is_service else self.claims.get("permission_level")


class JWKSCache:
    """Core's public keys, fetched over HTTP and cached.

    An unknown ``kid`` triggers a refetch (keys rotate), but at most once per
    ``min_refresh_interval`` so that tokens with random ``kid`` values cannot turn every
    request into a call to Core. When Core is unreachable the last good key set is kept.
    """

    def __init__(self, url: str, *, max_age: float = 300, min_refresh_interval: float = 10,
                 timeout: float = 5.0, http: httpx.Client | None = None) -> None:
        self.url = url
        self.max_age = max_age
        self.min_refresh_interval = min_refresh_interval
        self._http = http or httpx.Client(timeout=timeout)
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at = float("-inf")
        self._lock = threading.Lock()

    def _refresh(self) -> None:
        self._fetched_at = time.monotonic()
        try:
            response = self._http.get(self.url)
            response.raise_for_status()
            keyset = jwt.PyJWKSet.from_dict(response.json())
        except (httpx.HTTPError, ValueError, jwt.PyJWKSetError) as exc:
            if not self._keys:
                raise KeysUnavailable(f"cannot load signing keys from {self.url}: {exc}") from exc
            return
        self._keys = {key.key_id: key for key in keyset.keys if key.key_id}

    def key(self, kid: str) -> jwt.PyJWK:
        """Return the public key with this ``kid``.

        :raises InvalidToken: no such key, even after a refetch.
        :raises KeysUnavailable: the JWKS cannot be fetched and nothing is cached.
        """
        with self._lock:
            age = time.monotonic() - self._fetched_at
            if age > self.max_age or (kid not in self._keys and age > self.min_refresh_interval):
                self._refresh()
            found = self._keys.get(kid)
            if not self._keys:
                # The last fetch failed and the retry is throttled: still Core's fault, not the
                # token's, so the caller must not be told to throw its token away.
                raise KeysUnavailable(f"no signing keys loaded from {self.url} yet")
        if found is None:
            raise InvalidToken("token signed with an unknown key")
        return found


class TokenVerifier:
    """Checks signature, issuer, expiry and audience of HiveMatrix tokens for one service."""

    def __init__(self, *, jwks: JWKSCache, service_name: str, issuer: str = "hivematrix-core",
                 leeway: int = 30) -> None:
        self.jwks = jwks
        self.service_name = service_name
        self.issuer = issuer
        self.leeway = leeway
        self._verified: dict[str, Principal] = {}

    #: Verified tokens remembered at most (each until it expires).
    CACHE_SIZE = 10_000

    def verify(self, token: str) -> Principal:
        """Return the caller a token stands for.

        A token verified before is answered from memory until it expires: the same bytes
        verify the same way, and an RS256 check costs more than the rest of a request.

        :raises InvalidToken: the token is malformed, forged, expired or not meant for us.
        :raises KeysUnavailable: Core's keys cannot be fetched.
        """
        cached = self._verified.get(token)
        if cached is not None:
            if cached.claims["exp"] + self.leeway > time.time():
                return cached
            self._verified.pop(token, None)
        principal = self._verify(token)
        if len(self._verified) >= self.CACHE_SIZE:
            self._verified.clear()  # simple and rare: a full cache refills from live traffic
        self._verified[token] = principal
        return principal

    def _verify(self, token: str) -> Principal:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise InvalidToken("malformed token") from exc
        if header.get("alg") not in ALGORITHMS:
            raise InvalidToken("token algorithm not accepted")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise InvalidToken("token has no key id")
        key = self.jwks.key(kid)
        try:
            claims = jwt.decode(
                token, key=key.key, algorithms=ALGORITHMS, issuer=self.issuer,
                audience=[USER_AUDIENCE, self.service_name], leeway=self.leeway,
                options={"require": ["exp", "iat", "iss", "aud", "sub"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise InvalidToken("token has expired") from exc
        except jwt.InvalidAudienceError as exc:
            raise InvalidToken("token is not meant for this service") from exc
        except jwt.InvalidIssuerError as exc:
            raise InvalidToken("token has the wrong issuer") from exc
        except jwt.PyJWTError as exc:
            raise InvalidToken(f"invalid token: {exc}") from exc
        return self._principal(claims)

    def _principal(self, claims: dict[str, Any]) -> Principal:
        audience = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
        if claims.get("type") == "service":
            # A service token is good for exactly one receiver: the one it names.
            if audience != [self.service_name] or claims.get("target_service") != self.service_name:
                raise InvalidToken("service token is not meant for this service")
            if not claims.get("calling_service"):
                raise InvalidToken("service token names no caller")
        elif USER_AUDIENCE not in audience:
            raise InvalidToken("token is not meant for this service")
        return Principal(claims)


def _verifier() -> TokenVerifier:
    verifier: TokenVerifier = current_app.extensions["hivematrix.auth"]
    return verifier


def bearer_token() -> str | None:
    """The token from ``Authorization: Bearer``; cookies are never read."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip() or None


def _authenticate() -> Principal | None:
    token = bearer_token()
    if token is None:
        return None
    try:
        return _verifier().verify(token)
    except InvalidToken as exc:
        raise Unauthorized(str(exc), www_authenticate=_challenge("invalid_token")) from exc
    except KeysUnavailable as exc:
        raise ServiceUnavailable("Token verification is unavailable; retry shortly.") from exc


def current_principal() -> Principal | None:
    """Verify the request's token (once per request); ``None`` when no token was sent.

    Sets ``g.user`` (user claims), ``g.service`` (calling service) and ``g.is_service_call``.

    :raises Unauthorized: the token is invalid.
    :raises ServiceUnavailable: Core's keys cannot be fetched.
    """
    if "principal_error" in g:
        raise g.principal_error
    if "principal" not in g:
        try:
            principal = _authenticate()
        except (Unauthorized, ServiceUnavailable) as exc:
            g.principal_error = exc
            raise
        g.principal = principal
        g.user = None if principal is None or principal.is_service else principal.claims
        g.service = principal.service if principal else None
        g.is_service_call = bool(principal and principal.is_service)
    result: Principal | None = g.principal
    return result


def _challenge(error: str | None = None) -> Any:
    from werkzeug.datastructures import WWWAuthenticate

    params: dict[str, str | None] = {"realm": "hivematrix"}
    if error:
        params["error"] = error
    return WWWAuthenticate("bearer", params)


@dataclass
class AccessRule:
    """Who may call one view; built up by the stacked decorators."""

    any_user: bool = False
    levels: set[str] | None = None
    services: set[str] = field(default_factory=set)
    any_service: bool = False

    def admits_users(self) -> bool:
        return self.any_user or self.levels is not None

    def check(self, principal: Principal) -> None:
        """:raises Forbidden: the caller is authenticated but not admitted."""
        if principal.is_service:
            if not self.any_service and principal.service not in self.services:
                raise Forbidden(f"Service '{principal.service}' may not call this endpoint.")
            return
        if not self.admits_users():
            raise Forbidden("This endpoint is for services only.")
        if self.levels is not None and principal.permission_level not in self.levels:
            wanted = ", ".join(sorted(self.levels))
            raise Forbidden(f"This requires permission level: {wanted}.")


def _guarded(view: Callable[P, R], change: Callable[[AccessRule], None]) -> Callable[P, R]:
    """Wrap ``view`` once with the access check, or amend the rule of an existing wrapper."""
    existing: AccessRule | None = getattr(view, "__access_rule__", None)
    if existing is not None:
        change(existing)
        return view
    rule = AccessRule()
    change(rule)

    @wraps(view)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        principal = current_principal()
        if principal is None:
            raise Unauthorized("A bearer token is required.", www_authenticate=_challenge())
        rule.check(principal)
        return view(*args, **kwargs)

    wrapper.__access_rule__ = rule  # type: ignore[attr-defined]
    return wrapper


def token_required(view: Callable[P, R]) -> Callable[P, R]:
    """Admit any signed-in user (and services named by ``service_allowed``)."""

    def admit_all(rule: AccessRule) -> None:
        rule.any_user = True

    return _guarded(view, admit_all)


def permission_required(*levels: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Admit users whose ``permission_level`` is one of ``levels``."""
    unknown = set(levels) - set(PERMISSION_LEVELS)
    if unknown or not levels:
        raise ValueError(f"unknown permission levels: {sorted(unknown) or 'none given'}")

    def restrict(rule: AccessRule) -> None:
        rule.levels = set(levels) if rule.levels is None else rule.levels & set(levels)

    def decorator(view: Callable[P, R]) -> Callable[P, R]:
        return _guarded(view, restrict)

    return decorator


def admin_required(view: Callable[P, R]) -> Callable[P, R]:
    """Admit admins only. Service tokens are not admins."""
    return permission_required("admin")(view)


def service_allowed(*callers: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Admit service tokens whose ``calling_service`` is one of ``callers``."""
    if not callers:
        raise ValueError("service_allowed needs at least one caller")

    def admit(rule: AccessRule) -> None:
        rule.services.update(callers)

    def decorator(view: Callable[P, R]) -> Callable[P, R]:
        return _guarded(view, admit)

    return decorator


def any_service_allowed(view: Callable[P, R]) -> Callable[P, R]:
    """Admit service tokens from every calling service (never users, unless stacked).

    For endpoints every service uses, such as log ingestion; the view must take the caller's
    identity from ``g.service``, never from the request.
    """

    def admit(rule: AccessRule) -> None:
        rule.any_service = True

    return _guarded(view, admit)


def init_app(app: Any, *, http: httpx.Client | None = None) -> TokenVerifier:
    """Create the app's token verifier from its settings."""
    core_url = app.config["CORE_SERVICE_URL"].rstrip("/")
    jwks = JWKSCache(f"{core_url}/.well-known/jwks.json", max_age=app.config["JWKS_CACHE_SECONDS"],
                     http=http)
    verifier = TokenVerifier(jwks=jwks, service_name=app.config["SERVICE_NAME"],
                             issuer=app.config["JWT_ISSUER"], leeway=app.config["JWT_LEEWAY"])
    app.extensions["hivematrix.auth"] = verifier
    app.security_schemes = {"BearerAuth": {"type": "http", "scheme": "bearer",
                                           "bearerFormat": "JWT"}}
    return verifier


def document_security(app: Any) -> None:
    """Mark every guarded view as needing a bearer token in the OpenAPI spec.

    Done once all views are registered: apiflask's ``@doc`` would overwrite an annotation
    made earlier by the decorators.
    """
    for view in app.view_functions.values():
        if getattr(view, "__access_rule__", None) is None:
            continue
        spec = view.__dict__.setdefault("_spec", {})
        if not spec.get("security"):
            spec["security"] = "BearerAuth"
