"""OpenID Connect endpoints on Keycloak's URL layout, the sign-in pages and first-admin setup.

``/realms/<realm>/.well-known/openid-configuration`` and
``/realms/<realm>/protocol/openid-connect/{auth,token,userinfo,certs,logout,revoke}``.
"""

from __future__ import annotations

import secrets
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from apiflask import APIBlueprint
from authlib.oauth2 import OAuth2Error
from flask import current_app, jsonify, render_template, request, session, url_for
from flask_wtf.csrf import CSRFError, validate_csrf
from werkzeug.exceptions import NotFound
from werkzeug.wrappers import Response
from wtforms import ValidationError

from hivematrix.common import ratelimit
from hivematrix.common.db import get_session
from hivematrix.common.errors import problem
from hivematrix.common.security import CONTENT_SECURITY_POLICY, csrf_exempt
from hivematrix.identity import accounts, bootstrap
from hivematrix.identity.lockout import LockoutPolicy, normalise
from hivematrix.identity.models import User
from hivematrix.identity.passwords import WeakPassword
from hivematrix.identity.provider import IdentityProvider, SignedIn

bp = APIBlueprint("identity", __name__, tag="OpenID Connect")

OIDC = "/realms/<realm>/protocol/openid-connect"
#: How long a correct password keeps a forced password change open.
PENDING_SECONDS = 600
PENDING_KEY = "pending_change"
INVALID_LOGIN = "Invalid username or password."


def provider(realm: str | None = None) -> IdentityProvider:
    """This app's provider; a realm other than ours is a 404, as in Keycloak."""
    found: IdentityProvider = current_app.extensions["hivematrix.identity"]
    if realm is not None and realm != found.settings.realm:
        raise NotFound(f"Realm {realm!r} does not exist.")
    return found


def _no_store(response: Response) -> Response:
    response.headers["Cache-Control"] = "no-store"
    response.headers["Pragma"] = "no-cache"
    return response


def _page(template: str, status: int = 200, **context: Any) -> Response:
    response = current_app.make_response((render_template(template, **context), status))
    return _no_store(response)


# --- discovery and keys --------------------------------------------------------------------

@bp.get("/realms/<realm>/.well-known/openid-configuration")
@bp.doc(summary="OpenID Provider Metadata")
@ratelimit.exempt
def discovery(realm: str) -> Response:
    return jsonify(provider(realm).discovery())


@bp.get(f"{OIDC}/certs")
@bp.doc(summary="The public keys that sign ID tokens (JWKS)")
@ratelimit.exempt
def certs(realm: str) -> Response:
    response = jsonify(provider(realm).jwks())
    response.headers["Cache-Control"] = "public, max-age=300"
    return response


# --- authorization endpoint and sign-in ----------------------------------------------------

def _form_action(realm: str) -> str:
    query = request.query_string.decode("latin-1")
    return url_for(".authorize", realm=realm) + (f"?{query}" if query else "")


def _allow_redirect_after_post(response: Response, grant: Any) -> Response:
    """Let the form's answer redirect to the client: browsers apply CSP ``form-action`` to
    the redirect that follows a form submission, not just to the form's own target."""
    parts = urlsplit(grant.redirect_uri or "")
    if parts.scheme in ("http", "https") and parts.netloc:
        response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY.replace(
            "form-action 'self'", f"form-action 'self' {parts.scheme}://{parts.netloc}")
    return response


def _login_page(realm: str, grant: Any, *, error: str | None = None, status: int = 200,
                username: str = "") -> Response:
    page = _page("identity/login.html", status, action=_form_action(realm), error=error,
                 username=username)
    return _allow_redirect_after_post(page, grant)


def _change_page(realm: str, grant: Any, *, error: str | None = None,
                 status: int = 200) -> Response:
    page = _page("identity/change_password.html", status, action=_form_action(realm),
                 error=error, min_length=_password_rules().min_length)
    return _allow_redirect_after_post(page, grant)


def _password_rules() -> accounts.PasswordRules:
    return accounts.PasswordRules(current_app.config["IDENTITY_PASSWORD_MIN_LENGTH"])


