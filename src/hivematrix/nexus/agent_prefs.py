"""The signed-in user's Codex agent settings (theme, home page), when Codex is installed.

Codex keeps each staff member's preferences in their agent row; asking for it at sign-in also
creates that row (an agent exists from their first login). Nexus asks with the user's own
token, so Codex answers for that user only, and keeps what it learnt in the browser session:
pages are never slowed by a call to Codex. A theme change made with Nexus's toggle is passed on
to Codex. Codex being down never blocks a sign-in or a page: Nexus's own store still answers.
"""

from __future__ import annotations

import logging
from typing import Any

import httpx

from hivematrix.common.registry import read_services

log = logging.getLogger("hivematrix.nexus.agent_prefs")
TIMEOUT = httpx.Timeout(3.0, connect=1.0)
PATH = "/api/agents/me"


def codex_url(services_file: str) -> str | None:
    entry = read_services(services_file).get("codex")
    if not isinstance(entry, dict) or not entry.get("url"):
        return None
    return str(entry["url"]).rstrip("/")


def fetch(services_file: str, token: str) -> dict[str, Any] | None:
    """The agent's settings from Codex (created there if new), or None when unavailable."""
    base = codex_url(services_file)
    if base is None:
        return None
    try:
        response = httpx.get(f"{base}{PATH}", headers={"Authorization": f"Bearer {token}"},
                             timeout=TIMEOUT)
    except httpx.HTTPError as exc:
        log.warning(f"Codex agent settings unavailable: {exc}")
        return None
    if response.status_code != 200:
        # 403 for client users, who are not agents: nothing to apply.
        if response.status_code != 403:
            log.warning(f"Codex answered {response.status_code} for the agent settings")
        return None
    body = response.json()
    return body if isinstance(body, dict) else None


def push_theme(services_file: str, token: str, theme: str) -> None:
    """Best effort: keep Codex's copy of the theme in step with the toggle."""
    base = codex_url(services_file)
    if base is None:
        return
    try:
        response = httpx.patch(f"{base}{PATH}", json={"theme": theme},
                               headers={"Authorization": f"Bearer {token}"}, timeout=TIMEOUT)
    except httpx.HTTPError as exc:
        log.warning(f"could not pass the theme on to Codex: {exc}")
        return
    if response.status_code not in (200, 403):
        log.warning(f"Codex answered {response.status_code} to the theme change")
