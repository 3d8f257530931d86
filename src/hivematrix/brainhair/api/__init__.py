"""Brainhair's JSON API, one blueprint per area; who may call it, and shared helpers, here.

Every route is for staff users (admin, technician, billing) with their own token. Client
users get 403: the assistant's tools reach the whole MSP's data, and no tool set scoped to
one client's company exists yet. Service tokens get 403 too — chats, approvals and titles
belong to people, and a service acting "for" a user would be exactly the forgery approvals
exist to stop.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, ParamSpec, TypeVar

from flask import Blueprint, g, request
from werkzeug.wrappers import Response

from hivematrix.brainhair.errors import BrainhairError
from hivematrix.common.db import get_session
from hivematrix.common.errors import problem

P = ParamSpec("P")
R = TypeVar("R")

STAFF = ("admin", "technician", "billing")
TITLES = {400: "Bad query parameter", 403: "Forbidden", 404: "Not found", 409: "Conflict"}


def refusals(view: Callable[P, R]) -> Callable[P, R | Response]:
    """Turn :class:`BrainhairError` into a problem document naming the field."""

    @wraps(view)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R | Response:
        try:
            return view(*args, **kwargs)
        except BrainhairError as exc:
            get_session().rollback()
            extra: dict[str, Any] = {}
            if exc.field:
                location = "query" if exc.status == 400 else "json"
                extra["errors"] = {location: {exc.field: [str(exc)]}}
            return problem(exc.status, str(exc), title=TITLES.get(exc.status, "Refused"),
                           **extra)

    return wrapper


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
