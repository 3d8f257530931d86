"""Money helpers, input validation and the conversion of Codex's bulk items."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import orjson
import pytest

from hivematrix.ledger import billing
from hivematrix.ledger.billing import receipt_of_line
from hivematrix.ledger.inputs import (
    _WIRE,
    AssetOverride,
    ClientOverride,
    CodexAsset,
    CustomLineItem,
    InputError,
    ManualAsset,
    ManualUser,
    Overrides,
    Period,
    Rates,
    TimeEntry,
    Toggle,
    UserOverride,
    from_codex_bulk_item,
    from_codex_bulk_line,
)
from hivematrix.ledger.money import MoneyError, cents, parse_amount, parse_decimal, plain
from tests.ledger.builders import D

# --- money ---------------------------------------------------------------------------------


def test_cents_round_half_up() -> None:
    assert [cents(D(text)) for text in ("2.675", "100.005", "0.004", "0.005", "1.115",
                                        "7", "2.6749999")] == [
        D("2.68"), D("100.01"), D("0.00"), D("0.01"), D("1.12"), D("7.00"), D("2.67")]


def test_parse_decimal_takes_strings_ints_and_decimals_never_floats() -> None:
    assert parse_decimal(" 1.50 ", "hours") == D("1.50")
    assert parse_decimal(3, "qty") == 3 and parse_decimal(D("0.1"), "rate") == D("0.1")
    for bad, message in [(0.1, "hours: expected a decimal string, got float 0.1"),
                         (True, "hours: expected a decimal string, got bool True"),
                         (None, "hours: expected a decimal string, got NoneType None"),
                         ("abc", "hours: 'abc' is not a decimal number"),
                         ("NaN", "hours: 'NaN' is not a finite number"),
                         ("Infinity", "hours: 'Infinity' is not a finite number")]:
        with pytest.raises(MoneyError) as raised:
            parse_decimal(bad, "hours")
        assert str(raised.value) == message
    with pytest.raises(MoneyError, match="rate: '-1' is negative"):
        parse_amount("-1", "rate")
    assert plain(D("1E+2")) == "100" and plain(D("0.0000001")) == "0.0000001"


# --- validation ----------------------------------------------------------------------------


@pytest.mark.parametrize(("build", "message"), [
    (lambda: Rates(per_user=D("-1")), "rates.per_user: expected a non-negative Decimal"),
    (lambda: Rates(per_user=1.5), "rates.per_user: expected a non-negative Decimal"),
    (lambda: Toggle(True, None), "override: enabled without a value"),
    (lambda: ClientOverride.enabled(per_tablet=D(1)), "unknown rate per_tablet"),
    (lambda: ClientOverride(per_hour=Toggle.on(D("-5"))),
     "client override per_hour: expected a non-negative"),
    (lambda: AssetOverride(1, "Custom"), "asset override 1: billing type Custom needs a custom"),
    (lambda: ManualAsset(2, "NAS", "Custom"), "manual asset 2: billing type Custom needs"),
    (lambda: UserOverride(3, "Free"), "user override 3: billing type 'Free' is not one of Paid"),
    (lambda: ManualUser(4, "Temp", "Custom", D("-1")), "manual user 4 custom_cost"),
    (lambda: CustomLineItem(5, "Setup", "one_off", D(1)), "needs its year and month"),
    (lambda: CustomLineItem(6, "Renewal", "yearly", D(1), yearly_month=13),
     "needs its month \\(1-12\\)"),
    (lambda: CustomLineItem(7, "Fee", "monthly", D(1)), "kind 'monthly' is not one of"),
    (lambda: CustomLineItem(8, "Fee", "recurring", D(1), start=Period(2026, 5),
                            end=Period(2026, 4)), "starts 2026-05, after it ends 2026-04"),
    (lambda: CustomLineItem(9, "Fee", "recurring", D("-0.01")), "amount: expected a non-neg"),
    (lambda: Overrides(assets=(AssetOverride(1, "Server"), AssetOverride(1, "VM"))),
     "asset override: more than one for the same id"),
    (lambda: CodexAsset(1, "PC", "Workstation", -1), "backup_bytes must be a non-negative"),
    (lambda: TimeEntry("x", D("-1")), "time entry x hours"),
    (lambda: Period(2026, 13), "2026-13 is not a month"),
    (lambda: Period.parse("2026/05"), "'2026/05' is not YYYY-MM"),
])
def test_inputs_refuse_what_would_make_a_wrong_bill(build: Any, message: str) -> None:
    with pytest.raises(InputError, match=message):
        build()


def test_periods() -> None:
    may = Period.parse("2026-5")
    assert (str(may), may.first_day, may.last_day) == ("2026-05", date(2026, 5, 1),
                                                       date(2026, 5, 31))
    assert Period(2025, 12) < Period(2026, 1) < Period(2026, 2)
    assert Period.of(date(2024, 2, 10)).last_day == date(2024, 2, 29)


# --- Codex's bulk item ---------------------------------------------------------------------

BULK_ITEM: dict[str, Any] = {
    "company": {"account_number": "620547", "name": "Acme Dental", "billing_plan": "Gold",
                "contract_term_length": "1 Year", "contract_start_date": "2026-01-01",
                "contract_end_date": None, "support_level": None, "active": True},
    "assets": [
        {"id": 11, "hostname": "SRV1", "device_category": "Server", "billing_type": "Server",
         "billing_type_unmapped": False, "backup_bytes": 5 * 2**40 + 7, "online": True},
        {"id": 12, "hostname": "PC1", "device_category": "Laptop", "billing_type": "VM",
         "backup_bytes": None},
    ],
    "contacts": [
        {"id": 1, "name": "Dana", "email": "dana@acme.example", "active": True,
         "role": "billing"},
        {"id": 1, "name": "Dana", "email": "dana@acme.example", "active": True,
         "role": "primary"},
        {"id": 2, "name": "Ex Employee", "email": None, "active": False, "role": "general"},
    ],
    "locations": [],
    "tickets": [
        {"id": 7, "external_id": "1", "number": "1", "subject": "Printer jam",
         "status": "open", "created_at": "2026-03-01T12:30:00+00:00", "closed_at": None,
         "total_hours": "1.75", "time_entries": [
             {"id": "a", "hours": "1.25", "billable": True,
              "executed_at": "2026-03-01T14:00:00.250000+00:00"},
             {"id": "b", "hours": "0.50", "billable": False, "executed_at": None}]},
        {"id": 8, "number": "2", "subject": "Old", "created_at": "2025-12-31T18:59:00-05:00",
         "closed_at": "2026-01-02T09:00:00", "total_hours": "0", "time_entries": []},
    ],
}


#: The careful reading of a parsed item, and the fast one of the same item as a JSON line
#: (which falls back to the careful one for anything it refuses): they must agree.
READERS = {"item": from_codex_bulk_item,
           "line": lambda item: from_codex_bulk_line(orjson.dumps(item))}


@pytest.mark.parametrize("read", READERS.values(), ids=READERS.keys())
def test_a_codex_bulk_item_becomes_company_data(read: Any) -> None:
    data = read(BULK_ITEM)
    assert (data.account_number, data.name, data.billing_plan, data.contract_term_length,
            data.contract_start_date, data.contract_end_date) == (
        "620547", "Acme Dental", "Gold", "1 Year", date(2026, 1, 1), None)
    assert data.assets == (
        CodexAsset(11, "SRV1", "Server", 5 * 2**40 + 7, False, "Server"),
        CodexAsset(12, "PC1", "VM", 0, False, "Laptop"))
    # One contact per person, however many roles it has.
    assert [(item.id, item.name, item.active) for item in data.contacts] == [
        (1, "Dana", True), (2, "Ex Employee", False)]
    first, second = data.tickets
    assert (first.id, first.number, first.total_hours, first.closed_at) == (
        7, "1", D("1.75"), None)
    assert first.time_entries == (
        TimeEntry("a", D("1.25"), True, datetime(2026, 3, 1, 14, 0, 0, 250000, tzinfo=UTC)),
        TimeEntry("b", D("0.50"), False, None))
    assert isinstance(first.total_hours, Decimal)
    # Offsets become UTC; a timestamp without one is taken as UTC.
    assert second.created_at == datetime(2025, 12, 31, 23, 59, tzinfo=UTC)
    assert second.closed_at == datetime(2026, 1, 2, 9, tzinfo=UTC)


@pytest.mark.parametrize(("path", "value", "message"), [
    (("company", "account_number"), None, "company.account_number: missing"),
    (("assets", 1, "backup_bytes"), "12", "assets\\[1\\].backup_bytes: expected int, got '12'"),
    (("assets", 0, "backup_bytes"), True, "assets\\[0\\].backup_bytes: expected int, got True"),
    (("assets", 0, "id"), None, "assets\\[0\\].id: missing"),
    (("contacts", 2, "active"), "no", "contacts\\[2\\].active: expected bool, got 'no'"),
    (("tickets", 0, "total_hours"), 1.75,
     "tickets\\[0\\].total_hours: expected a decimal string, got float 1.75"),
    (("tickets", 0, "time_entries", 0, "hours"), "lots",
     "tickets\\[0\\].time_entries\\[0\\].hours: 'lots' is not a decimal number"),
    (("tickets", 0, "time_entries", 1, "hours"), "-1",
     "tickets\\[0\\].time_entries\\[1\\].hours: '-1' is negative"),
    (("tickets", 1, "closed_at"), "yesterday",
     "tickets\\[1\\].closed_at: 'yesterday' is not an ISO timestamp"),
    (("company", "contract_start_date"), "01/02/2026",
     "company.contract_start_date: '01/02/2026' is not an ISO date"),
    (("assets",), {"id": 1}, "item.assets: expected list"),
    (("tickets", 0, "time_entries", 0), "a", "time_entries\\[0\\]: expected an object"),
])
@pytest.mark.parametrize("read", READERS.values(), ids=READERS.keys())
def test_bad_bulk_items_name_the_field(path: tuple[Any, ...], value: Any, message: str,
                                       read: Any) -> None:
    import copy

    item = copy.deepcopy(BULK_ITEM)
    target: Any = item
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    with pytest.raises(InputError, match=message):
        read(item)


def test_a_well_formed_line_is_read_as_the_item_is() -> None:
    """Fixed up for the fast decoding (no nulls where it wants text or a number, offsets on
    every timestamp), the item comes out equal both ways, field for field."""
    item = orjson.loads(orjson.dumps(BULK_ITEM))
    item["assets"][1]["backup_bytes"] = 0
    item["tickets"][1]["closed_at"] = "2026-01-02T09:00:00+00:00"
    item["tickets"][0]["number"] = ""  # known by its id
    item["assets"][0]["retired_at"] = "2026-02-01T00:00:00+00:00"
    line = orjson.dumps(item)
    _WIRE.decode(line)  # the fast decoding itself takes it (no fallback hides a difference)
    assert from_codex_bulk_line(line) == from_codex_bulk_item(item)


def test_a_bad_line_is_that_company_s_error_on_the_bill() -> None:
    item = orjson.loads(orjson.dumps(BULK_ITEM))
    item["assets"][0]["backup_bytes"] = "lots"
    receipt = receipt_of_line(orjson.dumps(item), {}, {}, Period(2026, 3))
    assert (receipt.account_number, receipt.company_name, receipt.ok) == (
        "620547", "Acme Dental", False)
    assert receipt.error == "Codex data: assets[0].backup_bytes: expected int, got 'lots'"
    assert receipt_of_line(b"{oops", {}, {}, Period(2026, 3)).error.startswith(
        "Codex data: not JSON")


def test_streamed_lines_are_split_whatever_the_chunks() -> None:
    body = b'{"a": 1}\n{"b": [1, 2]}\n\n{"c": 3}'
    for size in (1, 2, 5, len(body)):
        chunks = [body[index:index + size] for index in range(0, len(body), size)]
        assert list(billing._lines(_Chunked(chunks))) == body.split(b"\n"), size


class _Chunked:
    """Just what ``_lines`` reads of an httpx response."""

    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = chunks

    def iter_bytes(self) -> Iterator[bytes]:
        return iter(self.chunks)


def test_a_line_that_is_not_json_is_refused() -> None:
    with pytest.raises(InputError, match="not JSON"):
        from_codex_bulk_line(b'{"company": ')
