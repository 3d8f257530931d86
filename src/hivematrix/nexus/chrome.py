"""The parts Nexus adds to every page: stylesheet, navigation, theme, footer, and the CSP nonce."""

from __future__ import annotations

import secrets
from typing import Any

from flask import Flask, has_app_context, render_template

from hivematrix import __version__
from hivematrix.nexus.compose import Chrome
from hivematrix.nexus.directory import ServiceEntry

#: Outline icons (24 by 24, stroked) per known service; others get the generic one.
ICONS: dict[str, str] = {
    "codex": '<path d="M4 4h12a4 4 0 0 1 4 4v12H8a4 4 0 0 1-4-4z"/><path d="M8 8h8M8 12h8"/>',
    "beacon": '<circle cx="12" cy="12" r="3"/><path d="M5 5a10 10 0 0 0 0 14M19 5a10 10 0 0 1 '
              '0 14"/>',
    "ledger": '<rect x="4" y="3" width="16" height="18" rx="2"/><path d="M8 8h8M8 12h8M8 16h5"/>',
    "knowledgetree": '<circle cx="12" cy="5" r="2"/><circle cx="6" cy="19" r="2"/>'
                     '<circle cx="18" cy="19" r="2"/><path d="M12 7v5M12 12l-6 5M12 12l6 5"/>',
    "brainhair": '<path d="M12 3a6 6 0 0 0-6 6c0 2 1 3 1 5v3h10v-3c0-2 1-3 1-5a6 6 0 0 0-6-6z"/>'
                 '<path d="M9 21h6"/>',
    "helm": '<circle cx="12" cy="12" r="8"/><circle cx="12" cy="12" r="2"/>'
            '<path d="M12 2v6M12 16v6M2 12h6M16 12h6"/>',
    "template": '<rect x="4" y="4" width="16" height="16" rx="2"/><path d="M4 10h16M10 10v10"/>',
}
GENERIC_ICON = '<rect x="4" y="4" width="16" height="16" rx="3"/>'
#: Applied before first paint, so a collapsed navigation never flashes open.
PRE_PAINT_SCRIPT = ("try{if(localStorage.getItem('hm.sidebarCollapsed')==='1')"
                    "document.documentElement.classList.add('sidebar-collapsed')}catch(e){}")


def new_nonce() -> str:
    return secrets.token_urlsafe(18)


#: Stands in for the nonce in cached fragments (never valid base64url, so never real).
NONCE_MARK = "@@nonce@@"
_rendered: dict[tuple[Any, ...], tuple[str, str, str]] = {}


def render_chrome(*, nonce: str, user: dict[str, Any] | None, services: list[ServiceEntry],
                  active: str | None, theme: str, color_theme: str,
                  app: Flask | None = None) -> Chrome:
    """The fragments for one page; without a user, only the stylesheet and theme.

    The same user on the same page gets the same fragments but for the nonce, so they are
    rendered once and the nonce is put in per response. Rendering needs an app context:
    the current one, or ``app``'s.
    """
    key = (None if user is None else (user.get("sub"), user.get("name"),
                                      user.get("preferred_username"),
                                      user.get("permission_level")),
           tuple((entry.name, entry.title) for entry in services), active, theme, color_theme)
    fragments = _rendered.get(key)
    if fragments is None:
        if app is not None and not has_app_context():  # the fast lane, on a first page
            with app.app_context():
                fragments = _render(user, services, active, theme)
        else:
            fragments = _render(user, services, active, theme)
        if len(_rendered) > 4096:
            _rendered.clear()
        _rendered[key] = fragments
    head, body_start, body_end = (part.replace(NONCE_MARK, nonce) for part in fragments)
    return Chrome(theme=theme, color_theme=color_theme, head=head, body_start=body_start,
                  body_end=body_end)


def _render(user: dict[str, Any] | None, services: list[ServiceEntry], active: str | None,
            theme: str) -> tuple[str, str, str]:
    context = {"nonce": NONCE_MARK, "version": __version__, "user": user, "services": services,
               "active": active, "icons": ICONS, "generic_icon": GENERIC_ICON,
               "pre_paint": PRE_PAINT_SCRIPT, "theme": theme}
    head = render_template("nexus/chrome_head.html", **context)
    if user is None:
        return head, "", ""
    return (head, render_template("nexus/chrome_body_start.html", **context),
            render_template("nexus/chrome_body_end.html", **context))


def policy_with_nonce(policy: str | None, nonce: str, default: str) -> str:
    """The page's Content-Security-Policy, letting the injected scripts run.

    The backend's policy is kept; only its ``script-src`` gains the nonce. A policy that already
    allows inline scripts (Swagger UI at /docs) is left alone: adding a nonce would make
    browsers ignore its ``'unsafe-inline'``.
    """
    directives = [part.strip() for part in (policy or default).split(";") if part.strip()]
    for index, directive in enumerate(directives):
        name, _, value = directive.partition(" ")
        if name.lower() == "script-src":
            if "'unsafe-inline'" in value:
                return "; ".join(directives)
            directives[index] = f"{directive} 'nonce-{nonce}'"
            return "; ".join(directives)
    directives.append(f"script-src 'self' 'nonce-{nonce}'")
    return "; ".join(directives)
