"""What every tool module shares: calling a service as the chatting user, turning its refusals
into :class:`ToolError`, capping lists, and the JSON-schema pieces the tools are built from."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import quote

from hivematrix.brainhair.tools.base import ToolContext, ToolError
from hivematrix.common.service_client import ServiceCallError

#: Human names of the services, for the model's error messages.
NAMES = {"codex": "Codex", "ledger": "Ledger", "knowledgetree": "KnowledgeTree",
         "beacon": "Beacon", "helm": "Helm"}


def segment(value: Any) -> str:
    """One path segment, percent-encoded (an account number never becomes a path)."""
    return quote(str(value), safe="")


def _detail(response: Any) -> str:
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, Mapping):
        detail = str(body.get("detail") or body.get("title") or "")
        errors = body.get("errors")
        fields: list[str] = []
        if isinstance(errors, Mapping):
            for where in errors.values():
                if isinstance(where, Mapping):
                    fields.extend(str(name) for name in where)
        if fields and not any(name in detail for name in fields):
            detail = f"{detail} (fields: {', '.join(fields)})".strip()
        if detail:
            return detail
    text = str(getattr(response, "text", "") or "").strip()
    return text[:300] or str(getattr(response, "reason_phrase", "") or "no reason given")


def call(ctx: ToolContext, target: str, path: str, method: str = "GET", *,
         params: Mapping[str, Any] | None = None, json: Any = None) -> Any:
    """The decoded JSON answer of ``target`` (None for an empty one).

    :raises ToolError: the service refused (4xx, with its problem ``detail``), failed (5xx)
        or could not be reached.
    """
    name = NAMES.get(target, target)
    kwargs: dict[str, Any] = {}
    if params:
        kwargs["params"] = {key: value for key, value in params.items() if value is not None}
    if json is not None:
        kwargs["json"] = json
    try:
        response = ctx.services.call(target, path, method, **kwargs)
    except ServiceCallError as exc:
        raise ToolError(f"{name} is unavailable right now ({exc}); try again later.") from None
    status = response.status_code
    if 400 <= status < 500:
        raise ToolError(f"{name} refused ({status}): {_detail(response)}")
    if status >= 500:
        raise ToolError(f"{name} failed ({status}): {_detail(response)}")
    if status == 204 or not response.content:
        return None
    try:
        return response.json()
    except ValueError:
        raise ToolError(f"{name} answered something that is not JSON") from None


def capped(items: Sequence[Any], limit: int, *, total: int | None = None,
           key: str = "items") -> dict[str, Any]:
    """A list trimmed to ``limit``, saying how many there were and whether it was cut."""
    shown = list(items[:limit])
    count = len(items) if total is None else total
    result: dict[str, Any] = {key: shown, "count": count, "truncated": count > len(shown)}
    if result["truncated"]:
        result["note"] = (f"Showing {len(shown)} of {count}; narrow the search or ask for "
                          "the next page.")
    return result


def pick(item: Mapping[str, Any], names: Sequence[str]) -> dict[str, Any]:
    """Only the fields the model needs."""
    return {name: item.get(name) for name in names if name in item}


def short(text: Any, limit: int) -> Any:
    """Long text cut to ``limit`` characters, marked as cut."""
    if isinstance(text, str) and len(text) > limit:
        return text[:limit] + f"… [{len(text) - limit} more characters]"
    return text


def money(value: Any) -> str:
    """A non-negative amount as the services take it: a decimal string."""
    try:
        amount = Decimal(str(value).strip())
    except InvalidOperation:
        raise ToolError(f"{value!r} is not an amount") from None
    if not amount.is_finite() or amount < 0:
        raise ToolError(f"{value!r} is not a non-negative amount")
    return format(amount, "f")


# --- JSON-schema pieces (draft 2020-12) ----------------------------------------------------

def obj(properties: Mapping[str, Any], required: Sequence[str] = ()) -> dict[str, Any]:
    """An input object that takes only these properties."""
    schema: dict[str, Any] = {"type": "object", "properties": dict(properties),
                              "additionalProperties": False}
    if required:
        schema["required"] = list(required)
    return schema


def text(description: str, *, max_length: int = 200, min_length: int = 1,
         **extra: Any) -> dict[str, Any]:
    return {"type": "string", "description": description, "minLength": min_length,
            "maxLength": max_length, **extra}


def integer(description: str, *, minimum: int = 0, maximum: int = 1_000_000_000,
            **extra: Any) -> dict[str, Any]:
    return {"type": "integer", "description": description, "minimum": minimum,
            "maximum": maximum, **extra}


def choice(description: str, values: Sequence[str], **extra: Any) -> dict[str, Any]:
    return {"type": "string", "description": description, "enum": list(values), **extra}


ACCOUNT = text("The company's account number (as Codex lists it).", max_length=50,
               pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,49}$")
YEAR = integer("Year of the billing period (default: this month's).", minimum=1970,
               maximum=9999)
MONTH = integer("Month of the billing period, 1-12 (default: this month).", minimum=1,
                maximum=12)
AMOUNT = {"description": "A non-negative amount in dollars, e.g. \"25.00\".",
          "anyOf": [{"type": "string", "pattern": r"^\s*\d{1,9}(\.\d{1,4})?\s*$"},
                    {"type": "number", "minimum": 0, "maximum": 999_999_999}]}


def limit(default: int, maximum: int) -> dict[str, Any]:
    return integer(f"How many to return (default {default}, at most {maximum}).", minimum=1,
                   maximum=maximum)
