"""One company's bill for one month: a pure function from inputs to a :class:`Receipt`.

The rules (issue 8, "The calculation"), in the order :func:`calculate` applies them:

1. Plan = the client override's plan name when enabled, else the company's; term = the
   company's. No such (plan, term) → a receipt carrying ``error``, never a silent drop.
2. Each rate = enabled client override (0 included) > plan > 0.
3. Assets = Codex assets (not retired) + manual assets; type = asset override, else the
   asset's own; Custom → custom cost, No Charge → 0, a known type → its rate, anything else →
   0 and a warning.
4. Users = active Codex contacts + manual users; type = user override, else Paid.
5. Backup: base fee per backed-up workstation / server (Server or VM), included TB per
   backed-up device, overage per TB over the bytes of every billed asset.
6. Hours by the month of each time entry (a ticket with only a total: the month it was
   closed, else last updated), after the monthly then the yearly prepaid pool; nothing is
   charged under All Inclusive or Unlimited support.
7. Custom line items by kind (recurring within start/end, one-off, yearly).
8. Each line is rounded half-up to cents; sub-totals and total are sums of rounded lines.
9. The receipt has every item, billed or free, and everything needed to explain the bill.

All arithmetic runs in :data:`~hivematrix.ledger.money.EXACT`, so nothing rounds except the
one :func:`~hivematrix.ledger.money.cents` per line.
"""

from __future__ import annotations

import dataclasses
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, localcontext
from typing import Any, Literal, NamedTuple

import msgspec

from hivematrix.ledger.inputs import (
    CUSTOM,
    INCLUSIVE_SUPPORT,
    NO_CHARGE,
    PAID,
    RATE_NAMES,
    ClientOverride,
    CodexTicket,
    CompanyData,
    Overrides,
    Period,
    Plan,
    Rates,
    Toggle,
)
from hivematrix.ledger.money import BYTES_PER_TB, EXACT, ZERO, cents, plain

Section = Literal["users", "assets", "backup", "hours", "custom"]
SECTIONS: tuple[Section, ...] = ("users", "assets", "backup", "hours", "custom")
Source = Literal["codex", "manual"]

KIND_LABELS = {"recurring": "Recurring", "one_off": "One-off", "yearly": "Yearly"}
#: An amount of nothing, written as money ("0.00").
NO_CENTS = Decimal("0.00")
BACKUP_WORKSTATION = "Workstation backup base fee"
BACKUP_SERVER = "Server backup base fee"
BACKUP_OVERAGE = "Backup storage overage (TB)"


# --- the receipt ---------------------------------------------------------------------------

class Line(msgspec.Struct, frozen=True):
    """One priced line: ``amount`` = ``quantity`` x ``rate`` rounded half-up to cents (a
    msgspec struct: every company's bills make a hundred thousand of them)."""

    section: Section
    name: str
    #: Billing type (assets), user type, kind of line item, support level (hours), ...
    type: str
    source: Source
    quantity: Decimal
    rate: Decimal
    amount: Decimal
    #: The asset, contact, manual entry or line item id this line comes from ("" if none).
    ref: str = ""
    description: str = ""


def _line(section: Section, name: str, type_: str, source: Source, quantity: Decimal,
          rate: Decimal, *, ref: str = "", description: str = "") -> Line:
    return Line(section, name, type_, source, quantity, rate, cents(quantity * rate), ref,
                description)


@dataclass(frozen=True)
class BackupDetails:
    workstations: int
    servers: int
    total_bytes: int
    total_tb: Decimal
    included_tb: Decimal
    overage_tb: Decimal
    workstation_base_fee: Decimal
    server_base_fee: Decimal
    per_tb_fee: Decimal


@dataclass(frozen=True)
class TicketHours:
    """Billable hours one ticket contributes to the period."""

    ticket_id: int
    number: str
    subject: str
    hours: Decimal


