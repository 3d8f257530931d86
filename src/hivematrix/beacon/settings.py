"""Beacon's settings: which views the wall has, how often it refreshes.

``BEACON_VIEWS`` is a JSON object, slug → ``{"name": ..., "group_ids": [...]}``. A view shows
the tickets of its PSA groups; the one view marked ``"others": true`` also shows every ticket
that no other view claims (and tickets without a group). The defaults are upstream's two
walls: Helpdesk (everything else) and Professional Services (no groups until configured).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from hivematrix.common.config import SettingsError

DEFAULT_VIEWS: dict[str, dict[str, Any]] = {
    "helpdesk": {"name": "Helpdesk", "group_ids": [], "others": True},
    "professional-services": {"name": "Professional Services", "group_ids": []},
}

DEFAULTS: dict[str, Any] = {
    "BEACON_VIEWS": json.dumps(DEFAULT_VIEWS),
    # How often the wall asks for fresh data (seconds).
    "BEACON_REFRESH_SECONDS": 60,
    # Codex's "last synced" time older than this turns the indicator amber.
    "BEACON_STALE_SYNC_MINUTES": 15,
    # PSA agents and the ticket link template change rarely: kept this long, per process.
    "BEACON_CODEX_CACHE_SECONDS": 60.0,
}

#: Paths the app uses itself; a view may not take them.
RESERVED_SLUGS = frozenset({"api", "display", "static", "health", "metrics", "docs"})
_SLUG = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,38}[a-z0-9])?")
MAX_NAME = 80


@dataclass(frozen=True)
class View:
    """One wall: a name and the PSA groups whose tickets it shows."""

    slug: str
    name: str
    group_ids: frozenset[str]
    #: Also shows the tickets no other view claims.
    others: bool = False


@dataclass(frozen=True)
class BeaconSettings:
    views: tuple[View, ...]
    refresh_seconds: int
    stale_sync_minutes: int

    def view(self, slug: str) -> View | None:
        return next((view for view in self.views if view.slug == slug), None)

    @property
    def first(self) -> View:
        return self.views[0]


def _problem(message: str) -> SettingsError:
    return SettingsError(f"setting BEACON_VIEWS: {message}")


def _group_ids(slug: str, raw: Any) -> frozenset[str]:
    if raw is None:
        return frozenset()
    if not isinstance(raw, list):
        raise _problem(f"view '{slug}': group_ids must be a list of PSA group ids")
    found: set[str] = set()
    for item in raw:
        # JSON numbers and strings are both ids; a PSA's group id is compared as text.
        if isinstance(item, bool) or not isinstance(item, int | str) or not str(item).strip():
            raise _problem(f"view '{slug}': group_ids: {item!r} is not a group id")
        found.add(str(item).strip())
    return frozenset(found)


def _view(slug: Any, raw: Any) -> View:
    if not isinstance(slug, str) or not _SLUG.fullmatch(slug):
        raise _problem(f"view {slug!r}: the slug must be 1-40 lowercase letters, digits and "
                       "dashes (not starting or ending with a dash)")
    if slug in RESERVED_SLUGS:
        raise _problem(f"view '{slug}': the slug is reserved "
                       f"({', '.join(sorted(RESERVED_SLUGS))})")
    if not isinstance(raw, dict):
        raise _problem(f"view '{slug}': must be an object with name and group_ids")
    unknown = sorted(set(raw) - {"name", "group_ids", "others"})
    if unknown:
        raise _problem(f"view '{slug}': unknown key{'s' if len(unknown) > 1 else ''} "
                       f"{', '.join(unknown)} (expected name, group_ids, others)")
    name = raw.get("name")
    if not isinstance(name, str) or not name.strip() or len(name.strip()) > MAX_NAME:
        raise _problem(f"view '{slug}': name must be text of 1 to {MAX_NAME} characters")
    others = raw.get("others", False)
    if not isinstance(others, bool):
        raise _problem(f"view '{slug}': others must be true or false")
    return View(slug=slug, name=name.strip(), group_ids=_group_ids(slug, raw.get("group_ids")),
                others=others)


def parse_views(raw: Any) -> tuple[View, ...]:
    """The configured views, in their configured order.

    :raises SettingsError: the value is not a usable set of views; the message says why.
    """
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise _problem(f"not valid JSON ({exc.msg} at position {exc.pos})") from None
    if not isinstance(raw, dict) or not raw:
        raise _problem("must be a JSON object with at least one view")
    views = tuple(_view(slug, value) for slug, value in raw.items())
    catch_all = [view.slug for view in views if view.others]
    if len(catch_all) > 1:
        raise _problem(f"only one view may have others: true (found {', '.join(catch_all)})")
    owners: dict[str, str] = {}
    for view in views:
        for group in sorted(view.group_ids):
            if group in owners:
                raise _problem(f"group id {group} is in two views ({owners[group]} and "
                               f"{view.slug}); a ticket belongs to one view")
            owners[group] = view.slug
    return views


def _whole_number(config: Mapping[str, Any], key: str, low: int, high: int) -> int:
    raw = config.get(key)
    value: int | None = None
    if isinstance(raw, int) and not isinstance(raw, bool):
        value = raw
    elif isinstance(raw, str) and raw.strip().lstrip("-").isdigit():
        value = int(raw)
    if value is None or not low <= value <= high:
        raise SettingsError(f"setting {key}: {raw!r} must be a whole number from {low} to {high}")
    return value


def load(config: Mapping[str, Any]) -> BeaconSettings:
    """Beacon's settings from the app's config, checked.

    :raises SettingsError: a setting cannot be used; the message names it.
    """
    cache = config.get("BEACON_CODEX_CACHE_SECONDS")
    if isinstance(cache, bool) or not isinstance(cache, int | float) or cache < 0:
        raise SettingsError(f"setting BEACON_CODEX_CACHE_SECONDS: {cache!r} must be a number "
                            "of seconds, 0 or more")
    return BeaconSettings(
        views=parse_views(config.get("BEACON_VIEWS")),
        refresh_seconds=_whole_number(config, "BEACON_REFRESH_SECONDS", 1, 3600),
        stale_sync_minutes=_whole_number(config, "BEACON_STALE_SYNC_MINUTES", 1, 10080),
    )
