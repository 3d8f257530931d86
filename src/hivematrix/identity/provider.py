"""The OpenID Connect provider: authlib's authorization server wired to this service's models.

One :class:`IdentityProvider` per app (in ``app.extensions``), built by ``create_app``; nothing
here is bound to an app at import time. The pieces:

- authorization code grant with PKCE (S256 only, always required) and OpenID Connect
  (ID tokens, nonce, ``prompt``);
- refresh token grant with rotation and replay detection;
- userinfo (opaque bearer tokens looked up in the database), revocation (RFC 7009) and
  RP-initiated logout.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from typing import Any

from authlib.integrations.flask_oauth2 import AuthorizationServer, ResourceProtector
from authlib.oauth2 import OAuth2Error, OAuth2Request
from authlib.oauth2.rfc6749 import InvalidRequestError, grants
from authlib.oauth2.rfc6750 import BearerTokenGenerator, BearerTokenValidator, InvalidTokenError
from authlib.oauth2.rfc7009 import RevocationEndpoint
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oidc.core import UserInfo, UserInfoEndpoint
from authlib.oidc.core.grants import OpenIDCode, OpenIDToken
from authlib.oidc.core.util import create_half_hash
from authlib.oidc.rpinitiated import EndSessionEndpoint, EndSessionRequest
from flask import request, session
from joserfc.jwk import RSAKey
from sqlalchemy import select

from hivematrix.common.db import get_session
from hivematrix.common.keys import SigningKey, jwks_document
from hivematrix.identity import grants as issued
from hivematrix.identity import lockout
from hivematrix.identity.lockout import LockoutPolicy
from hivematrix.identity.models import AuthorizationCode, OAuthClient, Token, User, digest

CLIENT_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]
#: RFC 7009 ``token_type_hint`` values.
ACCESS_HINT, REFRESH_HINT = "access_token", "refresh_token"
#: Seconds between clean-ups of stale codes, tokens and login records.
PURGE_INTERVAL = 3600
#: The Flask session key of a signed-in browser.
SSO_KEY = "sso"


@dataclass(frozen=True)
class ProviderSettings:
    realm: str
    #: Fixed issuer (``IDENTITY_ISSUER``); ``None`` derives it from the request's host.
    issuer: str | None
    access_token_seconds: int
    session_max_seconds: int


@dataclass(frozen=True)
class SignedIn:
    """A user with the browser session that authenticated them (becomes the code's owner)."""

    user: User
    sid: str
    auth_time: int

    def get_user_id(self) -> int:
        return self.user.id


def user_claims(user: User) -> dict[str, Any]:
    """The claims released about a user, in userinfo and in ID tokens alike."""
    claims: dict[str, Any] = {
        "sub": user.subject,
        "name": user.name or user.username,
        "preferred_username": user.username,
        "groups": user.group_names,
    }
    if user.email:
        claims["email"] = user.email
    if user.account_number:
        claims["account_number"] = user.account_number
    return claims


# --- grants --------------------------------------------------------------------------------

class RequiredPKCE(CodeChallenge):
    """PKCE for every client, confidential ones included, and only with S256."""

    SUPPORTED_CODE_CHALLENGE_METHOD = ["S256"]
    DEFAULT_CODE_CHALLENGE_METHOD = "S256"

    def validate_code_challenge(self, grant: Any, redirect_uri: str) -> None:
        data = grant.request.payload.data
        if not data.get("code_challenge"):
            raise InvalidRequestError("Missing 'code_challenge': PKCE with S256 is required.")
        if data.get("code_challenge_method") != "S256":
            raise InvalidRequestError("'code_challenge_method' must be S256.")
        super().validate_code_challenge(grant, redirect_uri)


class CodeGrant(grants.AuthorizationCodeGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = CLIENT_AUTH_METHODS

    @staticmethod
    def validate_authorization_redirect_uri(request: OAuth2Request, client: Any) -> str:
        # OpenID Connect requires redirect_uri; the message never echoes it back.
        redirect_uri = request.payload.redirect_uri
        if not redirect_uri:
            raise InvalidRequestError("Missing 'redirect_uri' in request.")
        if not client.check_redirect_uri(redirect_uri):
            raise InvalidRequestError("The 'redirect_uri' is not registered for this client.")
        return str(redirect_uri)

    def save_authorization_code(self, code: str, request: OAuth2Request) -> None:
        signed_in: SignedIn = request.user
        payload = request.payload
        get_session().add(AuthorizationCode(
            code=digest(code), client_id=request.client.client_id,
            redirect_uri=payload.redirect_uri, response_type=payload.response_type,
            scope=request.scope, nonce=payload.data.get("nonce"),
            auth_time=signed_in.auth_time, code_challenge=payload.data.get("code_challenge"),
            code_challenge_method=payload.data.get("code_challenge_method"),
            user_id=signed_in.user.id, sid=signed_in.sid))
        get_session().flush()

    def query_authorization_code(self, code: str, client: OAuthClient) -> AuthorizationCode | None:
        return issued.claim_code(get_session(), code, client.client_id)

    def delete_authorization_code(self, authorization_code: AuthorizationCode) -> None:
        """Spent codes are kept (marked used) so that a replay revokes its tokens."""

    def authenticate_user(self, authorization_code: AuthorizationCode) -> User | None:
        user = authorization_code.user
        return user if user.enabled else None


class RefreshGrant(grants.RefreshTokenGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = CLIENT_AUTH_METHODS
    INCLUDE_NEW_REFRESH_TOKEN = True

    def authenticate_refresh_token(self, refresh_token: str) -> Token | None:
        token = issued.claim_refresh_token(get_session(), refresh_token,
                                           self.request.client.client_id)
        if token is None or not token.user.enabled:
            return None
        provider: IdentityProvider = self.server.provider
        if token.auth_time + provider.settings.session_max_seconds < time.time():
            return None
        return token

    def authenticate_user(self, refresh_token: Token) -> User | None:
        return refresh_token.user if refresh_token.user.enabled else None

    def revoke_old_credential(self, refresh_token: Token) -> None:
        """Already spent by :meth:`authenticate_refresh_token`."""


class _IDTokens:
    """Shared by the code and refresh extensions: our own ID token encoder."""

    provider: IdentityProvider

    def encode_id_token(self, token: dict[str, Any], request: OAuth2Request) -> str:
        return self.provider.id_token(token, request)

    def generate_user_info(self, user: User, scope: str) -> UserInfo:
        return UserInfo(user_claims(user))


class OpenIDCodeExtension(_IDTokens, OpenIDCode):
    def __init__(self, provider: IdentityProvider) -> None:
        super().__init__(require_nonce=False)
        self.provider = provider

    def exists_nonce(self, nonce: str, request: OAuth2Request) -> bool:
        query = select(AuthorizationCode.id).where(
            AuthorizationCode.client_id == request.payload.client_id,
            AuthorizationCode.nonce == nonce).limit(1)
        return get_session().scalar(query) is not None


class OpenIDRefreshExtension(_IDTokens, OpenIDToken):
    """A fresh ID token with every refresh, as Keycloak does."""

    def __init__(self, provider: IdentityProvider) -> None:
        self.provider = provider


# --- endpoints -----------------------------------------------------------------------------

class TokenValidator(BearerTokenValidator):
    def authenticate_token(self, token_string: str) -> Token | None:
        return issued.find_access_token(get_session(), token_string)

    def validate_token(self, token: Token | None, scopes: Any, request: Any) -> None:
        super().validate_token(token, scopes, request)
        assert token is not None
        if not token.user.enabled:
            raise InvalidTokenError(realm=self.realm)


class UserInfoView(UserInfoEndpoint):
    def __init__(self, provider: IdentityProvider, protector: ResourceProtector) -> None:
        super().__init__(resource_protector=protector)
        self.provider = provider

    def generate_user_info(self, user: User, scope: str) -> UserInfo:
        return UserInfo(user_claims(user))

    def get_issuer(self) -> str:
        return self.provider.issuer()

    def resolve_private_key(self) -> RSAKey:
        return self.provider.jwk

    def get_supported_algorithms(self) -> list[str]:
        return ["RS256"]


class Revocation(RevocationEndpoint):
    CLIENT_AUTH_METHODS = CLIENT_AUTH_METHODS

    def query_token(self, token_string: str, token_type_hint: str | None) -> Token | None:
        db = get_session()
        if token_type_hint == REFRESH_HINT:
            return issued.find_refresh_token(db, token_string)
        found = issued.find_access_token(db, token_string)
        if found is None and token_type_hint != ACCESS_HINT:
            found = issued.find_refresh_token(db, token_string)
        return found

    def revoke_token(self, token: Token, request: OAuth2Request) -> None:
        if token.refresh_token and token.refresh_token == digest(request.form["token"]):
            issued.revoke(get_session(), family=token.family)  # the whole session's chain
        else:
            token.access_token_revoked_at = int(time.time())


class EndSession(EndSessionEndpoint):
    def __init__(self, provider: IdentityProvider) -> None:
        super().__init__()
        self.provider = provider

    def get_server_jwks(self) -> dict[str, Any]:
        return self.provider.jwks()

    def get_algorithms(self) -> list[str]:
        return ["RS256"]

    def end_session(self, end_session_request: EndSessionRequest) -> None:
        claims = end_session_request.id_token_claims or {}
        self.provider.end_browser_session(extra_sid=claims.get("sid"))


class Server(AuthorizationServer):
    """authlib's Flask authorization server for one app."""

    def __init__(self, provider: IdentityProvider) -> None:
        super().__init__()
        self.provider = provider

    def get_authorization_grant(self, request: OAuth2Request) -> Any:
        try:
            return super().get_authorization_grant(request)
        except ValueError as exc:
            # authlib echoes the response_type into its error text and refuses characters
            # such as '"' there; answer without echoing (and without redirecting).
            raise InvalidRequestError("Unsupported 'response_type'.") from exc

    def query_client(self, client_id: str) -> OAuthClient | None:
        if not client_id:
            return None
        return get_session().scalar(select(OAuthClient).where(OAuthClient.client_id == client_id))

    def save_token(self, token: dict[str, Any], request: OAuth2Request) -> None:
        origin: AuthorizationCode | Token = request.authorization_code or request.refresh_token
        refresh = token.get("refresh_token")
        get_session().add(Token(
            client_id=request.client.client_id, user_id=request.user.id, sid=origin.sid,
            family=origin.family, auth_time=origin.auth_time,
            token_type=token["token_type"], access_token=digest(token["access_token"]),
            refresh_token=digest(refresh) if refresh else None, scope=token.get("scope", ""),
            issued_at=int(time.time()), expires_in=int(token.get("expires_in", 0))))
        get_session().flush()


# --- the provider --------------------------------------------------------------------------

class IdentityProvider:
    """Everything OIDC for one app: key, settings, authlib server and resource protector."""

    def __init__(self, key: SigningKey, settings: ProviderSettings) -> None:
        self.key = key
        self.settings = settings
        self._last_purge = float("-inf")
        self.jwk = RSAKey.import_key(key.private_pem(), {"kid": key.kid, "use": "sig",
                                                         "alg": "RS256"})
        self.server = Server(self)
        self.server.register_token_generator("default", BearerTokenGenerator(
            access_token_generator=lambda **_: secrets.token_urlsafe(32),
            refresh_token_generator=lambda **_: secrets.token_urlsafe(48),
            expires_generator=lambda client, grant_type: settings.access_token_seconds))
        self.server.register_grant(CodeGrant, [RequiredPKCE(required=True),
                                               OpenIDCodeExtension(self)])
        self.server.register_grant(RefreshGrant, [OpenIDRefreshExtension(self)])
        self.protector = ResourceProtector()
        self.protector.register_token_validator(TokenValidator())
        self.server.register_endpoint(UserInfoView(self, self.protector))
        self.server.register_endpoint(Revocation)
        self.server.register_endpoint(EndSession(self))

    # issuer and keys

    def issuer(self) -> str:
        """``IDENTITY_ISSUER``, or ``<base URL of this request>/realms/<realm>``."""
        if self.settings.issuer:
            return self.settings.issuer.rstrip("/")
        return f"{request.url_root.rstrip('/')}/realms/{self.settings.realm}"

    def jwks(self) -> dict[str, Any]:
        return jwks_document([self.key])

    def endpoint(self, name: str) -> str:
        return f"{self.issuer()}/protocol/openid-connect/{name}"

    def discovery(self) -> dict[str, Any]:
        """The OpenID Provider Metadata (Keycloak's layout of endpoints)."""
        return {
            "issuer": self.issuer(),
            "authorization_endpoint": self.endpoint("auth"),
            "token_endpoint": self.endpoint("token"),
            "userinfo_endpoint": self.endpoint("userinfo"),
            "jwks_uri": self.endpoint("certs"),
            "end_session_endpoint": self.endpoint("logout"),
            "revocation_endpoint": self.endpoint("revoke"),
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "grant_types_supported": ["authorization_code", "refresh_token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "scopes_supported": ["openid", "profile", "email"],
            "token_endpoint_auth_methods_supported": CLIENT_AUTH_METHODS,
            "revocation_endpoint_auth_methods_supported": CLIENT_AUTH_METHODS,
            "code_challenge_methods_supported": ["S256"],
            "claims_supported": ["iss", "sub", "aud", "exp", "iat", "auth_time", "nonce", "sid",
                                 "name", "preferred_username", "email", "groups",
                                 "account_number"],
            "request_parameter_supported": False,
            "frontchannel_logout_supported": False,
            "backchannel_logout_supported": False,
        }

    def id_token(self, token: dict[str, Any], request: OAuth2Request) -> str:
        """An RS256 ID token for the code or refresh exchange in ``request``."""
        origin: AuthorizationCode | Token = request.authorization_code or request.refresh_token
        client_id = request.client.client_id
        now = int(time.time())
        claims: dict[str, Any] = {
            **user_claims(request.user),
            "iss": self.issuer(), "aud": client_id, "azp": client_id, "iat": now,
            "exp": now + self.settings.access_token_seconds, "auth_time": origin.auth_time,
            "sid": origin.sid, "typ": "ID",
        }
        nonce = getattr(request.authorization_code, "nonce", None)
        if nonce:
            claims["nonce"] = nonce
        at_hash = create_half_hash(token["access_token"], "RS256")
        if at_hash is not None:
            claims["at_hash"] = at_hash.decode("ascii")
        return self.key.sign(claims, headers={"typ": "JWT"})

    # browser sessions

    def signed_in(self) -> SignedIn | None:
        """The browser's signed-in user, if the session is still valid."""
        state = session.get(SSO_KEY)
        if not isinstance(state, dict):
            return None
        user = get_session().get(User, state.get("uid"))
        if (user is None or not user.enabled or user.security_stamp != state.get("stamp")
                or state.get("auth_time", 0) + self.settings.session_max_seconds < time.time()):
            session.pop(SSO_KEY, None)
            return None
        return SignedIn(user, str(state["sid"]), int(state["auth_time"]))

    def start_browser_session(self, user: User) -> SignedIn:
        signed_in = SignedIn(user, secrets.token_urlsafe(24), int(time.time()))
        session[SSO_KEY] = {"uid": user.id, "stamp": user.security_stamp,
                            "sid": signed_in.sid, "auth_time": signed_in.auth_time}
        return signed_in

    def end_browser_session(self, extra_sid: str | None = None) -> None:
        """Sign the browser out and revoke the tokens of its session (and of ``extra_sid``)."""
        state = session.get(SSO_KEY)
        sids = {extra_sid, state.get("sid") if isinstance(state, dict) else None} - {None}
        for sid in sids:
            issued.revoke(get_session(), sid=sid)
        session.clear()

    def housekeeping(self, policy: LockoutPolicy) -> None:
        """Delete stale codes, tokens and login records, at most once an hour per process."""
        now = time.monotonic()
        if now - self._last_purge < PURGE_INTERVAL:
            return
        self._last_purge = now
        issued.purge(get_session(), session_max_seconds=self.settings.session_max_seconds)
        lockout.purge(get_session(), policy)

    def error_response(self, error: OAuth2Error) -> Any:
        """authlib's response for an error (a redirect only to a validated redirect URI)."""
        return self.server.handle_error_response(None, error)
