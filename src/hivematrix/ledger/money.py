"""Money and quantities as :class:`~decimal.Decimal`, never float.

Amounts are rounded half-up to cents once per line (:func:`cents`); everything before that is
exact. :data:`EXACT` is the context the calculation runs in: wide enough that sums, products
and byte → TB divisions never round, and it traps ``Inexact`` so an accidental rounding is an
error instead of a wrong bill.
"""

from __future__ import annotations

from decimal import (
    ROUND_HALF_UP,
    Context,
    Decimal,
    Inexact,
    InvalidOperation,
    Rounded,
)

ZERO = Decimal(0)
CENT = Decimal("0.01")
#: Bytes in one TB as backup sizes are billed (binary: 2^40).
BYTES_PER_TB = Decimal(2**40)

EXACT = Context(prec=120, rounding=ROUND_HALF_UP, traps=[InvalidOperation, Inexact, Rounded])
ROUNDING = Context(prec=120, rounding=ROUND_HALF_UP, traps=[InvalidOperation])


class MoneyError(ValueError):
    """A value that is not a usable decimal number; the message names the field."""


def cents(value: Decimal) -> Decimal:
    """``value`` rounded half-up to whole cents (2.675 → 2.68, 100.005 → 100.01)."""
    return value.quantize(CENT, context=ROUNDING)


def parse_decimal(value: object, field: str) -> Decimal:
    """A finite Decimal from a Decimal, an int or a decimal string such as ``"1.50"``.

    Floats are refused: a float has already lost the exact value a bill needs.
    """
    if isinstance(value, bool) or not isinstance(value, Decimal | int | str):
        raise MoneyError(f"{field}: expected a decimal string, got {type(value).__name__} "
                         f"{value!r}")
    try:
        number = Decimal(value.strip()) if isinstance(value, str) else Decimal(value)
    except InvalidOperation:
        raise MoneyError(f"{field}: {value!r} is not a decimal number") from None
    if not number.is_finite():
        raise MoneyError(f"{field}: {value!r} is not a finite number")
    return number


def parse_amount(value: object, field: str) -> Decimal:
    """:func:`parse_decimal` that also refuses negative values (prices, hours, TB)."""
    number = parse_decimal(value, field)
    if number < 0:
        raise MoneyError(f"{field}: {value!r} is negative")
    return number


def plain(value: Decimal) -> str:
    """A Decimal as a plain string, never in exponent notation (``1E+2`` → ``"100"``)."""
    return format(value, "f")


def money_text(value: Decimal) -> str:
    """An amount with exactly two decimals, as on an invoice."""
    return format(cents(value), "f")