@dataclass(frozen=True)
class HoursDetails:
    """The hours of the period and how the prepaid pools absorbed them (rule 6)."""

    hours: Decimal
    monthly_prepaid: Decimal
    monthly_used: Decimal
    yearly_prepaid: Decimal
    #: Of the yearly pool: used by the earlier months of this calendar year, what was left at
    #: the start of this month, used this month and left after it.
    yearly_used_before: Decimal
    yearly_remaining_before: Decimal
    yearly_used: Decimal
    yearly_remaining: Decimal
    billable_hours: Decimal
    hourly_rate: Decimal
    #: All Inclusive / Unlimited: hours are reported but never charged.
    included_by_support_level: bool
    #: Billable hours per earlier month of this calendar year (January first).
    earlier_months: tuple[tuple[Period, Decimal], ...]
    tickets: tuple[TicketHours, ...]


@dataclass(frozen=True)
class FeatureValue:
    key: str
    value: str
    overridden: bool


@dataclass(frozen=True)
class Receipt:
    account_number: str
    company_name: str
    period: Period
    plan_name: str | None
    contract_term: str | None
    support_level: str | None
    #: Set when no bill could be calculated (plan not found); then there are no lines.
    error: str | None = None
    lines: tuple[Line, ...] = ()
    subtotals: Mapping[Section, Decimal] = field(
        default_factory=lambda: dict.fromkeys(SECTIONS, NO_CENTS))
    total: Decimal = NO_CENTS
    asset_quantities: Mapping[str, int] = field(default_factory=dict)
    user_quantities: Mapping[str, int] = field(default_factory=dict)
    effective_rates: Rates | None = None
    features: tuple[FeatureValue, ...] = ()
    hours: HoursDetails | None = None
    backup: BackupDetails | None = None
    warnings: tuple[str, ...] = ()
    contract_end_date: date | None = None
    contract_expired: bool = False

    @property
    def ok(self) -> bool:
        return self.error is None

    def section(self, name: Section) -> tuple[Line, ...]:
        return tuple(line for line in self.lines if line.section == name)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict: Decimals as plain strings, dates ISO, the period "YYYY-MM"."""
        encoded: dict[str, Any] = _jsonable(self)
        return encoded


def _jsonable(value: Any) -> Any:
    if isinstance(value, Decimal):
        return plain(value)
    if isinstance(value, Period):
        return str(value)
    if isinstance(value, date):
        return value.isoformat()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {item.name: _jsonable(getattr(value, item.name))
                for item in dataclasses.fields(value)}
    if isinstance(value, msgspec.Struct):
        return {name: _jsonable(getattr(value, name)) for name in value.__struct_fields__}
    if isinstance(value, Mapping):
        return {str(key): _jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(item) for item in value]
    return value


# --- the calculation -----------------------------------------------------------------------

def index_plans(plans: Iterable[Plan]) -> dict[tuple[str, str], Plan]:
    """Plans by (name, term), both trimmed."""
    return {plan.key: plan for plan in plans}


def calculate(company: CompanyData, plans: Mapping[tuple[str, str], Plan] | Iterable[Plan],
              overrides: Overrides, year: int, month: int, *,
              today: date | None = None) -> Receipt:
    """The bill of ``company`` for ``year``-``month``; ``today`` decides contract expiry."""
    period = Period(year, month)
    today = today or datetime.now(UTC).date()
    book = plans if isinstance(plans, Mapping) else index_plans(plans)
    client = overrides.client or ClientOverride()
    plan_name = _enabled_text(client.plan_name) or (company.billing_plan or "").strip()
    term = (company.contract_term_length or "").strip()
    end = contract_end(company)
    header: dict[str, Any] = {
        "account_number": company.account_number, "company_name": company.name,
        "period": period, "contract_end_date": end,
        "contract_expired": end is not None and today > end}
    plan = book.get((plan_name, term))
    if plan is None:
        error = (f"no plan '{plan_name}' for term '{term}'" if plan_name
                 else "the company has no billing plan")
        return Receipt(plan_name=plan_name or None, contract_term=term or None,
                       support_level=None, error=error, **header)
    with localcontext(EXACT):
        return _priced(company, plan, overrides, client, period, header)


def _enabled_text(toggle: Toggle[str]) -> str:
    """An enabled text override, trimmed; "" when disabled or blank (then it does not apply)."""
    return (toggle.value or "").strip() if toggle.enabled else ""


def _priced(company: CompanyData, plan: Plan, overrides: Overrides, client: ClientOverride,
            period: Period, header: dict[str, Any]) -> Receipt:
    rates = effective_rates(plan, client)
    support = _enabled_text(client.support_level) or plan.support_level.strip()
    warnings: list[str] = []
    asset_lines, asset_quantities, backup_assets = _assets(company, overrides, rates, warnings)
    user_lines, user_quantities = _users(company, overrides, rates)
    backup_lines, backup = _backup(backup_assets, rates)
    hours_lines, hours = _hours(company.tickets, period, rates, support, warnings)
    custom_lines = [
        _line("custom", item.name, KIND_LABELS[item.kind], "manual", Decimal(1), item.amount,
              ref=str(item.id), description=item.description)
        for item in overrides.line_items if item.bills_in(period)]
    lines = (*user_lines, *asset_lines, *backup_lines, *hours_lines, *custom_lines)
    subtotals: dict[Section, Decimal] = {
        section: sum((line.amount for line in lines if line.section == section), NO_CENTS)
        for section in SECTIONS}
    return Receipt(
        plan_name=plan.name, contract_term=plan.term, support_level=support, lines=lines,
        subtotals=subtotals, total=sum(subtotals.values(), NO_CENTS),
        asset_quantities=asset_quantities, user_quantities=user_quantities,
        effective_rates=rates, features=features(plan, overrides), hours=hours,
        backup=backup, warnings=tuple(warnings), **header)


def effective_rates(plan: Plan, client: ClientOverride) -> Rates:
    """Rule 2: an enabled override (even 0) beats the plan, whose missing values are 0."""
    values: dict[str, Decimal] = {}
    for name in RATE_NAMES:
        toggle = client.rate(name)
        values[name] = toggle.value if toggle.enabled and toggle.value is not None else (
            getattr(plan.rates, name))
    return Rates(**values)


def features(plan: Plan, overrides: Overrides) -> tuple[FeatureValue, ...]:
    """The plan's features, each replaced by an enabled, non-empty feature override."""
    shown = {key: FeatureValue(key, value, False) for key, value in plan.features.items()}
    for override in overrides.features:
        if override.enabled and override.value.strip():
            shown[override.key] = FeatureValue(override.key, override.value.strip(), True)
    return tuple(shown.values())


