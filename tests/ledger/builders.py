"""Small builders for hand-worked billing cases: one plan with a distinct price per rate, so a
wrong rate shows up as a wrong total."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from hivematrix.ledger.calculation import Receipt, calculate
from hivematrix.ledger.inputs import (
    CodexAsset,
    CodexContact,
    CodexTicket,
    CompanyData,
    Overrides,
    Plan,
    Rates,
    TimeEntry,
)

TB = 2**40
TODAY = date(2026, 6, 15)


def D(text: str) -> Decimal:
    return Decimal(text)


#: The plan every case starts from. Rates are chosen so each type's share of a total is
#: recognisable: 25 per user, 30 per workstation, 120 per server, 60 per VM, 15 per switch,
#: 40 per firewall, 5 per printer, 150 per hour; backup: 10 per workstation, 50 per server,
#: 1 TB included per backed-up device, 20 per TB over that.
GOLD_RATES = Rates(
    per_user=D("25.00"), per_workstation=D("30.00"), per_server=D("120.00"),
    per_vm=D("60.00"), per_switch=D("15.00"), per_firewall=D("40.00"),
    per_printer=D("5.00"), per_hour=D("150.00"), backup_base_workstation=D("10.00"),
    backup_base_server=D("50.00"), backup_included_tb=D("1"), backup_per_tb=D("20.00"))
GOLD = Plan("Gold", "1 Year", "Billed Hourly", GOLD_RATES,
            {"antivirus": "SentinelOne", "soc": "Not Included"})
#: A second plan for the plan-swap override: the same term, every price different.
SILVER = Plan("Silver", "1 Year", "Billed Hourly",
              Rates(per_user=D("11.00"), per_workstation=D("13.00")))
PLANS = [GOLD, SILVER]


def company(*, assets: tuple[CodexAsset, ...] = (), contacts: tuple[CodexContact, ...] = (),
            tickets: tuple[CodexTicket, ...] = (), **fields: Any) -> CompanyData:
    values: dict[str, Any] = {"account_number": "620547", "name": "Acme Dental",
                              "billing_plan": "Gold", "contract_term_length": "1 Year",
                              "contract_start_date": date(2026, 1, 1)}
    values.update(fields)
    return CompanyData(assets=assets, contacts=contacts, tickets=tickets, **values)


def asset(asset_id: int, billing_type: str, backup_bytes: int = 0, *,
          retired: bool = False) -> CodexAsset:
    return CodexAsset(asset_id, f"{billing_type.upper()}-{asset_id}", billing_type,
                      backup_bytes, retired)


def contact(contact_id: int, name: str, *, active: bool = True) -> CodexContact:
    return CodexContact(contact_id, name, f"{name.lower()}@acme.example", active)


def at(year: int, month: int, day: int = 10, hour: int = 12) -> datetime:
    return datetime(year, month, day, hour, tzinfo=UTC)


def entry(hours: str, when: datetime | None, *, billable: bool = True,
          entry_id: str = "") -> TimeEntry:
    return TimeEntry(entry_id or f"e{hours}-{when}", D(hours), billable, when)


def ticket(ticket_id: int, *entries: TimeEntry, total: str = "0", **dates: Any) -> CodexTicket:
    return CodexTicket(ticket_id, str(ticket_id), f"Ticket {ticket_id}", D(total),
                       tuple(entries), **dates)


def bill(data: CompanyData, overrides: Overrides | None = None, year: int = 2026,
         month: int = 5, plans: list[Plan] | None = None) -> Receipt:
    return calculate(data, PLANS if plans is None else plans, overrides or Overrides(),
                     year, month, today=TODAY)


def amounts(receipt: Receipt, section: str) -> list[tuple[str, str, Decimal]]:
    """(name, type, amount) of one section's lines."""
    return [(line.name, line.type, line.amount) for line in receipt.lines
            if line.section == section]
