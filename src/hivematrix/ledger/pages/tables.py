"""The clients table's search, filters, sort and pages, over the dashboard's rows.

Plain functions of plain values (no Flask, no database): the page passes its query string in
and gets the rows to show back. A bad parameter is a :class:`LedgerError` naming it (400).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from hivematrix.common.paging import Pager
from hivematrix.ledger.errors import LedgerError

Row = Mapping[str, Any]
PER_PAGE = 50
MAX_PER_PAGE = 200


def _money(name: str) -> Callable[[Row], Any]:
    return lambda row: Decimal(str(row.get(name) or "0"))


def _text(name: str) -> Callable[[Row], Any]:
    return lambda row: str(row.get(name) or "").casefold()


#: Sortable columns → the key each row is ordered by (the first is the default order).
SORTS: dict[str, Callable[[Row], Any]] = {
    "name": _text("company_name"),
    "account_number": _text("account_number"),
    "plan": _text("plan_name"),
    "support_level": _text("support_level"),
    "users": lambda row: int(row.get("user_count") or 0),
    "assets": lambda row: int(row.get("asset_count") or 0),
    "hours": _money("hours"),
    "total": _money("total"),
    # No end date sorts after every date.
    "contract_end": lambda row: row.get("contract_end_date") or "9999-12-31",
}
FILTERS = ("q", "plan", "support_level", "errors")


def integer(name: str, raw: str, *, minimum: int, maximum: int | None = None) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise LedgerError(f"{name}: {raw!r} is not an integer", field=name, status=400) from None
    if value < minimum or (maximum is not None and value > maximum):
        bound = f"between {minimum} and {maximum}" if maximum is not None else f"≥ {minimum}"
        raise LedgerError(f"{name}: must be {bound}", field=name, status=400)
    return value


def select_rows(rows: Iterable[Row], *, q: str = "", plan: str = "", support_level: str = "",
                errors_only: bool = False) -> list[Row]:
    """Rows whose name or account number contains ``q`` (any case), on ``plan`` and
    ``support_level`` when given, and only bills with an error when ``errors_only``."""
    needle = q.strip().casefold()
    chosen = []
    for row in rows:
        if needle and needle not in str(row.get("company_name") or "").casefold() and (
                needle not in str(row.get("account_number") or "").casefold()):
            continue
        if plan and row.get("plan_name") != plan:
            continue
        if support_level and row.get("support_level") != support_level:
            continue
        if errors_only and not row.get("error"):
            continue
        chosen.append(row)
    return chosen


def sort_rows(rows: Iterable[Row], sort: str) -> list[Row]:
    """Ordered by ``sort`` (``-`` first for descending); ties by account number."""
    key = SORTS[sort.lstrip("-")]
    ordered = sorted(rows, key=lambda row: str(row.get("account_number") or ""))
    return sorted(ordered, key=key, reverse=sort.startswith("-"))


@dataclass(frozen=True)
class SortHeader:
    #: the ``sort`` value the column's link asks for
    target: str
    #: its ``aria-sort``: "ascending", "descending" or None
    state: str | None


class TableQuery:
    """One list page's query string (filters, sort, page), checked up front."""

    def __init__(self, args: Mapping[str, str], sorts: Sequence[str],
                 filters: Sequence[str] = FILTERS) -> None:
        self.sorts = tuple(sorts)
        self.values = {name: str(args.get(name, "")).strip() for name in filters}
        self.values = {name: value for name, value in self.values.items() if value}
        self.sort = str(args.get("sort", "")).strip() or self.sorts[0]
        if self.sort.lstrip("-") not in self.sorts:
            raise LedgerError(f"sort: must be one of {', '.join(self.sorts)} (prefix - to "
                              "reverse)", field="sort", status=400)
        self.page = integer("page", str(args.get("page", "1")), minimum=1)
        self.per_page = integer("per_page", str(args.get("per_page", PER_PAGE)), minimum=1,
                                maximum=MAX_PER_PAGE)

    def pager(self, total: int) -> Pager:
        pager = Pager(self.page, self.per_page, total)
        if self.page > pager.pages:
            raise LedgerError(f"page: must be between 1 and {pager.pages}", field="page",
                              status=400)
        return pager

    def window(self, rows: Sequence[Row]) -> tuple[Pager, Sequence[Row]]:
        pager = self.pager(len(rows))
        return pager, rows[pager.offset:pager.offset + pager.per_page]

    def link_args(self, **changes: Any) -> dict[str, Any]:
        """The current query string with ``changes`` (for sort and page links)."""
        current: dict[str, Any] = {**self.values, "sort": self.sort}
        if self.per_page != PER_PAGE:
            current["per_page"] = self.per_page
        current.update(changes)
        return {name: value for name, value in current.items() if value not in (None, "")}

    def headers(self) -> dict[str, SortHeader]:
        descending, active = self.sort.startswith("-"), self.sort.lstrip("-")
        return {key: (SortHeader(key if descending else f"-{key}",
                                 "descending" if descending else "ascending")
                      if key == active else SortHeader(key, None)) for key in self.sorts}
