"""HTML forms → the JSON-shaped bodies Ledger's business modules take.

A form sends only strings; the modules expect what the JSON API sends (integers, booleans,
money as decimal strings, ``None`` for "not set"). The conversion is deliberately shallow: a
value that does not convert is passed on as it is, so the module's own check refuses it and
names the field, exactly as for the API. Plain functions, no Flask.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Literal

from hivematrix.ledger.errors import LedgerError
from hivematrix.ledger.inputs import RATE_NAMES
from hivematrix.ledger.models import CLIENT_FIELDS

Form = Mapping[str, str]
FieldKind = Literal["text", "int", "money", "bool"]

#: Each override kind's form fields, in the order the form shows them, and how each converts.
ROW_FIELDS: dict[str, dict[str, FieldKind]] = {
    "assets": {"asset_id": "int", "billing_type": "text", "custom_cost": "money"},
    "users": {"contact_id": "int", "billing_type": "text", "custom_cost": "money"},
    "manual-assets": {"hostname": "text", "billing_type": "text", "custom_cost": "money",
                      "notes": "text"},
    "manual-users": {"full_name": "text", "billing_type": "text", "custom_cost": "money",
                     "notes": "text"},
    "line-items": {"name": "text", "description": "text", "kind": "text", "amount": "money",
                   "start_period": "text", "end_period": "text", "one_off_period": "text",
                   "yearly_month": "int"},
    "features": {"feature_key": "text", "value": "text", "enabled": "bool"},
}
PLAN_FIELDS = ("plan_name", "term_length", "support_level", *RATE_NAMES, "features")
SCHEDULE_FIELDS = ("enabled", "day_of_month", "hour", "period", "scope", "account_numbers")
#: Fields a note may be empty in (an empty text there is "", not "not set").
KEEP_EMPTY = ("notes", "description")


def _text(form: Form, name: str) -> str | None:
    value = str(form.get(name, "")).strip()
    return value or None


def _int(form: Form, name: str) -> int | str | None:
    value = _text(form, name)
    if value is None:
        return None
    # Not a number: handed on as text, for the module's "expected an integer" naming it.
    return int(value) if re.fullmatch(r"[+-]?\d{1,12}", value) else value


def convert(form: Form, name: str, kind: FieldKind) -> Any:
    if kind == "bool":
        return form.get(name) in ("on", "true", "1")
    if kind == "int":
        return _int(form, name)
    value = _text(form, name)
    if value is None and name in KEEP_EMPTY:
        return ""
    return value


def row_body(kind: str, form: Form) -> dict[str, Any]:
    """An override row's form as the body ``overrides.create``/``update`` take."""
    return {name: convert(form, name, field) for name, field in ROW_FIELDS[kind].items()}


def client_body(form: Form) -> dict[str, Any]:
    """The client billing override form: for each field a ``<name>_enabled`` checkbox and a
    ``<name>`` value, as ``{"enabled": bool, "value": ...}``."""
    return {name: {"enabled": form.get(f"{name}_enabled") in ("on", "true", "1"),
                   "value": _text(form, name)} for name in CLIENT_FIELDS}


def parse_features(text: str) -> dict[str, str]:
    """``key: value`` (or ``key = value``), one a line; blank lines are skipped."""
    features: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        found = re.fullmatch(r"\s*([^:=]*?)\s*[:=]\s*(.*?)\s*", line)
        if found is None or not found.group(1):
            raise LedgerError(f"features: line {number} is not 'key: value'",
                              field="features")
        key, value = found.groups()
        if key in features:
            raise LedgerError(f"features: '{key}' appears twice", field="features")
        features[key] = value
    return features


def features_text(features: Mapping[str, str] | None) -> str:
    return "\n".join(f"{key}: {value}" for key, value in (features or {}).items())


def plan_body(form: Form) -> dict[str, Any]:
    """The plan form; rates left empty are 0 on a new plan (the model's default)."""
    body: dict[str, Any] = {name: _text(form, name) for name in
                            ("plan_name", "term_length", "support_level", *RATE_NAMES)}
    body["features"] = parse_features(str(form.get("features", "")))
    return {name: value for name, value in body.items() if value is not None}


def account_list(text: str) -> list[str]:
    """Account numbers separated by commas, spaces or lines, each once, in order."""
    seen: dict[str, None] = {}
    for part in re.split(r"[\s,;]+", text):
        if part:
            seen.setdefault(part, None)
    return list(seen)


def schedule_body(form: Form) -> dict[str, Any]:
    """The scheduler form: ``scope`` "all" sends ``account_numbers: None`` (every company),
    "list" the accounts typed in."""
    body: dict[str, Any] = {"enabled": form.get("enabled") in ("on", "true", "1"),
                            "day_of_month": _int(form, "day_of_month"),
                            "hour": _int(form, "hour"), "period": _text(form, "period")}
    scope = form.get("scope", "all")
    if scope == "list":
        numbers = account_list(str(form.get("account_numbers", "")))
        if not numbers:
            raise LedgerError("account_numbers: name at least one account number, or choose "
                              "every company", field="account_numbers")
        body["account_numbers"] = numbers
    elif scope == "all":
        body["account_numbers"] = None
    else:
        raise LedgerError("scope: must be all or list", field="scope")
    return {name: value for name, value in body.items()
            if value is not None or name == "account_numbers"}
