"""Nexus's own pages: sign-in, callback, sign-out, the home redirect, preferences, design."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from apiflask import APIBlueprint
from apiflask.fields import Integer, String
from apiflask.validators import Length, OneOf
from flask import current_app, g, redirect, render_template, request, session, url_for
from sqlalchemy import select
from werkzeug.wrappers import Response

from hivematrix.common import ratelimit
from hivematrix.common.db import get_session
from hivematrix.common.errors import problem
from hivematrix.nexus import agent_prefs, display, sessions, signin
from hivematrix.nexus.compose import COLOR_THEMES, THEMES
from hivematrix.nexus.core_client import CoreUnavailable, ExchangeRefused
from hivematrix.nexus.models import DisplayLink, Preference
from hivematrix.nexus.oidc import LoginRejected, LoginRequest, ProviderUnavailable
from hivematrix.nexus.sessions import rotate

bp = APIBlueprint("nexus", __name__, tag="Gateway")

DEFAULT_PREFS = {"theme": "light", "color_theme": "purple"}
#: Session key of the home page the user chose in Codex's settings.
HOME_PAGE = "nexus.home_page"


def safe_next(value: str | None) -> str:
    """Only a local path may follow sign-in: no scheme, no host, no ``//`` or ``/\\`` tricks."""
    if not value or not value.startswith("/") or value.startswith(("//", "/\\")):
        return "/"
    if any(ord(ch) < 32 for ch in value) or "\\" in value:
        return "/"
    parts = urlsplit(value)
    if parts.scheme or parts.netloc:
        return "/"
    return value


def redirect_uri() -> str:
    public = current_app.config["NEXUS_PUBLIC_URL"]
    if public:
        return f"{public.rstrip('/')}/keycloak-callback"
    return url_for("nexus.callback", _external=True)


def site_root() -> str:
    public = current_app.config["NEXUS_PUBLIC_URL"]
    return f"{public.rstrip('/')}/" if public else url_for("nexus.home", _external=True)


@bp.get("/")
@bp.doc(hide=True)
def home() -> Response:
    """The user's home service, or sign-in."""
    user = g.get("nexus_user")
    if user is None:
        return redirect(url_for("nexus.login"))
    directory = current_app.extensions["nexus.directory"]
    # The Codex agent's home page when Codex told us one, else the platform's default.
    target = directory.home(user.claims.get("permission_level"),
                            session.get(HOME_PAGE) or current_app.config["NEXUS_HOME_SERVICE"]
                            or None)
    if target is None:
        return problem(404, "No service is available to you yet.", title="Nothing here yet")
    return redirect(f"/{target}/")


@bp.get("/login")
@bp.doc(hide=True)
@ratelimit.limit(lambda: current_app.config["NEXUS_LOGIN_RATE_LIMIT"])
def login() -> Response:
    """Start the authorization code flow (PKCE, state and nonce kept server-side)."""
    oidc = signin.services().oidc
    login_request = LoginRequest.new(safe_next(request.args.get("next")))
    try:
        target = oidc.authorization_url(login_request, redirect_uri())
    except ProviderUnavailable as exc:
        current_app.logger.error(f"sign-in unavailable: {exc}")
        return problem(503, "The identity provider cannot be reached; try again shortly.",
                       title="Sign-in unavailable", headers={"Retry-After": "10"})
    session[signin.LOGIN] = login_request.to_dict()
    return redirect(target)


@bp.get("/keycloak-callback")
@bp.doc(hide=True)
@ratelimit.limit(lambda: current_app.config["NEXUS_LOGIN_RATE_LIMIT"])
def callback() -> Response:
    """Finish sign-in: check state, swap the code, check the ID token, get a HiveMatrix JWT."""
    login_request = LoginRequest.from_dict(session.pop(signin.LOGIN, None))
    if request.args.get("error"):
        # Shown escaped by the error page; never reflected raw.
        return problem(401, f"The identity provider refused the sign-in "
                            f"({request.args['error'][:100]}).", title="Sign-in failed")
    code, state = request.args.get("code"), request.args.get("state")
    if login_request is None or not code or state != login_request.state:
        return problem(400, "This sign-in link is stale or was not started here; "
                            "please sign in again.", title="Sign-in failed")
    found = signin.services()
    try:
        tokens = found.oidc.exchange_code(code, login_request, redirect_uri())
        hivematrix_token = found.core.exchange(tokens.access_token, request.remote_addr)
        principal = found.verifier.verify(hivematrix_token)
    except (LoginRejected, ExchangeRefused) as exc:
        current_app.logger.warning(f"sign-in rejected: {exc}")
        return problem(401, "The sign-in could not be verified; please sign in again.",
                       title="Sign-in failed")
    except (ProviderUnavailable, CoreUnavailable) as exc:
        current_app.logger.error(f"sign-in failed: {exc}")
        return problem(503, "Sign-in is unavailable right now; try again shortly.",
                       title="Sign-in unavailable", headers={"Retry-After": "10"})
    session.clear()
    rotate(sessions.current())  # a new session id once signed in (no fixation)
    signin.store_sign_in(hivematrix_token, tokens)
    _adopt_agent_settings(hivematrix_token, principal.subject)
    return redirect(login_request.next_path)


def _adopt_agent_settings(token: str, subject: str) -> None:
    """Take the user's Codex agent settings into the session (and so create their agent)."""
    agent = agent_prefs.fetch(current_app.config["SERVICES_FILE"], token)
    if agent is None:
        return
    if isinstance(agent.get("home_page"), str):
        session[HOME_PAGE] = agent["home_page"]
    if agent.get("theme") in THEMES:  # "system" leaves Nexus's own choice as it is
        session[signin.PREFS] = {"sub": subject, **preferences_for(subject),
                                 "theme": agent["theme"]}


