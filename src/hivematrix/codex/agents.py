"""HiveMatrix staff as Codex knows them: one row per IdP user, with display preferences.

A row is created the first time a staff member calls Codex (from their token's claims), so
preferences work before any IdP sync has run; the sync later fills in everyone else.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from hivematrix.codex.companies import CompanyError
from hivematrix.codex.models import Agent

THEMES = ("light", "dark", "system")
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


def update(agent: Agent, values: Mapping[str, Any], allowed_home_pages: Iterable[str]) -> Agent:
    if "theme" in values:
        agent.theme = values["theme"]
    if "home_page" in values:
        page = str(values["home_page"]).strip().lower()
        allowed = tuple(allowed_home_pages)
        if page not in allowed:
            raise AgentError("home_page", f"'{values['home_page']}' is not a service; use one "
                                          f"of {', '.join(allowed)}.")
        agent.home_page = page
    return agent