def _lockout_policy() -> LockoutPolicy:
    config = current_app.config
    return LockoutPolicy(threshold=config["IDENTITY_LOCKOUT_THRESHOLD"],
                         base_seconds=config["IDENTITY_LOCKOUT_SECONDS"],
                         max_seconds=config["IDENTITY_LOCKOUT_MAX_SECONDS"])


def _issue_code(found: IdentityProvider, grant: Any, signed_in: SignedIn) -> Response:
    """Redirect back to the client with a code (authlib validates the request once more)."""
    response = found.server.create_authorization_response(grant=grant, grant_user=signed_in)
    get_session().commit()
    return _no_store(response)


@bp.route(f"{OIDC}/auth", methods=["GET", "POST"])
@bp.doc(hide=True)
@ratelimit.limit("60 per minute")
def authorize(realm: str) -> Response:
    """Validate the authorization request, then sign the user in (or reuse their session)."""
    found = provider(realm)
    signed_in = found.signed_in()
    try:
        grant = found.server.get_consent_grant(end_user=signed_in)
    except OAuth2Error as error:
        if error.redirect_uri:
            return _no_store(found.error_response(error))
        # Never redirect to an unvalidated URI: show the problem instead.
        return problem(400, f"{error.error}: {error.description}",
                       title="Invalid authorization request")
    if request.method == "GET":
        if signed_in is not None and grant.prompt != "login":
            return _issue_code(found, grant, signed_in)
        return _login_page(realm, grant)
    if request.form.get("step") == "change_password":
        return _change_password(realm, found, grant)
    return _sign_in(realm, found, grant)


def _sign_in(realm: str, found: IdentityProvider, grant: Any) -> Response:
    username = request.form.get("username", "")
    password = request.form.get("password", "")
    db = get_session()
    try:
        user = accounts.authenticate(db, username, password, _lockout_policy())
    except accounts.AccountLocked as exc:
        db.commit()
        response = _login_page(realm, grant, status=429, username=username,
                               error=f"Too many attempts, try again in {exc.retry_after} s.")
        response.headers["Retry-After"] = str(exc.retry_after)
        return response
    except accounts.InvalidCredentials:
        db.commit()  # the failure counts towards the lockout
        current_app.logger.info("sign-in failed", extra={"username": normalise(username)})
        return _login_page(realm, grant, status=400, username=username, error=INVALID_LOGIN)
    if user.must_change_password:
        db.commit()
        session[PENDING_KEY] = {"uid": user.id, "stamp": user.security_stamp,
                                "at": int(time.time())}
        return _change_page(realm, grant)
    session.pop(PENDING_KEY, None)
    signed_in = found.start_browser_session(user)
    current_app.logger.info("signed in", extra={"username": user.username})
    found.housekeeping(_lockout_policy())
    return _issue_code(found, grant, signed_in)


def _pending_user() -> User | None:
    pending = session.get(PENDING_KEY)
    if not isinstance(pending, dict) or pending.get("at", 0) + PENDING_SECONDS < time.time():
        return None
    user = get_session().get(User, pending.get("uid"))
    if user is None or not user.enabled or user.security_stamp != pending.get("stamp"):
        return None
    return user


def _change_password(realm: str, found: IdentityProvider, grant: Any) -> Response:
    user = _pending_user()
    if user is None:
        session.pop(PENDING_KEY, None)
        return _login_page(realm, grant, status=400,
                           error="Your sign-in expired; sign in again to change your password.")
    new = request.form.get("new_password", "")
    if new != request.form.get("confirm_password", ""):
        return _change_page(realm, grant, status=400, error="The two passwords do not match.")
    db = get_session()
    try:
        accounts.change_own_password(db, user, new, _password_rules())
    except WeakPassword as exc:
        return _change_page(realm, grant, status=400, error=str(exc))
    if user.username == bootstrap.FIRST_ADMIN:
        bootstrap.forget_admin_password(Path(current_app.config["HIVEMATRIX_HOME"]))
    session.pop(PENDING_KEY, None)
    signed_in = found.start_browser_session(user)
    current_app.logger.info("changed password at sign-in", extra={"username": user.username})
    return _issue_code(found, grant, signed_in)


# --- token, userinfo, revocation (called by the client, not the browser) -------------------

