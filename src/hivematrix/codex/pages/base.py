"""What every Codex page shares: the blueprint, who may do what, list parameters, rendering."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from apiflask import APIBlueprint
from flask import current_app, g, render_template, request
from marshmallow import ValidationError

from hivematrix.codex import access, display
from hivematrix.codex.billing_types import BadBillingMap, BillingTypeMap
from hivematrix.codex.display import sort_headers
from hivematrix.codex.listing import BadQuery, Listing, integer
from hivematrix.codex.settings import BadSetting, json_mapping
from hivematrix.common.paging import Pager

bp = APIBlueprint("codex_pages", __name__, enable_openapi=False)

#: Levels that see every company (clients see only their own).
STAFF = ("admin", "technician", "billing")
PER_PAGE = 50
MAX_PER_PAGE = 200


def level() -> str:
    return str(g.user.get("permission_level", ""))


def can_write() -> bool:
    return level() in access.WRITERS


def is_staff() -> bool:
    return level() in STAFF


def render(template: str, status: int = 200, **context: Any) -> tuple[str, int]:
    """A page, with what the navigation and the permission checks in templates need."""
    page = render_template(template, user=g.user, level=level(), can_write=can_write(),
                           is_staff=is_staff(), is_admin=level() == "admin", **context)
    return page, status


class ListPage:
    """One list page's query string: filters, search, sort and page, checked up front.

    The page speaks the API's parameters (``q``, the filters, ``sort``) plus ``page`` and
    ``per_page``; :meth:`listing_args` turns them into the API listing's ``limit``/``offset``.
    """

    def __init__(self, listing: Listing, args: Mapping[str, str], filters: Iterable[str],
                 defaults: Mapping[str, str] | None = None) -> None:
        self.listing = listing
        self.defaults = dict(defaults or {})
        self.values: dict[str, str] = dict(self.defaults)
        for name in ("q", *filters):
            raw = args.get(name, "").strip()
            if raw:
                self.values[name] = raw
        self.sort = args.get("sort", "").strip() or next(iter(listing.sorts))
        if self.sort.lstrip("-") not in listing.sorts:
            raise BadQuery("sort", f"must be one of {', '.join(listing.sorts)} (prefix - to "
                                   "reverse)")
        self.page = integer("page", args.get("page", "1"), minimum=1)
        self.per_page = integer("per_page", args.get("per_page", str(PER_PAGE)), minimum=1,
                                maximum=MAX_PER_PAGE)

    def listing_args(self, drop: Iterable[str] = ()) -> dict[str, str]:
        skipped = set(drop)
        return {**{name: value for name, value in self.values.items() if name not in skipped},
                "sort": self.sort, "limit": str(self.per_page),
                "offset": str((self.page - 1) * self.per_page)}

    def pager(self, total: int) -> Pager:
        pager = Pager(self.page, self.per_page, total)
        if self.page > pager.pages:
            raise BadQuery("page", f"must be between 1 and {pager.pages}")
        return pager

    def link_args(self, **changes: Any) -> dict[str, Any]:
        """The current query string with ``changes`` (for sort and page links)."""
        current: dict[str, Any] = {**self.values, "sort": self.sort}
        if self.per_page != PER_PAGE:
            current["per_page"] = self.per_page
        current.update(changes)
        return {name: value for name, value in current.items()
                if value not in (None, "") and value != self.defaults.get(name)}

    def headers(self) -> Any:
        return sort_headers(list(self.listing.sorts), self.sort)


def form_errors(exc: ValidationError) -> dict[str, list[str]]:
    """Marshmallow's messages as field → list of messages (nested fields joined by dots)."""
    flat: dict[str, list[str]] = {}

    def walk(prefix: str, messages: Any) -> None:
        if isinstance(messages, dict):
            for key, value in messages.items():
                walk(f"{prefix}.{key}" if prefix else str(key), value)
        elif isinstance(messages, list):
            if all(isinstance(item, str) for item in messages):
                flat.setdefault(prefix, []).extend(messages)
            else:
                for item in messages:
                    walk(prefix, item)
        else:
            flat.setdefault(prefix, []).append(str(messages))

    walk("", exc.messages)
    return flat


def billing_map() -> BillingTypeMap:
    """The configured category → billing type map (a broken setting is a 503 naming it)."""
    from hivematrix.codex.assets import AssetError

    try:
        return BillingTypeMap.from_config(json_mapping(current_app.config,
                                                       "CODEX_BILLING_TYPE_MAP"))
    except (BadSetting, BadBillingMap) as exc:
        raise AssetError(None, f"Codex is misconfigured: {exc}", 503) from None


def wants(name: str) -> bool:
    """A yes/no flag in the query string (``?saved=1``) for a notice after a redirect."""
    return request.args.get(name) == "1"



@bp.record_once
def _display_helpers(state: Any) -> None:
    # Globals rather than context: macros imported without context use them too.
    state.app.jinja_env.globals.update(
        ticket_status=display.ticket_status, ticket_priority=display.ticket_priority,
        warranty_badges=display.WARRANTY_BADGES, job_badges=display.JOB_BADGES)
    state.app.jinja_env.filters["human_bytes"] = display.human_bytes
