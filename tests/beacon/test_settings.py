"""BEACON_VIEWS and the other settings: what is accepted, and errors that say what is wrong."""

from __future__ import annotations

from typing import Any

import pytest

from hivematrix.beacon import create_app
from hivematrix.beacon.settings import DEFAULTS, load, parse_views
from hivematrix.common.config import SettingsError


def test_the_defaults_are_helpdesk_for_everything_and_an_empty_professional_services() -> None:
    views = parse_views(DEFAULTS["BEACON_VIEWS"])
    assert [(view.slug, view.name, view.others, view.group_ids) for view in views] == [
        ("helpdesk", "Helpdesk", True, frozenset()),
        ("professional-services", "Professional Services", False, frozenset())]


def test_views_keep_their_order_and_take_numeric_or_text_group_ids() -> None:
    views = parse_views('{"projects": {"name": " Projects ", "group_ids": [21000188002, "x7"]},'
                        ' "desk": {"name": "Desk", "others": true}}')
    assert [view.slug for view in views] == ["projects", "desk"]
    assert views[0].name == "Projects" and views[0].group_ids == {"21000188002", "x7"}


@pytest.mark.parametrize(("raw", "message"), [
    ("{nope", "not valid JSON"),
    ("[]", "must be a JSON object with at least one view"),
    ("{}", "must be a JSON object with at least one view"),
    ('{"Help Desk": {"name": "x"}}', "'Help Desk': the slug must be"),
    ('{"api": {"name": "x"}}', "view 'api': the slug is reserved"),
    ('{"a": "Helpdesk"}', "view 'a': must be an object"),
    ('{"a": {"group_ids": []}}', "view 'a': name must be text"),
    ('{"a": {"name": ""}}', "view 'a': name must be text"),
    ('{"a": {"name": "A", "group_ids": "12"}}', "view 'a': group_ids must be a list"),
    ('{"a": {"name": "A", "group_ids": [true]}}', "view 'a': group_ids: True is not"),
    ('{"a": {"name": "A", "group_ids": [{"id": 1}]}}', "view 'a': group_ids:"),
    ('{"a": {"name": "A", "others": "yes"}}', "view 'a': others must be true or false"),
    ('{"a": {"name": "A", "groups": [1]}}', "view 'a': unknown key groups"),
    ('{"a": {"name": "A", "others": true}, "b": {"name": "B", "others": true}}',
     "only one view may have others: true (found a, b)"),
    ('{"a": {"name": "A", "group_ids": [5]}, "b": {"name": "B", "group_ids": ["5"]}}',
     "group id 5 is in two views (a and b)"),
])
def test_bad_views_are_refused_with_the_reason(raw: str, message: str) -> None:
    with pytest.raises(SettingsError) as refused:
        parse_views(raw)
    assert str(refused.value).startswith("setting BEACON_VIEWS: ")
    assert message in str(refused.value)


@pytest.mark.parametrize(("key", "value"), [
    ("BEACON_REFRESH_SECONDS", 0), ("BEACON_REFRESH_SECONDS", "soon"),
    ("BEACON_REFRESH_SECONDS", 3601), ("BEACON_STALE_SYNC_MINUTES", -1),
    ("BEACON_CODEX_CACHE_SECONDS", -5),
])
def test_bad_numbers_are_refused_naming_the_setting(key: str, value: Any) -> None:
    with pytest.raises(SettingsError, match=key):
        load({**DEFAULTS, key: value})


def test_the_app_does_not_start_with_broken_views(service_settings: dict[str, Any]) -> None:
    with pytest.raises(SettingsError, match="BEACON_VIEWS"):
        create_app({**service_settings, "BEACON_VIEWS": '{"a": {}}'})
    app = create_app({**service_settings, "BEACON_REFRESH_SECONDS": "5"})
    assert app.extensions["beacon.settings"].refresh_seconds == 5
