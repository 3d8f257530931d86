"""Properties that hold for any bill: random companies, plans and overrides (Hypothesis)."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from hivematrix.ledger.calculation import Receipt, calculate
from hivematrix.ledger.inputs import (
    ASSET_TYPES,
    LINE_ITEM_KINDS,
    RATE_NAMES,
    USER_TYPES,
    AssetOverride,
    ClientOverride,
    CodexAsset,
    CodexContact,
    CodexTicket,
    CompanyData,
    CustomLineItem,
    ManualAsset,
    ManualUser,
    Overrides,
    Period,
    Plan,
    Rates,
    TimeEntry,
    Toggle,
    UserOverride,
)
from hivematrix.ledger.invoice import qbo_csv
from hivematrix.ledger.money import cents

TODAY = datetime(2026, 6, 1, tzinfo=UTC).date()

money = st.decimals(min_value=0, max_value=5000, places=3, allow_nan=False,
                    allow_infinity=False)
hours = st.decimals(min_value=0, max_value=40, places=2, allow_nan=False,
                    allow_infinity=False)
moments = st.datetimes(min_value=datetime(2025, 11, 1), max_value=datetime(2027, 2, 1),
                       timezones=st.just(UTC))
asset_types = st.sampled_from((*ASSET_TYPES, "No Charge", "Tablet", ""))
rates = st.builds(Rates, **{name: money for name in RATE_NAMES})
periods = st.builds(Period, st.integers(2025, 2027), st.integers(1, 12))


def _some(draw: st.DrawFn, ids: list[int]) -> list[int]:
    return [number for number in ids if draw(st.booleans())]


@st.composite
def overrides_for(draw: st.DrawFn, asset_ids: list[int], contact_ids: list[int]) -> Overrides:
    toggles = {name: draw(st.one_of(st.just(Toggle[Decimal]()), money.map(Toggle.on)))
               for name in RATE_NAMES}
    client = ClientOverride(
        support_level=draw(st.sampled_from([Toggle[str](), Toggle.on("All Inclusive"),
                                            Toggle.on("Billed Hourly")])), **toggles)
    assets = [AssetOverride(asset_id, kind, draw(money) if kind == "Custom" else None)
              for asset_id in _some(draw, asset_ids)
              for kind in [draw(st.sampled_from((*ASSET_TYPES, "Custom", "No Charge")))]]
    users = [UserOverride(contact_id, kind, draw(money) if kind == "Custom" else None)
             for contact_id in _some(draw, contact_ids)
             for kind in [draw(st.sampled_from(USER_TYPES))]]
    manual_assets = [ManualAsset(number, f"M{number}", kind,
                                 draw(money) if kind == "Custom" else None)
                     for number, kind in enumerate(draw(st.lists(
                         st.sampled_from((*ASSET_TYPES, "Custom", "Gadget")), max_size=3)))]
    manual_users = [ManualUser(number, f"U{number}", kind,
                               draw(money) if kind == "Custom" else None)
                    for number, kind in enumerate(draw(st.lists(st.sampled_from(USER_TYPES),
                                                                max_size=3)))]
    items = []
    for number, kind in enumerate(draw(st.lists(st.sampled_from(LINE_ITEM_KINDS),
                                                max_size=4))):
        start, end = sorted(draw(st.lists(periods, min_size=2, max_size=2)))
        items.append(CustomLineItem(
            number, f"Item {number}", kind, draw(money),
            start=draw(st.one_of(st.none(), st.just(start))),
            end=draw(st.one_of(st.none(), st.just(end))),
            one_off=draw(periods) if kind == "one_off" else None,
            yearly_month=draw(st.integers(1, 12)) if kind == "yearly" else None))
    return Overrides(client=draw(st.one_of(st.none(), st.just(client))), assets=assets,
                     users=users, manual_assets=manual_assets, manual_users=manual_users,
                     line_items=items)


@st.composite
def tickets(draw: st.DrawFn) -> list[CodexTicket]:
    found = []
    for number in range(draw(st.integers(0, 6))):
        entries = tuple(TimeEntry(f"{number}-{index}", draw(hours), draw(st.booleans()),
                                  draw(st.one_of(st.none(), moments)))
                        for index in range(draw(st.integers(0, 4))))
        found.append(CodexTicket(number, str(number), "", draw(hours), entries,
                                 created_at=draw(st.one_of(st.none(), moments)),
                                 updated_at=draw(st.one_of(st.none(), moments)),
                                 closed_at=draw(st.one_of(st.none(), moments))))
    return found


@st.composite
def cases(draw: st.DrawFn) -> tuple[CompanyData, Plan, Overrides, Period]:
    assets = [CodexAsset(number, f"A{number}", draw(asset_types),
                         draw(st.integers(0, 2**44)), draw(st.booleans()))
              for number in range(draw(st.integers(0, 8)))]
    contacts = [CodexContact(number, f"C{number}", None, draw(st.booleans()))
                for number in range(draw(st.integers(0, 6)))]
    support = draw(st.sampled_from(("Billed Hourly", "All Inclusive", "Unlimited")))
    plan = Plan("Plan", "1 Year", support, draw(rates))
    data = CompanyData("1", "Co", "Plan", "1 Year", assets=assets, contacts=contacts,
                       tickets=draw(tickets()))
    overrides = draw(overrides_for([asset.id for asset in assets],
                                   [contact.id for contact in contacts]))
    return data, plan, overrides, draw(periods)


def _bill(case: tuple[CompanyData, Plan, Overrides, Period]) -> Receipt:
    data, plan, overrides, period = case
    return calculate(data, [plan], overrides, period.year, period.month, today=TODAY)


def _leaves(value: Any) -> list[Any]:
    if isinstance(value, dict):
        return [leaf for item in value.values() for leaf in _leaves(item)]
    if isinstance(value, list):
        return [leaf for item in value for leaf in _leaves(item)]
    return [value]


def _no_float(value: Any) -> None:
    assert not isinstance(value, float)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        for item in dataclasses.fields(value):
            _no_float(getattr(value, item.name))
    elif isinstance(value, msgspec.Struct):
        for name in value.__struct_fields__:
            _no_float(getattr(value, name))
    elif isinstance(value, dict):
        for item in value.values():
            _no_float(item)
    elif isinstance(value, list | tuple):
        for item in value:
            _no_float(item)


@settings(max_examples=150, deadline=None)
@given(cases())
def test_total_is_the_sum_of_rounded_lines_and_never_negative(
        case: tuple[CompanyData, Plan, Overrides, Period]) -> None:
    receipt = _bill(case)
    assert receipt.ok
    for line in receipt.lines:
        assert line.amount == cents(line.quantity * line.rate)
        assert line.amount.as_tuple().exponent == -2
        assert line.amount >= 0 and line.quantity >= 0 and line.rate >= 0
    for section, subtotal in receipt.subtotals.items():
        assert subtotal == sum(line.amount for line in receipt.lines if line.section == section)
    assert receipt.total == sum(receipt.subtotals.values()) == sum(
        line.amount for line in receipt.lines)
    assert receipt.total >= 0
    hours = receipt.hours
    assert hours is not None
    assert 0 <= hours.billable_hours <= max(Decimal(0), hours.hours - hours.monthly_prepaid)
    assert 0 <= hours.yearly_remaining <= hours.yearly_remaining_before <= hours.yearly_prepaid
    if hours.included_by_support_level:
        assert receipt.subtotals["hours"] == 0


@settings(max_examples=100, deadline=None)
@given(cases())
def test_no_float_anywhere_and_the_json_and_csv_agree_with_the_receipt(
        case: tuple[CompanyData, Plan, Overrides, Period]) -> None:
    receipt = _bill(case)
    _no_float(receipt)
    encoded = receipt.to_json()
    assert json.loads(json.dumps(encoded)) == encoded
    assert all(isinstance(leaf, str | int | bool) or leaf is None for leaf in _leaves(encoded))
    assert Decimal(encoded["total"]) == receipt.total
    rows = list(csv.DictReader(io.StringIO(qbo_csv(receipt))))
    assert sum(Decimal(row["Amount"]) for row in rows) == receipt.total


@settings(max_examples=150, deadline=None)
@given(st.lists(hours, min_size=12, max_size=12), hours, hours,
       st.sampled_from(("Billed Hourly", "All Inclusive")))
def test_over_a_year_the_prepaid_pools_absorb_exactly_their_size(
        monthly_hours: list[Decimal], monthly: Decimal, yearly: Decimal, support: str) -> None:
    plan = Plan("P", "1 Year", support, Rates(per_hour=Decimal("100"),
                                               prepaid_hours_monthly=monthly,
                                               prepaid_hours_yearly=yearly))
    worked = [CodexTicket(month, str(month), "", time_entries=(TimeEntry(
        "e", amount, True, datetime(2026, month, 1, tzinfo=UTC) + timedelta(days=9)),))
        for month, amount in enumerate(monthly_hours, start=1)]
    data = CompanyData("1", "Co", "P", "1 Year", tickets=worked)
    billed = [calculate(data, [plan], Overrides(), 2026, month, today=TODAY)
              for month in range(1, 13)]
    beyond_monthly = sum(max(Decimal(0), amount - monthly) for amount in monthly_hours)
    assert sum(receipt.hours.billable_hours for receipt in billed  # type: ignore[union-attr]
               ) == max(Decimal(0), beyond_monthly - yearly)
    if support == "All Inclusive":
        assert all(receipt.total == 0 for receipt in billed)


@settings(max_examples=100, deadline=None)
@given(cases())
def test_one_more_active_contact_adds_exactly_one_user_price(
        case: tuple[CompanyData, Plan, Overrides, Period]) -> None:
    data, plan, overrides, period = case
    before = _bill(case)
    extra = CodexContact(10_000, "New", None, True)
    after = _bill((dataclasses.replace(data, contacts=(*data.contacts, extra)), plan,
                   overrides, period))
    assert before.effective_rates is not None
    assert after.total - before.total == cents(before.effective_rates.per_user)
