"""`/api/agents/me`: the signed-in staff member's own Codex row and preferences."""

from __future__ import annotations

from typing import Any

from apiflask import APIBlueprint
from flask import g

from hivematrix.codex import agents, serialise
from hivematrix.codex.api import refusals
from hivematrix.codex.schemas import AgentSettingsPatch
from hivematrix.common.auth import permission_required
from hivematrix.common.db import get_session
from hivematrix.common.registry import discover_services

bp = APIBlueprint("codex_agents", __name__, tag="Agents")

STAFF = ("admin", "technician", "billing")


def _home_pages() -> tuple[str, ...]:
    return agents.home_pages(name for name, spec in discover_services().items()
                             if spec.visible)


@bp.get("/api/agents/me")
@bp.doc(summary="My agent row and preferences",
        description="Staff users only, never services: the row is created from the token "
                    "on the first call. `home_pages` lists the values `home_page` accepts.")
@permission_required(*STAFF)
@refusals
def my_agent() -> Any:
    session = get_session()
    agent = agents.for_user(session, g.user)
    session.commit()
    return {**serialise.staff_agent(agent), "themes": list(agents.THEMES),
            "home_pages": list(_home_pages())}


@bp.patch("/api/agents/me")
@bp.doc(summary="Change my preferences",
        description="Staff users only. `theme` (light, dark, system) and `home_page` (a "
                    "service, see GET).")
@permission_required(*STAFF)
@bp.input(AgentSettingsPatch, location="json", arg_name="data")
@refusals
def update_my_agent(data: dict[str, Any]) -> Any:
    session = get_session()
    agent = agents.update(agents.for_user(session, g.user), data, _home_pages())
    session.commit()
    return {**serialise.staff_agent(agent), "themes": list(agents.THEMES),
            "home_pages": list(_home_pages())}
