"""The signed-in staff member's preferences (theme, colour theme, KnowledgeTree view, home
page), kept in their Codex agent row,
which is created from their token on the first visit."""

from __future__ import annotations

from typing import Any

from flask import g, redirect, request, url_for
from marshmallow import ValidationError

from hivematrix.codex import agents
from hivematrix.codex.api import refusals
from hivematrix.codex.pages.base import STAFF, bp, form_errors, render, wants
from hivematrix.codex.schemas import AgentSettingsPatch
from hivematrix.common.auth import permission_required
from hivematrix.common.db import get_session
from hivematrix.common.registry import discover_services

THEME_NAMES = {"light": "Light", "dark": "Dark", "system": "As the device is set"}
VIEW_NAMES = {"grid": "Grid of cards", "tree": "List", "hierarchy": "Hierarchy (shown as a list)"}
FIELDS = ("theme", "color_theme", "knowledge_tree_view", "home_page")


def home_pages() -> tuple[str, ...]:
    return agents.home_pages(name for name, spec in discover_services().items() if spec.visible)


def _page(agent: Any, values: dict[str, str], errors: dict[str, list[str]],
          status: int = 200) -> Any:
    values = {**{name: getattr(agent, name) for name in FIELDS}, **values}
    return render("codex/settings.html", status, agent=agent, values=values, errors=errors,
                  themes=[(theme, THEME_NAMES[theme]) for theme in agents.THEMES],
                  color_themes=agents.COLOR_THEMES,
                  views=[(value, VIEW_NAMES[value]) for value in agents.KNOWLEDGE_TREE_VIEWS],
                  home_pages=home_pages(), saved=wants("saved"))


@bp.get("/settings")
@permission_required(*STAFF)
@refusals
def settings() -> Any:
    session = get_session()
    agent = agents.for_user(session, g.user)
    session.commit()  # the row exists from now on, even before any agents sync
    return _page(agent, {name: getattr(agent, name) for name in FIELDS}, {})


@bp.post("/settings")
@permission_required(*STAFF)
@refusals
def save_settings() -> Any:
    session = get_session()
    agent = agents.for_user(session, g.user)
    # A field the form did not send keeps its value (an older form, a script posting one).
    shown = {name: request.form[name] for name in FIELDS if name in request.form}
    try:
        data = AgentSettingsPatch().load(shown)
        agents.update(agent, data, home_pages())
    except ValidationError as exc:
        session.rollback()
        return _page(agents.for_user(session, g.user), shown, form_errors(exc), 400)
    except agents.AgentError as exc:
        session.rollback()
        return _page(agents.for_user(session, g.user), shown,
                     {exc.field or "form": [str(exc)]}, exc.status)
    session.commit()
    return redirect(url_for(".settings", saved="1"), 303)
