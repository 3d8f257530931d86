"""Parsing the fields of JSON bodies: each refusal names the field (``per_user: ...``)."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from hivematrix.ledger.errors import LedgerError
from hivematrix.ledger.inputs import InputError, Period
from hivematrix.ledger.money import CENT, MoneyError, parse_amount


def body(data: Any) -> Mapping[str, Any]:
    if not isinstance(data, Mapping):
        raise LedgerError("The body must be a JSON object.", field="body")
    return data


def text(data: Mapping[str, Any], name: str, *, required: bool = False, max_length: int = 255,
         default: str | None = None) -> str | None:
    value = data.get(name)
    if value is None or (isinstance(value, str) and not value.strip() and required):
        if required:
            raise LedgerError(f"{name}: missing", field=name)
        return default
    if not isinstance(value, str):
        raise LedgerError(f"{name}: expected a string", field=name)
    value = value.strip()
    if len(value) > max_length:
        raise LedgerError(f"{name}: longer than {max_length} characters", field=name)
    return value


def choice(data: Mapping[str, Any], name: str, options: tuple[str, ...], *,
           required: bool = False, default: str | None = None) -> str | None:
    value = text(data, name, required=required, default=default)
    if value is not None and value not in options:
        raise LedgerError(f"{name}: {value!r} is not one of {', '.join(options)}", field=name)
    return value


def money(data: Mapping[str, Any], name: str, *, required: bool = False) -> Decimal | None:
    """A non-negative amount with at most two decimals (what ``Numeric(12, 2)`` keeps);
    floats are refused, send ``"12.50"``."""
    value = data.get(name)
    if value is None:
        if required:
            raise LedgerError(f"{name}: missing", field=name)
        return None
    try:
        number = parse_amount(value, name)
    except MoneyError as exc:
        raise LedgerError(str(exc), field=name) from None
    if number != number.quantize(CENT):
        raise LedgerError(f"{name}: {value!r} has more than two decimals", field=name)
    if number >= Decimal(10) ** 10:
        raise LedgerError(f"{name}: {value!r} is too large", field=name)
    return number


def boolean(data: Mapping[str, Any], name: str, default: bool = False) -> bool:
    value = data.get(name, default)
    if not isinstance(value, bool):
        raise LedgerError(f"{name}: expected true or false", field=name)
    return value


def integer(data: Mapping[str, Any], name: str, *, minimum: int, maximum: int,
            required: bool = False) -> int | None:
    value = data.get(name)
    if value is None:
        if required:
            raise LedgerError(f"{name}: missing", field=name)
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise LedgerError(f"{name}: expected an integer", field=name)
    if not minimum <= value <= maximum:
        raise LedgerError(f"{name}: must be between {minimum} and {maximum}", field=name)
    return value


def period(data: Mapping[str, Any], name: str) -> str | None:
    """A ``"YYYY-MM"`` month, normalised."""
    value = text(data, name, max_length=7)
    if not value:
        return None
    try:
        return str(Period.parse(value))
    except InputError:
        raise LedgerError(f"{name}: {value!r} is not YYYY-MM", field=name) from None