@bp.get("/logout")
@bp.doc(hide=True)
def logout() -> Response:
    """Revoke at Core, end the provider's session, forget this browser's session."""
    found = signin.services()
    token, id_token = session.get(signin.JWT), session.get(signin.ID_TOKEN)
    if token:
        found.core.revoke(token)
    signin.sign_out_locally()
    landing = found.oidc.end_session_url(id_token, f"{site_root()}logged-out")
    response = redirect(landing or url_for("nexus.logged_out"))
    response.headers["Clear-Site-Data"] = '"cache", "storage"'
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/logged-out")
@bp.doc(hide=True)
def logged_out() -> Response:
    response = current_app.make_response(render_template("nexus/logged_out.html"))
    response.headers["Clear-Site-Data"] = '"cache", "storage"'
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/nexus/design")
@bp.doc(hide=True)
def design() -> str:
    return render_template("nexus/design.html")


# --- preferences ---------------------------------------------------------------------------

def preferences_for(subject: str) -> dict[str, str]:
    """The user's theme, cached in their session (read once per sign-in)."""
    cached = session.get(signin.PREFS)
    if isinstance(cached, dict) and cached.get("sub") == subject:
        return {"theme": cached["theme"], "color_theme": cached["color_theme"]}
    row = get_session().get(Preference, subject)
    prefs = ({"theme": row.theme, "color_theme": row.color_theme} if row
             else dict(DEFAULT_PREFS))
    session[signin.PREFS] = {"sub": subject, **prefs}
    return prefs


def signed_in(*, admin: bool = False) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Nexus's own APIs: a signed-in browser (an admin's, with ``admin``).

    Placed above ``@bp.input`` so strangers hear 401 (and non-admins 403) before any field
    is checked. The view gets the user as ``user``.
    """

    def decorator(view: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            user = g.get("nexus_user")
            if user is None:
                return problem(401, "Sign in first.")
            if admin and user.claims.get("permission_level") != "admin":
                return problem(403, "This requires permission level: admin.")
            return view(*args, user=user, **kwargs)

        return wrapper

    return decorator


@bp.get("/nexus/api/preferences")
@bp.doc(summary="The signed-in user's theme and colour theme")
@signed_in()
def get_preferences(user: signin.SignedIn) -> Any:
    return preferences_for(str(user.claims["sub"]))


@bp.put("/nexus/api/preferences")
@bp.doc(summary="Change the signed-in user's theme or colour theme")
@signed_in()
@bp.input({"theme": String(validate=OneOf(THEMES)),
           "color_theme": String(validate=OneOf(COLOR_THEMES))}, location="json", arg_name="data")
def put_preferences(data: dict[str, str], user: signin.SignedIn) -> Any:
    subject = str(user.claims["sub"])
    prefs = {**preferences_for(subject), **data}
    db = get_session()
    row = db.get(Preference, subject) or Preference(subject=subject)
    row.theme, row.color_theme = prefs["theme"], prefs["color_theme"]
    db.add(row)
    db.commit()
    session[signin.PREFS] = {"sub": subject, **prefs}
    token = session.get(signin.JWT)
    if "theme" in data and token:
        agent_prefs.push_theme(current_app.config["SERVICES_FILE"], str(token), data["theme"])
    return prefs


# --- display links (wall screens) ----------------------------------------------------------

def _link_json(link: DisplayLink, token: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": link.id, "name": link.name, "path": link.path, "created_by": link.created_by,
        "created_at": link.created_at.isoformat(),
        "expires_at": link.expires_at.isoformat() if link.expires_at else None,
        "revoked": link.revoked_at is not None}
    if token:
        body["url"] = f"{site_root().rstrip('/')}{link.path}?{display.TOKEN_PARAM}={token}"
    return body


@bp.get("/nexus/api/display-links")
@bp.doc(summary="Display links for wall screens (admins)")
@signed_in(admin=True)
def list_display_links(user: signin.SignedIn) -> Any:
    links = get_session().scalars(select(DisplayLink).order_by(DisplayLink.id))
    return {"links": [_link_json(link) for link in links]}


@bp.post("/nexus/api/display-links")
@bp.doc(summary="Create a display link; its URL (with the token) is shown only now")
@signed_in(admin=True)
@bp.input({"name": String(required=True, validate=Length(1, 100)),
           "path": String(required=True, validate=Length(1, 300)),
           "days": Integer(load_default=None, allow_none=True)},
          location="json", arg_name="data")
def create_display_link(data: dict[str, Any], user: signin.SignedIn) -> Any:
    db = get_session()
    try:
        created = display.create(
            db, name=data["name"], path=data["path"],
            created_by=str(user.claims.get("preferred_username") or user.claims["sub"]),
            prefixes=display.allowed_prefixes(current_app.config["NEXUS_DISPLAY_PATHS"]),
            days=data["days"])
    except display.DisplayLinkError as exc:
        field, _, message = str(exc).partition(": ")
        db.rollback()
        return problem(422, str(exc), errors={"json": {field: [message]}})
    db.commit()
    return _link_json(created.link, created.token), 201


@bp.delete("/nexus/api/display-links/<int:link_id>")
@bp.doc(summary="Revoke a display link at once")
@signed_in(admin=True)
def revoke_display_link(link_id: int, user: signin.SignedIn) -> Any:
    db = get_session()
    link = display.revoke(db, link_id)
    if link is None:
        return problem(404, f"There is no display link {link_id}.")
    db.commit()
    return "", 204
