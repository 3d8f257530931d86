"""Brainhair's JSON API, one blueprint per area; who may call it, and shared helpers, here.

Every route is for staff users (admin, technician, billing) with their own token. Client
users get 403: the assistant's tools reach the whole MSP's data, and no tool set scoped to
one client's company exists yet. Service tokens get 403 too — chats, approvals and titles
belong to people, and a service acting "for" a user would be exactly the forgery approvals
exist to stop.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, g, request

from hivematrix.brainhair.errors import BrainhairError
from hivematrix.common.errors import refusals_for

STAFF = ("admin", "technician", "billing")


#: Brainhair's refusals as problem documents naming the field.
refusals = refusals_for(BrainhairError)


def current_user() -> dict[str, Any]:
    user: dict[str, Any] = getattr(g, "user", None) or {}
    return user


def query_int(name: str, default: int, minimum: int, maximum: int) -> int:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BrainhairError(f"{name}: {raw!r} is not an integer", field=name,
                             status=400) from None
    if not minimum <= value <= maximum:
        raise BrainhairError(f"{name}: must be between {minimum} and {maximum}", field=name,
                             status=400)
    return value


def json_body() -> Any:
    return request.get_json(silent=True)


def blueprints() -> list[Blueprint]:
    from hivematrix.brainhair.api.approvals import bp as approvals
    from hivematrix.brainhair.api.chat import bp as chat
    from hivematrix.brainhair.api.sessions import bp as sessions
    from hivematrix.brainhair.pages import bp as pages

    return [chat, sessions, approvals, pages]
