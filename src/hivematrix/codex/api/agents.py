"""The signed-in staff member's own Codex row and preferences (`/api/agents/me`,
`/api/my/settings`), and the gateway's read of anyone's theme and home page."""

from __future__ import annotations

from typing import Any

from apiflask import APIBlueprint
from flask import g, request

from hivematrix.codex import agents, serialise
from hivematrix.codex.api import refusals
from hivematrix.codex.schemas import AgentSettingsPatch
from hivematrix.common.auth import permission_required, service_allowed
from hivematrix.common.db import get_session
from hivematrix.common.errors import problem
from hivematrix.common.registry import discover_services

bp = APIBlueprint("codex_agents", __name__, tag="Agents")

STAFF = ("admin", "technician", "billing")
#: What the gateway may look a user up by (Nexus holds the user's token claims).
LOOKUPS = ("sub", "username", "email")


def _home_pages() -> tuple[str, ...]:
    return agents.home_pages(name for name, spec in discover_services().items()
                             if spec.visible)


def _choices() -> dict[str, list[str]]:
    return {"themes": list(agents.THEMES), "color_themes": list(agents.COLOR_THEMES),
            "knowledge_tree_views": list(agents.KNOWLEDGE_TREE_VIEWS),
            "home_pages": list(_home_pages())}


def _mine(changes: dict[str, Any] | None = None) -> Any:
    """One code path for both routes: the caller's row (created on first use), changed."""
    session = get_session()
    agent = agents.for_user(session, g.user)
    if changes:
        agents.update(agent, changes, _home_pages())
    session.commit()
    return agent


@bp.get("/api/agents/me")
@bp.doc(summary="My agent row and preferences",
        description="Staff users only, never services: the row is created from the token "
                    "on the first call. `themes`, `color_themes`, `knowledge_tree_views` and "
                    "`home_pages` list the values each preference accepts.")
@permission_required(*STAFF)
@refusals
def my_agent() -> Any:
    return {**serialise.staff_agent(_mine()), **_choices()}


@bp.patch("/api/agents/me")
@bp.doc(summary="Change my preferences",
        description="Staff users only. `theme` (light, dark, system), `color_theme`, "
                    "`knowledge_tree_view` and `home_page` (see GET for the values).")
@permission_required(*STAFF)
@bp.input(AgentSettingsPatch, location="json", arg_name="data")
@refusals
def update_my_agent(data: dict[str, Any]) -> Any:
    return {**serialise.staff_agent(_mine(data)), **_choices()}


@bp.get("/api/my/settings")
@bp.doc(summary="My display settings",
        description="Staff users only, never services: `theme`, `color_theme`, "
                    "`knowledge_tree_view`, `home_page`, and the values each accepts.")
@permission_required(*STAFF)
@refusals
def my_settings() -> Any:
    return {**agents.settings(_mine()), "source": "codex", **_choices()}


@bp.put("/api/my/settings")
@bp.doc(summary="Change my display settings",
        description="Staff users only. Any of `theme`, `color_theme`, "
                    "`knowledge_tree_view`, `home_page`; fields left out keep their value. "
                    "A value not allowed is a 400 naming the field, and nothing is saved.")
@permission_required(*STAFF)
@bp.input(AgentSettingsPatch, location="json", arg_name="data")
@refusals
def update_my_settings(data: dict[str, Any]) -> Any:
    return {**agents.settings(_mine(data)), "source": "codex", **_choices()}


def _someone() -> tuple[dict[str, str], Any]:
    """The user the gateway asks about, and their agent row (None when unknown)."""
    given = {name: request.args.get(name, "").strip() for name in LOOKUPS}
    given = {name: value for name, value in given.items() if value}
    if len(given) != 1:
        raise agents.AgentError("username", "Name the user with exactly one of sub, "
                                            "username or email.", 400)
    name, value = next(iter(given.items()))
    if len(value) > 255:
        raise agents.AgentError(name, f"{name} must be at most 255 characters.", 400)
    agent = agents.find(get_session(), **given)
    return given, agent


def _public(fields: tuple[str, ...]) -> Any:
    try:
        given, agent = _someone()
    except agents.AgentError as exc:
        return problem(400, str(exc), title="Bad query parameter",
                       errors={"query": {exc.field or "username": [str(exc)]}})
    chosen = agents.settings(agent)
    return {**given, **{name: chosen[name] for name in fields},
            "source": "default" if agent is None else "codex"}


@bp.get("/api/public/user/theme")
@bp.doc(summary="A user's theme, for the gateway",
        description="Nexus's service token only (users and other services are refused). "
                    "One of `sub`, `username` or `email`; an unknown user gets the "
                    "defaults with `source` \"default\".")
@service_allowed("nexus")
def public_theme() -> Any:
    return _public(("theme", "color_theme"))


@bp.get("/api/public/user/home-page")
@bp.doc(summary="A user's home page, for the gateway",
        description="Nexus's service token only. Same parameters and defaults as "
                    "`/api/public/user/theme`.")
@service_allowed("nexus")
def public_home_page() -> Any:
    return _public(("home_page",))