# --- assets and users (rules 3 and 4) ------------------------------------------------------

class _Billed(NamedTuple):
    """One asset or user on its way to a line: its effective type and where it came from
    (a tuple: tens of thousands are made per run of every bill)."""

    name: str
    billing_type: str
    custom_cost: Decimal | None
    source: Source
    ref: str
    backup_bytes: int = 0


def _asset_rate(billing_type: str, custom_cost: Decimal | None, rates: Rates) -> Decimal | None:
    """The price of one asset of this type; None for a type that has no price."""
    if billing_type == CUSTOM:
        return custom_cost
    if billing_type == NO_CHARGE:
        return ZERO
    return rates.for_asset_type(billing_type)


def _assets(company: CompanyData, overrides: Overrides, rates: Rates, warnings: list[str],
            ) -> tuple[list[Line], dict[str, int], list[_Billed]]:
    by_asset = overrides.asset_overrides()
    billed: list[_Billed] = []
    for asset in company.assets:
        if asset.retired:
            continue
        override = by_asset.get(asset.id)
        billed.append(_Billed(asset.hostname,
                              override.billing_type if override else asset.billing_type,
                              override.custom_cost if override else None, "codex",
                              str(asset.id), asset.backup_bytes))
    billed.extend(_Billed(manual.hostname, manual.billing_type, manual.custom_cost, "manual",
                          f"manual-{manual.id}") for manual in overrides.manual_assets)
    lines: list[Line] = []
    quantities: dict[str, int] = defaultdict(int)
    for item in billed:
        rate = _asset_rate(item.billing_type, item.custom_cost, rates)
        if rate is None:
            warnings.append(f"asset {item.name!r} ({item.source} {item.ref}): unknown billing "
                            f"type {item.billing_type!r}, billed at 0")
        quantities[item.billing_type] += 1
        lines.append(_line("assets", item.name, item.billing_type, item.source, Decimal(1),
                           rate or ZERO, ref=item.ref))
    return lines, dict(quantities), billed


