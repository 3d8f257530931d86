"""Nexus as an OpenID Connect relying party: authorization code flow with PKCE.

Works with the built-in identity service and with Keycloak alike: both put every endpoint under
``/realms/<realm>/``. Browsers reach the provider through Nexus's own ``/keycloak`` path (the
provider is never exposed directly); Nexus itself talks to the provider's back-channel URL.
Every back-channel call has a timeout.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx
import jwt
from authlib.common.security import generate_token
from authlib.oauth2.rfc7636 import create_s256_code_challenge

from hivematrix.common.auth import InvalidToken, JWKSCache, KeysUnavailable
from hivematrix.common.config import master_config_path

#: Where browsers find the provider on Nexus.
PUBLIC_PREFIX = "/keycloak"


class ProviderUnavailable(RuntimeError):
    """The identity provider could not be asked (down, slow, misconfigured)."""


class LoginRejected(ValueError):
    """The provider or the ID token says no (bad code, replay, forged token)."""


@dataclass(frozen=True)
class LoginRequest:
    """What the callback must find in the session: one per sign-in attempt."""

    state: str
    nonce: str
    verifier: str
    next_path: str

    @classmethod
    def new(cls, next_path: str) -> LoginRequest:
        return cls(generate_token(43), generate_token(43), generate_token(64), next_path)

    def to_dict(self) -> dict[str, str]:
        return {"state": self.state, "nonce": self.nonce, "verifier": self.verifier,
                "next": self.next_path}

    @classmethod
    def from_dict(cls, data: Any) -> LoginRequest | None:
        if not isinstance(data, dict):
            return None
        try:
            return cls(str(data["state"]), str(data["nonce"]), str(data["verifier"]),
                       str(data["next"]))
        except KeyError:
            return None


@dataclass(frozen=True)
class ProviderTokens:
    access_token: str
    refresh_token: str | None
    id_token: str | None
    expires_in: int


@dataclass(frozen=True)
class OidcSettings:
    #: The provider's origin as Nexus reaches it (``http://127.0.0.1:8080``).
    backend_url: str
    realm: str
    client_id: str
    #: Called at each use: the built-in provider writes its secret after Nexus has started.
    client_secret: Callable[[], str | None]
    verify_tls: bool = True
    timeout: float = 5.0


def realm_path(url: str) -> str:
    """``https://kc.example/realms/x/protocol/openid-connect/auth`` -> ``/realms/x/...``.

    :raises ProviderUnavailable: the URL is not under ``/realms/``.
    """
    path = urlsplit(url).path
    index = path.find("/realms/")
    if index < 0:
        raise ProviderUnavailable(f"provider endpoint {url!r} is not under /realms/")
    return path[index:]


class OidcClient:
    """The provider's discovery document, keys and endpoints, as Nexus uses them."""

    def __init__(self, settings: OidcSettings, *, http: httpx.Client | None = None,
                 discovery_ttl: float = 3600) -> None:
        self.settings = settings
        self.http = http or httpx.Client(timeout=settings.timeout, verify=settings.verify_tls)
        self.discovery_ttl = discovery_ttl
        self._discovery: dict[str, Any] | None = None
        self._fetched_at = float("-inf")
        self._lock = threading.Lock()
        self._jwks: JWKSCache | None = None

    @property
    def issuer_url(self) -> str:
        return f"{self.settings.backend_url.rstrip('/')}/realms/{self.settings.realm}"

    def discovery(self) -> dict[str, Any]:
        """:raises ProviderUnavailable: it cannot be fetched."""
        with self._lock:
            if self._discovery is None or time.monotonic() - self._fetched_at > self.discovery_ttl:
                url = f"{self.issuer_url}/.well-known/openid-configuration"
                try:
                    response = self.http.get(url)
                    response.raise_for_status()
                    document: dict[str, Any] = response.json()
                    for key in ("issuer", "authorization_endpoint", "token_endpoint",
                                "jwks_uri"):
                        document[key]
                except (httpx.HTTPError, ValueError, KeyError) as exc:
                    raise ProviderUnavailable(f"discovery at {url} failed: {exc}") from exc
                self._discovery, self._fetched_at = document, time.monotonic()
                self._jwks = JWKSCache(self.backend(document["jwks_uri"]), http=self.http)
            return self._discovery

    def backend(self, endpoint: str) -> str:
        """An endpoint of the discovery document, on the back-channel origin."""
        return self.settings.backend_url.rstrip("/") + realm_path(endpoint)

    def public(self, endpoint: str) -> str:
        """The same endpoint as browsers reach it through Nexus (a local path)."""
        return PUBLIC_PREFIX + realm_path(endpoint)

    def authorization_url(self, login: LoginRequest, redirect_uri: str) -> str:
        query = urlencode({
            "response_type": "code", "client_id": self.settings.client_id,
            "redirect_uri": redirect_uri, "scope": "openid profile email",
            "state": login.state, "nonce": login.nonce,
            "code_challenge": create_s256_code_challenge(login.verifier),
            "code_challenge_method": "S256",
        })
        return f"{self.public(self.discovery()['authorization_endpoint'])}?{query}"

    def _token_request(self, form: dict[str, str]) -> ProviderTokens:
        secret = self.settings.client_secret()
        if not secret:
            raise ProviderUnavailable("no client secret configured for the identity provider")
        endpoint = self.backend(self.discovery()["token_endpoint"])
        try:
            response = self.http.post(endpoint, data=form, auth=(self.settings.client_id, secret))
        except httpx.HTTPError as exc:
            raise ProviderUnavailable(f"token endpoint failed: {exc}") from exc
        if response.status_code in (400, 401):
            error = _json(response).get("error", "invalid_request")
            raise LoginRejected(f"the identity provider refused: {error}")
        if response.status_code != 200:
            raise ProviderUnavailable(f"token endpoint answered {response.status_code}")
        body = _json(response)
        if not body.get("access_token"):
            raise ProviderUnavailable("token endpoint answered without an access token")
        return ProviderTokens(str(body["access_token"]), body.get("refresh_token"),
                              body.get("id_token"), int(body.get("expires_in") or 0))

    def exchange_code(self, code: str, login: LoginRequest, redirect_uri: str) -> ProviderTokens:
        """Swap the code for tokens and check the ID token (signature, issuer, audience, nonce).

        :raises LoginRejected: the provider refused, or the ID token is not right.
        :raises ProviderUnavailable: the provider could not be asked.
        """
        tokens = self._token_request({"grant_type": "authorization_code", "code": code,
                                      "redirect_uri": redirect_uri,
                                      "code_verifier": login.verifier})
        if not tokens.id_token:
            raise LoginRejected("the identity provider sent no ID token")
        self.verify_id_token(tokens.id_token, nonce=login.nonce)
        return tokens

    def refresh(self, refresh_token: str) -> ProviderTokens:
        """New tokens for a refresh token (the provider rotates it)."""
        tokens = self._token_request({"grant_type": "refresh_token",
                                      "refresh_token": refresh_token})
        if tokens.id_token:
            self.verify_id_token(tokens.id_token, nonce=None)
        return tokens

    def verify_id_token(self, id_token: str, *, nonce: str | None) -> dict[str, Any]:
        """:raises LoginRejected: forged, expired, for another client, or a replayed nonce."""
        document = self.discovery()
        assert self._jwks is not None
        try:
            header = jwt.get_unverified_header(id_token)
            if header.get("alg") != "RS256" or not header.get("kid"):
                raise LoginRejected("ID token is not RS256 with a key id")
            key = self._jwks.key(str(header["kid"]))
            claims: dict[str, Any] = jwt.decode(
                id_token, key.key, algorithms=["RS256"], audience=self.settings.client_id,
                issuer=document["issuer"], leeway=30,
                options={"require": ["exp", "iat", "iss", "aud", "sub"]})
        except (jwt.PyJWTError, InvalidToken) as exc:
            raise LoginRejected(f"ID token rejected: {exc}") from exc
        except KeysUnavailable as exc:
            raise ProviderUnavailable(str(exc)) from exc
        if nonce is not None and claims.get("nonce") != nonce:
            raise LoginRejected("ID token nonce does not match this sign-in")
        return claims

    def end_session_url(self, id_token: str | None, post_logout_redirect_uri: str) -> str | None:
        """Where the browser ends its provider session (RP-initiated logout), if supported."""
        try:
            endpoint = self.discovery().get("end_session_endpoint")
        except ProviderUnavailable:
            return None
        if not endpoint:
            return None
        params = {"client_id": self.settings.client_id,
                  "post_logout_redirect_uri": post_logout_redirect_uri}
        if id_token:
            params["id_token_hint"] = id_token
        return f"{self.public(endpoint)}?{urlencode(params)}"


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def secret_from_master_config(home: Path, configured: str | None) -> Callable[[], str | None]:
    """The client secret: the setting, else the ``keycloak`` section of master_config.json."""

    def read() -> str | None:
        if configured:
            return configured
        try:
            config = json.loads(master_config_path(home).read_text())
        except (OSError, ValueError):
            return None
        secret = (config.get("keycloak") or {}).get("client_secret")
        return str(secret) if secret else None

    return read