@bp.post(f"{OIDC}/token")
@bp.doc(summary="Token endpoint",
        description="authorization_code (with PKCE code_verifier) and refresh_token grants; "
                    "client_secret_basic or client_secret_post.")
@csrf_exempt  # called with client credentials, or checks its own token
def token(realm: str) -> Response:
    response = provider(realm).server.create_token_response()
    # Commit whatever happened, failures included: a spent code stays spent.
    get_session().commit()
    return response


@bp.route(f"{OIDC}/userinfo", methods=["GET", "POST"])
@bp.doc(summary="Claims about the user of an access token")
@csrf_exempt  # called with client credentials, or checks its own token
def userinfo(realm: str) -> Response:
    return provider(realm).server.create_endpoint_response("userinfo")


@bp.post(f"{OIDC}/revoke")
@bp.doc(summary="Revoke an access or refresh token (RFC 7009)")
@csrf_exempt  # called with client credentials, or checks its own token
def revoke(realm: str) -> Response:
    response = provider(realm).server.create_endpoint_response("revocation")
    get_session().commit()
    return response


# --- RP-initiated logout -------------------------------------------------------------------

def _csrf_ok() -> bool:
    try:
        validate_csrf(request.form.get("csrf_token"))
    except (ValidationError, CSRFError):
        return False
    return True


@bp.route(f"{OIDC}/logout", methods=["GET", "POST"])
@bp.doc(hide=True)
@csrf_exempt  # called with client credentials, or checks its own token
def logout(realm: str) -> Response:
    """End the browser's session; redirect only to a URI registered for the client."""
    found = provider(realm)
    try:
        end = found.server.validate_endpoint_request("end_session")
    except OAuth2Error as error:
        return problem(400, f"{error.error}: {error.description}", title="Invalid logout request")
    if end.needs_confirmation:
        # Without an id_token_hint anyone could link here: ask the user, with a CSRF token.
        if request.method == "GET":
            return _page("identity/logout.html", action=_form_action_logout(realm))
        if not _csrf_ok():
            return problem(400, "The sign-out form has expired; open the sign-out link again.")
    response = found.server.create_endpoint_response("end_session", end)
    get_session().commit()
    if response is not None:
        return _no_store(response)
    return _page("identity/logged_out.html")


def _form_action_logout(realm: str) -> str:
    query = request.query_string.decode("latin-1")
    return url_for(".logout", realm=realm) + (f"?{query}" if query else "")


# --- first administrator with a setup token ------------------------------------------------

def _setup_token_matches(given: str) -> bool:
    expected = current_app.config.get("HIVEMATRIX_SETUP_TOKEN") or ""
    return bool(expected) and secrets.compare_digest(given.encode(), expected.encode())


@bp.route("/setup", methods=["GET", "POST"])
@bp.doc(hide=True)
@ratelimit.limit("10 per minute")
def setup() -> Response:
    """Create the first administrator; only with the setup token, and only while none exists."""
    db = get_session()
    if not current_app.config.get("HIVEMATRIX_SETUP_TOKEN") or accounts.admin_exists(db):
        raise NotFound()
    token = request.values.get("token", "")
    if not _setup_token_matches(token):
        return problem(403, "The setup token is missing or wrong.")
    if request.method == "GET":
        return _page("identity/setup.html", token=token, username=bootstrap.FIRST_ADMIN,
                     min_length=_password_rules().min_length)
    username = request.form.get("username", "").strip() or bootstrap.FIRST_ADMIN
    password = request.form.get("password", "")
    error = None
    if password != request.form.get("confirm_password", ""):
        error = "The two passwords do not match."
    else:
        try:
            accounts.create_user(db, accounts.NewUser(
                username=username, password=password, name="Administrator",
                groups=[accounts.ADMINS], must_change_password=False), _password_rules())
        except (accounts.AccountError, WeakPassword) as exc:
            error = str(exc)
    if error:
        db.rollback()
        return _page("identity/setup.html", 400, token=token, username=username, error=error,
                     min_length=_password_rules().min_length)
    db.commit()
    current_app.logger.warning("first administrator created through /setup",
                               extra={"username": username})
    return _page("identity/setup_done.html", 201, username=username.lower())