def _users(company: CompanyData, overrides: Overrides, rates: Rates,
           ) -> tuple[list[Line], dict[str, int]]:
    by_contact = overrides.user_overrides()
    billed: list[_Billed] = []
    seen: set[int] = set()
    for contact in company.contacts:
        if not contact.active or contact.id in seen:
            continue
        seen.add(contact.id)
        override = by_contact.get(contact.id)
        billed.append(_Billed(contact.name, override.billing_type if override else PAID,
                              override.custom_cost if override else None, "codex",
                              str(contact.id)))
    billed.extend(_Billed(manual.full_name, manual.billing_type, manual.custom_cost, "manual",
                          f"manual-{manual.id}") for manual in overrides.manual_users)
    lines: list[Line] = []
    quantities: dict[str, int] = defaultdict(int)
    for item in billed:
        rate = (rates.per_user if item.billing_type == PAID
                else item.custom_cost if item.billing_type == CUSTOM else None) or ZERO
        quantities[item.billing_type] += 1
        lines.append(_line("users", item.name, item.billing_type, item.source, Decimal(1),
                           rate, ref=item.ref))
    return lines, dict(quantities)


# --- backup (rule 5) -----------------------------------------------------------------------

def _backup(assets: list[_Billed], rates: Rates) -> tuple[list[Line], BackupDetails]:
    workstations = sum(1 for asset in assets
                       if asset.billing_type == "Workstation" and asset.backup_bytes > 0)
    servers = sum(1 for asset in assets
                  if asset.billing_type in ("Server", "VM") and asset.backup_bytes > 0)
    total_bytes = sum(asset.backup_bytes for asset in assets)
    total_tb = Decimal(total_bytes) / BYTES_PER_TB
    included_tb = (workstations + servers) * rates.backup_included_tb
    overage_tb = max(ZERO, total_tb - included_tb)
    details = BackupDetails(workstations, servers, total_bytes, total_tb, included_tb,
                            overage_tb, rates.backup_base_workstation,
                            rates.backup_base_server, rates.backup_per_tb)
    lines = [
        _line("backup", name, kind, "codex", quantity, rate)
        for name, kind, quantity, rate in (
            (BACKUP_WORKSTATION, "Workstation", Decimal(workstations),
             rates.backup_base_workstation),
            (BACKUP_SERVER, "Server", Decimal(servers), rates.backup_base_server),
            (BACKUP_OVERAGE, "Overage", overage_tb, rates.backup_per_tb))
        if quantity > 0]
    return lines, details


# --- ticket hours (rule 6) -----------------------------------------------------------------

#: (year, month): what hours are summed by (cheaper than a Period per time entry).
Month = tuple[int, int]


def _month_key(moment: datetime) -> Month:
    if moment.tzinfo is not None and moment.utcoffset():
        moment = moment.astimezone(UTC)
    return moment.year, moment.month


def _month_of(moment: datetime) -> Period:
    return Period(*_month_key(moment))


def _ticket_moment(ticket: CodexTicket, warnings: list[str]) -> datetime | None:
    """When a ticket's total counts: closed, else last updated, else (warned) created."""
    moment = ticket.closed_at or ticket.updated_at
    if moment is None and ticket.created_at is not None:
        moment = ticket.created_at
        warnings.append(f"ticket #{ticket.number}: no closed or updated date; its hours count "
                        f"in the month it was created ({_month_of(moment)})")
    return moment


