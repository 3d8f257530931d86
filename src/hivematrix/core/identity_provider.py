"""Checking an identity provider's access token: OIDC discovery, then userinfo.

Works with any OpenID Connect provider that releases a groups claim (Keycloak, the built-in
identity service, others). TLS verification is on unless explicitly turned off.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import httpx


class IdentityProviderError(RuntimeError):
    """The provider could not be asked (down, slow, or answering nonsense)."""


class InvalidAccessToken(ValueError):
    """The provider says the access token is not valid."""


class IdentityProvider:
    """Userinfo lookups against one issuer, with its discovery document cached."""

    def __init__(self, issuer_url: str, *, verify_tls: bool = True, timeout: float = 5.0,
                 discovery_ttl: float = 3600, http: httpx.Client | None = None) -> None:
        self.issuer_url = issuer_url.rstrip("/")
        self.discovery_ttl = discovery_ttl
        self.http = http or httpx.Client(timeout=timeout, verify=verify_tls)
        self._discovery: dict[str, Any] | None = None
        self._fetched_at = 0.0
        self._lock = threading.Lock()

    def discovery(self) -> dict[str, Any]:
        """The provider's ``/.well-known/openid-configuration``.

        :raises IdentityProviderError: it cannot be fetched.
        """
        with self._lock:
            fresh = time.monotonic() - self._fetched_at < self.discovery_ttl
            if self._discovery is None or not fresh:
                url = f"{self.issuer_url}/.well-known/openid-configuration"
                try:
                    response = self.http.get(url)
                    response.raise_for_status()
                    document = response.json()
                    document["userinfo_endpoint"]
                except (httpx.HTTPError, ValueError, KeyError) as exc:
                    raise IdentityProviderError(f"discovery at {url} failed: {exc}") from exc
                self._discovery, self._fetched_at = document, time.monotonic()
            return self._discovery

    def userinfo(self, access_token: str) -> dict[str, Any]:
        """The claims the provider releases for this access token.

        :raises InvalidAccessToken: the provider rejects the token.
        :raises IdentityProviderError: the provider cannot be asked.
        """
        endpoint = self.discovery()["userinfo_endpoint"]
        try:
            response = self.http.get(endpoint, headers={"Authorization": f"Bearer {access_token}"})
        except httpx.HTTPError as exc:
            raise IdentityProviderError(f"userinfo at {endpoint} failed: {exc}") from exc
        if response.status_code in (400, 401, 403):
            raise InvalidAccessToken("the identity provider rejected the access token")
        if response.status_code != 200:
            raise IdentityProviderError(f"userinfo answered {response.status_code}")
        try:
            claims: dict[str, Any] = response.json()
        except ValueError as exc:
            raise IdentityProviderError("userinfo did not answer JSON") from exc
        if not claims.get("sub"):
            raise IdentityProviderError("userinfo did not name a subject")
        return claims
