"""Codex's JSON API, one module per kind of object; shared helpers here."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, ParamSpec, TypeVar

from flask import request
from werkzeug.wrappers import Response

from hivematrix.codex.companies import CompanyError
from hivematrix.codex.listing import BadQuery
from hivematrix.common.errors import problem

P = ParamSpec("P")
R = TypeVar("R")


def refusals(view: Callable[P, R]) -> Callable[P, R | Response]:
    """Turn the business modules' refusals into problem documents naming the field."""

    @wraps(view)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R | Response:
        try:
            return view(*args, **kwargs)
        except BadQuery as exc:
            return problem(400, str(exc), title="Bad query parameter",
                           errors={"query": {exc.parameter: [str(exc)]}})
        except CompanyError as exc:
            extra: dict[str, Any] = {}
            if exc.field:
                extra["errors"] = {"json": {exc.field: [str(exc)]}}
            titles = {404: "Not found", 409: "Conflict"}
            return problem(exc.status, str(exc), title=titles.get(exc.status, "Refused"),
                           **extra)

    return wrapper


def query_args() -> dict[str, str]:
    return {key: value for key, value in request.args.items()}