def _ticket_hours(ticket: CodexTicket, warnings: list[str]) -> list[tuple[Month, Decimal]]:
    """(month, billable hours) pairs of one ticket."""
    if not ticket.time_entries:
        if ticket.total_hours <= 0:
            return []
        moment = _ticket_moment(ticket, warnings)
        if moment is None:
            warnings.append(f"ticket #{ticket.number}: {plain(ticket.total_hours)} hours "
                            "without any date; not counted")
            return []
        return [(_month_key(moment), ticket.total_hours)]
    pairs: list[tuple[Month, Decimal]] = []
    for entry in ticket.time_entries:
        if not entry.billable or entry.hours <= 0:
            continue
        moment = entry.executed_at
        if moment is None:
            moment = _ticket_moment(ticket, warnings)
            if moment is None:
                warnings.append(f"ticket #{ticket.number}: time entry {entry.id} has no date; "
                                "not counted")
                continue
            warnings.append(f"ticket #{ticket.number}: time entry {entry.id} has no date; "
                            f"counted in {_month_of(moment)} with the ticket")
        pairs.append((_month_key(moment), entry.hours))
    return pairs


def _hours(tickets: Iterable[CodexTicket], period: Period, rates: Rates, support: str,
           warnings: list[str]) -> tuple[list[Line], HoursDetails]:
    by_month: dict[Month, Decimal] = defaultdict(lambda: ZERO)
    in_period: list[TicketHours] = []
    this_month = (period.year, period.month)
    year_start = (period.year, 1)
    for ticket in tickets:
        mine = ZERO
        for month, hours in _ticket_hours(ticket, warnings):
            if year_start <= month <= this_month:
                by_month[month] += hours
                if month == this_month:
                    mine += hours
        if mine > 0:
            in_period.append(TicketHours(ticket.id, ticket.number, ticket.subject, mine))
    monthly, yearly = rates.prepaid_hours_monthly, rates.prepaid_hours_yearly
    earlier = tuple((Period(period.year, number), by_month[(period.year, number)])
                    for number in range(1, period.month))
    # Only hours beyond each month's own allowance draw on the yearly pool.
    used_before = min(yearly, sum((max(ZERO, hours - monthly) for _, hours in earlier), ZERO))
    remaining_before = max(ZERO, yearly - used_before)
    hours = by_month[this_month]
    beyond_monthly = max(ZERO, hours - monthly)
    billable = max(ZERO, beyond_monthly - remaining_before)
    inclusive = support.strip().casefold() in {level.casefold() for level in INCLUSIVE_SUPPORT}
    details = HoursDetails(
        hours=hours, monthly_prepaid=monthly, monthly_used=min(hours, monthly),
        yearly_prepaid=yearly, yearly_used_before=used_before,
        yearly_remaining_before=remaining_before, yearly_used=beyond_monthly - billable,
        yearly_remaining=remaining_before - (beyond_monthly - billable),
        billable_hours=billable, hourly_rate=rates.per_hour,
        included_by_support_level=inclusive, earlier_months=earlier, tickets=tuple(in_period))
    if inclusive:
        # Shown on the bill as free support; the hours are what was worked.
        lines = [_line("hours", "Support hours", support, "codex", hours, ZERO)] if hours else []
    else:
        lines = [_line("hours", "Billable hours", support, "codex", billable,
                       rates.per_hour)] if billable else []
    return lines, details


# --- the contract --------------------------------------------------------------------------

_TERM = re.compile(r"(\d+)\s*(year|yr|month|mo)", re.IGNORECASE)


def contract_end(company: CompanyData) -> date | None:
    """Codex's end date, else start + term ("1 Year", "24 Months") - 1 day, else None
    (Month to Month, unknown term or no start)."""
    if company.contract_end_date is not None:
        return company.contract_end_date
    match = _TERM.search(company.contract_term_length or "")
    if company.contract_start_date is None or match is None:
        return None
    months = int(match[1]) * (12 if match[2].lower().startswith("y") else 1)
    if months == 0:
        return None
    start = company.contract_start_date
    year, month = divmod(start.month - 1 + months, 12)
    target = Period(start.year + year, month + 1)
    if start.day > target.last_day.day:
        # No such day (29 February, 31st): the anniversary is the 1st of the next month.
        return target.last_day
    return date(target.year, target.month, start.day) - timedelta(days=1)
