"""Filtering, sorting and paging a list endpoint from its query string.

Each endpoint declares which columns may be filtered and sorted; anything else is refused
with a 400 naming the parameter (never silently ignored, never a raw column name from the
user in SQL).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Select, func, or_, select
from sqlalchemy.orm import Session

DEFAULT_LIMIT = 50
MAX_LIMIT = 500
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


class BadQuery(ValueError):
    def __init__(self, parameter: str, message: str) -> None:
        super().__init__(f"{parameter}: {message}")
        self.parameter = parameter


def boolean(parameter: str, raw: str) -> bool:
    text = raw.strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise BadQuery(parameter, "must be true or false")


def integer(parameter: str, raw: str, *, minimum: int = 0, maximum: int | None = None) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise BadQuery(parameter, "must be a whole number") from None
    if value < minimum or (maximum is not None and value > maximum):
        bound = f"between {minimum} and {maximum}" if maximum is not None else f">= {minimum}"
        raise BadQuery(parameter, f"must be {bound}")
    return value


@dataclass(frozen=True)
class Listing:
    """What one list endpoint allows."""

    #: sort key → column; the first is the default.
    sorts: Mapping[str, Any]
    #: filter parameter → function(query, raw value) → query.
    filters: Mapping[str, Callable[[Select[Any], str], Select[Any]]] = field(
        default_factory=dict)
    #: columns searched (case-insensitive substring) by ``q``.
    search: tuple[Any, ...] = ()

    def apply(self, query: Select[Any], args: Mapping[str, str]) -> tuple[Select[Any], int, int]:
        """The filtered, sorted query and the page (limit, offset) asked for."""
        for name, raw in args.items():
            if name in self.filters:
                query = self.filters[name](query, raw)
        term = args.get("q", "").strip()
        if term and self.search:
            pattern = f"%{term.lower()}%"
            query = query.where(or_(*(func.lower(column).like(pattern)
                                      for column in self.search)))
        sort = args.get("sort", next(iter(self.sorts)))
        descending = sort.startswith("-")
        key = sort.lstrip("-")
        if key not in self.sorts:
            raise BadQuery("sort", f"must be one of {', '.join(self.sorts)} (prefix - to "
                                   "reverse)")
        column = self.sorts[key]
        query = query.order_by(column.desc() if descending else column.asc())
        limit = integer("limit", args.get("limit", str(DEFAULT_LIMIT)), minimum=1,
                        maximum=MAX_LIMIT)
        offset = integer("offset", args.get("offset", "0"))
        return query, limit, offset


def page(session: Session, listing: Listing, query: Select[Any], args: Mapping[str, str],
         serialise: Callable[[Any], dict[str, Any]], tiebreak: Any) -> dict[str, Any]:
    """Run a list query: ``items``, ``total``, ``limit``, ``offset``."""
    query, limit, offset = listing.apply(query, args)
    total = session.scalar(select(func.count()).select_from(
        query.order_by(None).subquery())) or 0
    rows = session.scalars(query.order_by(tiebreak).limit(limit).offset(offset))
    return {"items": [serialise(row) for row in rows], "total": total, "limit": limit,
            "offset": offset}
