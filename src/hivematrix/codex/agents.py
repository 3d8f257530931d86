"""HiveMatrix staff as Codex knows them: one row per IdP user, with display preferences.

A row is created the first time a staff member calls Codex (from their token's claims), so
preferences work before any IdP sync has run; the sync later fills in everyone else.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from hivematrix.codex.companies import CompanyError
from hivematrix.codex.models import Agent

THEMES = ("light", "dark", "system")
#: The design system's accent colours; purple is the platform's own.
COLOR_THEMES = ("purple", "blue", "green", "orange", "gold", "red", "yellow", "matrix", "bee")
DEFAULT_COLOR_THEME = "purple"
#: How KnowledgeTree lays out a folder. KnowledgeTree draws grid as cards and the other two as
#: its list (it has no separate hierarchy drawing); the values stay the platform's contract.
KNOWLEDGE_TREE_VIEWS = ("grid", "tree", "hierarchy")
DEFAULT_KNOWLEDGE_TREE_VIEW = "grid"
DEFAULT_THEME = "system"
DEFAULT_HOME_PAGE = "beacon"
#: The fields ``/api/my/settings`` and the gateway's reads carry.
SETTINGS = ("theme", "color_theme", "knowledge_tree_view", "home_page")
#: The platform's services with a page worth landing on after login; installed third-party
#: services with a page are added by :func:`home_pages`.
PLATFORM_HOME_PAGES = ("beacon", "knowledgetree", "brainhair", "codex", "ledger", "archive",
                       "helm")


class AgentError(CompanyError):
    """A refusal about an agent row (same shape as the company rules' refusals)."""


def home_pages(installed: Iterable[str] = ()) -> tuple[str, ...]:
    """Where a staff member may land: the platform's services and the installed visible ones."""
    return tuple(dict.fromkeys((*PLATFORM_HOME_PAGES, *sorted(installed))))


def _identity(claims: Mapping[str, Any]) -> dict[str, str]:
    username = str(claims.get("preferred_username") or "").strip()
    if not username:
        raise AgentError(None, "The token names no user (preferred_username is missing).", 400)
    return {"username": username[:150], "email": str(claims.get("email") or "")[:255],
            "name": str(claims.get("name") or "")[:255]}


def for_user(session: Session, claims: Mapping[str, Any]) -> Agent:
    """The signed-in user's row, created from the token on first call; name and email
    follow the IdP (the token is the freshest copy)."""
    subject = str(claims["sub"])
    identity = _identity(claims)
    agent = session.scalar(select(Agent).where(Agent.subject == subject))
    if agent is None:
        holder = session.scalar(select(Agent).where(Agent.username == identity["username"]))
        if holder is not None:
            # Another IdP account once had this user name. Taking its row over would hand
            # one person's preferences (and identity) to another; an admin must sort it out.
            raise AgentError(None, f"The user name '{identity['username']}' belongs to "
                                   "another account in Codex; ask an admin to sync the "
                                   "agents.", 409)
        agent = Agent(subject=subject, **identity)
        session.add(agent)
        try:
            session.flush()
        except IntegrityError:
            # A parallel first request created it (nothing else was written yet, so rolling
            # back loses nothing): use that one.
            session.rollback()
            agent = session.scalar(select(Agent).where(Agent.subject == subject))
            if agent is None:
                raise
        return agent
    if identity["username"] != agent.username and session.scalar(
            select(Agent.id).where(Agent.username == identity["username"])) is not None:
        identity.pop("username")  # renamed onto a name another row holds: keep the old one
    for name, value in identity.items():
        if value and getattr(agent, name) != value:
            setattr(agent, name, value)
    return agent


def _choice(field: str, value: Any, allowed: tuple[str, ...]) -> str:
    chosen = str(value).strip().lower() if isinstance(value, str) else ""
    if chosen not in allowed:
        # 422 like the schema's and home_page's refusals: one status for a value not allowed.
        raise AgentError(field, f"{field} must be one of {', '.join(allowed)}.")
    return chosen


def update(agent: Agent, values: Mapping[str, Any], allowed_home_pages: Iterable[str]) -> Agent:
    """Apply the fields present in ``values`` (a partial update). Every field is checked
    before any is set, so a refusal leaves the row as it was.

    :raises AgentError: a value is not allowed; ``field`` names it.
    """
    checked: dict[str, str] = {}
    for field, allowed in (("theme", THEMES), ("color_theme", COLOR_THEMES),
                           ("knowledge_tree_view", KNOWLEDGE_TREE_VIEWS)):
        if field in values:
            checked[field] = _choice(field, values[field], allowed)
    if "home_page" in values:
        page = str(values["home_page"]).strip().lower()
        pages = tuple(allowed_home_pages)
        if page not in pages:
            raise AgentError("home_page", f"'{values['home_page']}' is not a service; use one "
                                          f"of {', '.join(pages)}.")
        checked["home_page"] = page
    for field, value in checked.items():
        setattr(agent, field, value)
    return agent


def settings(agent: Agent | None) -> dict[str, str]:
    """The four preferences of ``agent``, or the defaults for someone Codex does not know."""
    if agent is None:
        return {"theme": DEFAULT_THEME, "color_theme": DEFAULT_COLOR_THEME,
                "knowledge_tree_view": DEFAULT_KNOWLEDGE_TREE_VIEW,
                "home_page": DEFAULT_HOME_PAGE}
    return {name: getattr(agent, name) for name in SETTINGS}


def find(session: Session, *, sub: str = "", username: str = "",
         email: str = "") -> Agent | None:
    """The agent with this IdP subject, user name or (else) e-mail address, for the gateway."""
    if sub:
        return session.scalar(select(Agent).where(Agent.subject == sub))
    if username:
        return session.scalar(select(Agent).where(Agent.username == username))
    if email:
        # E-mail is not unique in the table: an ambiguous address answers nobody.
        rows = session.scalars(select(Agent).where(
            func.lower(Agent.email) == email.lower()).limit(2)).all()
        return rows[0] if len(rows) == 1 else None
    return None
