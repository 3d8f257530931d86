"""The billing rules of issue 8, one hand-worked case at a time.

Every expected number is worked out in the comments from the rates in ``builders.GOLD``
(user 25, workstation 30, server 120, VM 60, switch 15, firewall 40, printer 5, hour 150;
backup base 10 per workstation, 50 per server, 1 TB included per device, 20 per TB over).
"""

from __future__ import annotations

from datetime import date

from hivematrix.ledger.calculation import calculate, contract_end
from hivematrix.ledger.inputs import (
    AssetOverride,
    ClientOverride,
    CodexTicket,
    CustomLineItem,
    FeatureOverride,
    ManualAsset,
    ManualUser,
    Overrides,
    Period,
    Plan,
    Rates,
    Toggle,
    UserOverride,
)
from tests.ledger.builders import (
    PLANS,
    TB,
    D,
    amounts,
    asset,
    at,
    bill,
    company,
    contact,
    entry,
    ticket,
)

# --- rule 1: the plan ----------------------------------------------------------------------


def test_the_company_plan_and_term_price_the_bill() -> None:
    receipt = bill(company(assets=(asset(1, "Workstation"),), contacts=(contact(1, "Dana"),)))
    assert receipt.ok and receipt.error is None
    assert (receipt.plan_name, receipt.contract_term, receipt.support_level) == (
        "Gold", "1 Year", "Billed Hourly")
    # 1 user * 25 + 1 workstation * 30 = 55
    assert receipt.total == D("55.00")


def test_an_enabled_plan_override_swaps_the_plan_but_never_the_term() -> None:
    data = company(assets=(asset(1, "Workstation"),), contacts=(contact(1, "Dana"),))
    swapped = bill(data, Overrides(client=ClientOverride.enabled(plan_name="Silver")))
    # Silver/1 Year: 1 user * 11 + 1 workstation * 13 = 24
    assert (swapped.plan_name, swapped.total) == ("Silver", D("24.00"))
    disabled = bill(data, Overrides(client=ClientOverride(plan_name=Toggle(False, "Silver"))))
    assert (disabled.plan_name, disabled.total) == ("Gold", D("55.00"))
    # The term stays the company's: Silver has no 2 Year variant, so this is an error.
    two_years = bill(company(contract_term_length="2 Year"),
                     Overrides(client=ClientOverride.enabled(plan_name="Silver")))
    assert two_years.error == "no plan 'Silver' for term '2 Year'"


def test_plan_not_found_is_an_explicit_error_never_a_silent_drop() -> None:
    data = company(billing_plan="Platinum", contract_term_length="2 Year",
                   contract_end_date=date(2026, 3, 31),
                   assets=(asset(1, "Server"),), contacts=(contact(1, "Dana"),))
    receipt = bill(data)
    assert not receipt.ok
    assert receipt.error == "no plan 'Platinum' for term '2 Year'"
    assert (receipt.lines, receipt.total, receipt.effective_rates) == ((), D("0.00"), None)
    # The dashboard still learns who it is and that the contract ran out.
    assert (receipt.account_number, receipt.plan_name, receipt.contract_term) == (
        "620547", "Platinum", "2 Year")
    assert receipt.contract_expired is True
    assert receipt.to_json()["error"] == "no plan 'Platinum' for term '2 Year'"
    assert bill(company(billing_plan=None)).error == "the company has no billing plan"
    assert bill(company(contract_term_length=None)).error == "no plan 'Gold' for term ''"
    # Surrounding blanks are not part of a name.
    assert bill(company(billing_plan=" Gold ", contract_term_length="1 Year ")).ok


# --- rule 2: effective rates ---------------------------------------------------------------


def test_enabled_overrides_win_even_at_zero_and_disabled_ones_are_ignored() -> None:
    override = ClientOverride(per_workstation=Toggle.on(D("0")), per_user=Toggle(False, D("99")),
                              per_server=Toggle.on(D("80.00")),
                              backup_included_tb=Toggle.on(D("0")))
    receipt = bill(company(assets=(asset(1, "Workstation", TB // 2), asset(2, "Server")),
                           contacts=(contact(1, "Dana"),)), Overrides(client=override))
    rates = receipt.effective_rates
    assert rates is not None
    assert (rates.per_workstation, rates.per_user, rates.per_server, rates.backup_included_tb,
            rates.per_vm) == (D("0"), D("25.00"), D("80.00"), D("0"), D("60.00"))
    # users 1 * 25 = 25; assets 0 (workstation) + 80 (server) = 80;
    # backup: 1 backed-up workstation * 10 = 10; included TB = 1 * 0 = 0, so the whole
    # 0.5 TB is overage: 0.5 * 20 = 10 → backup 20; total 25 + 80 + 20 = 125
    assert receipt.subtotals == {"users": D("25.00"), "assets": D("80.00"),
                                 "backup": D("20.00"), "hours": D("0.00"),
                                 "custom": D("0.00")}
    assert receipt.backup is not None
    assert (receipt.backup.included_tb, receipt.backup.overage_tb) == (D("0"), D("0.5"))
    assert receipt.total == D("125.00")


def test_a_plan_without_a_rate_prices_at_zero() -> None:
    bare = Plan("Bare", "1 Year")
    receipt = bill(company(billing_plan="Bare", assets=(asset(1, "Server", 3 * TB),),
                           contacts=(contact(1, "Dana"),)), plans=[bare])
    assert receipt.effective_rates == Rates()
    assert receipt.total == D("0.00")
    # Still listed: the user, the server, its backup base fee and 3 TB of overage, all at 0.
    assert [(line.section, line.quantity, line.amount) for line in receipt.lines] == [
        ("users", 1, D("0.00")), ("assets", 1, D("0.00")), ("backup", 1, D("0.00")),
        ("backup", 3, D("0.00"))]


# --- rule 3: assets ------------------------------------------------------------------------


def test_each_asset_type_has_its_own_rate_and_an_unknown_type_is_free_and_warned() -> None:
    assets = (asset(1, "Workstation"), asset(2, "Server"), asset(3, "VM"), asset(4, "Switch"),
              asset(5, "Firewall"), asset(6, "Printer"), asset(7, "Tablet"),
              asset(8, "Server", retired=True))
    receipt = bill(company(assets=assets))
    assert amounts(receipt, "assets") == [
        ("WORKSTATION-1", "Workstation", D("30.00")), ("SERVER-2", "Server", D("120.00")),
        ("VM-3", "VM", D("60.00")), ("SWITCH-4", "Switch", D("15.00")),
        ("FIREWALL-5", "Firewall", D("40.00")), ("PRINTER-6", "Printer", D("5.00")),
        ("TABLET-7", "Tablet", D("0.00"))]
    # 30 + 120 + 60 + 15 + 40 + 5 + 0 = 270; the retired server is not billed nor listed
    assert receipt.subtotals["assets"] == receipt.total == D("270.00")
    assert receipt.warnings == (
        "asset 'TABLET-7' (codex 7): unknown billing type 'Tablet', billed at 0",)
    assert receipt.asset_quantities == {"Workstation": 1, "Server": 1, "VM": 1, "Switch": 1,
                                        "Firewall": 1, "Printer": 1, "Tablet": 1}
    assert all(line.source == "codex" and line.quantity == 1 for line in receipt.lines)


def test_asset_overrides_and_manual_assets() -> None:
    overrides = Overrides(
        assets=(AssetOverride(1, "Custom", D("99.99")), AssetOverride(2, "No Charge"),
                AssetOverride(3, "Server"), AssetOverride(404, "Server")),
        manual_assets=(ManualAsset(1, "NAS", "Server"), ManualAsset(2, "Kiosk", "Custom",
                                                                   D("12.34")),
                       ManualAsset(3, "Appliance", "Appliance")))
    receipt = bill(company(assets=(asset(1, "Workstation"), asset(2, "Workstation"),
                                   asset(3, "Workstation"))), overrides)
    # Codex: 99.99 (Custom) + 0 (No Charge) + 120 (overridden to Server);
    # manual: 120 (Server) + 12.34 (Custom) + 0 (unknown) → 352.33.
    # An override for an asset this company does not have (404) changes nothing.
    assert [(line.name, line.type, line.source, line.ref, line.rate, line.amount)
            for line in receipt.lines] == [
        ("WORKSTATION-1", "Custom", "codex", "1", D("99.99"), D("99.99")),
        ("WORKSTATION-2", "No Charge", "codex", "2", D("0"), D("0.00")),
        ("WORKSTATION-3", "Server", "codex", "3", D("120.00"), D("120.00")),
        ("NAS", "Server", "manual", "manual-1", D("120.00"), D("120.00")),
        ("Kiosk", "Custom", "manual", "manual-2", D("12.34"), D("12.34")),
        ("Appliance", "Appliance", "manual", "manual-3", D("0"), D("0.00"))]
    assert receipt.total == D("352.33")
    assert receipt.asset_quantities == {"Custom": 2, "No Charge": 1, "Server": 2,
                                        "Appliance": 1}
    assert receipt.warnings == (
        "asset 'Appliance' (manual manual-3): unknown billing type 'Appliance', billed at 0",)


# --- rule 4: users -------------------------------------------------------------------------


def test_users_active_contacts_and_manual_users_by_type() -> None:
    contacts = (contact(1, "Dana"), contact(1, "Dana"),  # listed once per role by Codex
                contact(2, "Eli"), contact(3, "Fay"), contact(4, "Gone", active=False),
                contact(5, "Hal"))
    overrides = Overrides(
        users=(UserOverride(2, "No Charge"), UserOverride(3, "Custom", D("12.50")),
               UserOverride(4, "Custom", D("500"))),
        manual_users=(ManualUser(1, "Contractor"), ManualUser(2, "Owner", "No Charge"),
                      ManualUser(3, "Auditor", "Custom", D("7.25"))))
    receipt = bill(company(contacts=contacts), overrides)
    # Dana 25 + Eli 0 + Fay 12.50 + Hal 25; Gone is inactive (its override is moot);
    # manual: Contractor 25 + Owner 0 + Auditor 7.25 → 94.75
    assert [(name, kind, amount) for name, kind, amount in amounts(receipt, "users")] == [
        ("Dana", "Paid", D("25.00")), ("Eli", "No Charge", D("0.00")),
        ("Fay", "Custom", D("12.50")), ("Hal", "Paid", D("25.00")),
        ("Contractor", "Paid", D("25.00")), ("Owner", "No Charge", D("0.00")),
        ("Auditor", "Custom", D("7.25"))]
    assert [line.source for line in receipt.lines] == ["codex"] * 4 + ["manual"] * 3
    assert receipt.total == D("94.75")
    assert receipt.user_quantities == {"Paid": 3, "No Charge": 2, "Custom": 2}


# --- rule 5: backup ------------------------------------------------------------------------


def test_backup_base_fees_included_tb_and_overage() -> None:
    assets = (asset(1, "Workstation", TB), asset(2, "Workstation", TB // 2),
              asset(3, "Workstation", 0), asset(4, "Server", 3 * TB), asset(5, "VM", TB // 4),
              asset(6, "Switch", TB // 4), asset(7, "Server", 100 * TB, retired=True))
    receipt = bill(company(assets=assets))
    backup = receipt.backup
    assert backup is not None
    # Backed up: workstations 1 and 2 (3 has no bytes); servers 4 and the VM 5.
    # Total = 1 + 0.5 + 3 + 0.25 + 0.25 (the switch's bytes count too) = 5 TB; the retired
    # server is not billed, so its 100 TB are not counted.
    # Included = (2 + 2) * 1 = 4 TB → overage 1 TB * 20 = 20.
    # Base: 2 * 10 + 2 * 50 = 120 → backup 140.
    assert (backup.workstations, backup.servers, backup.total_bytes) == (2, 2, 5 * TB)
    assert (backup.total_tb, backup.included_tb, backup.overage_tb) == (D(5), D(4), D(1))
    assert amounts(receipt, "backup") == [
        ("Workstation backup base fee", "Workstation", D("20.00")),
        ("Server backup base fee", "Server", D("100.00")),
        ("Backup storage overage (TB)", "Overage", D("20.00"))]
    assert [(line.quantity, line.rate) for line in receipt.section("backup")] == [
        (D(2), D("10.00")), (D(2), D("50.00")), (D(1), D("20.00"))]
    assert receipt.subtotals["backup"] == D("140.00")


def test_backup_within_the_included_tb_has_no_overage_line() -> None:
    receipt = bill(company(assets=(asset(1, "Server", TB // 2),)))
    # 1 server * 1 TB included ≥ 0.5 TB: base 50 only
    assert amounts(receipt, "backup") == [("Server backup base fee", "Server", D("50.00"))]
    assert receipt.backup is not None and receipt.backup.overage_tb == 0


def test_backup_uses_the_effective_type_and_rounds_the_overage_once() -> None:
    overrides = Overrides(
        client=ClientOverride.enabled(backup_per_tb=D("15.00"), backup_included_tb=D("0.5")),
        assets=(AssetOverride(1, "Server"), AssetOverride(2, "No Charge")))
    # Asset 1 is a Codex workstation overridden to Server: a backed-up server.
    # Asset 2 (a server on No Charge) is no backed-up server, but its bytes still count.
    receipt = bill(company(assets=(asset(1, "Workstation", TB // 2),
                                   asset(2, "Server", TB // 8))), overrides)
    backup = receipt.backup
    assert backup is not None
    # servers 1, workstations 0; total 0.5 + 0.125 = 0.625 TB; included 1 * 0.5;
    # overage 0.125 TB * 15 = 1.875 → 1.88 (half-up); base 1 * 50 → backup 51.88
    assert (backup.workstations, backup.servers, backup.overage_tb) == (0, 1, D("0.125"))
    assert amounts(receipt, "backup") == [
        ("Server backup base fee", "Server", D("50.00")),
        ("Backup storage overage (TB)", "Overage", D("1.88"))]


# --- rule 6: ticket hours ------------------------------------------------------------------


def test_hours_go_to_the_month_of_each_time_entry() -> None:
    spanning = ticket(1, entry("2.00", at(2026, 4, 28)), entry("1.50", at(2026, 5, 2)),
                      entry("0.25", at(2026, 5, 3)),
                      entry("4.00", at(2026, 5, 4), billable=False),  # not billable
                      closed_at=at(2026, 6, 1))
    # A ticket with only a total counts where it was closed, else where it was last updated.
    closed = ticket(2, total="3.00", closed_at=at(2026, 5, 20), updated_at=at(2026, 6, 2))
    updated = ticket(3, total="0.75", updated_at=at(2026, 5, 31, 23))
    elsewhere = ticket(4, total="9.00", closed_at=at(2026, 4, 30, 23))
    receipt = bill(company(tickets=(spanning, closed, updated, elsewhere)))
    hours = receipt.hours
    assert hours is not None
    # May: 1.50 + 0.25 (ticket 1) + 3.00 (ticket 2) + 0.75 (ticket 3) = 5.50
    assert hours.hours == D("5.50")
    assert [(item.number, item.hours) for item in hours.tickets] == [
        ("1", D("1.75")), ("2", D("3.00")), ("3", D("0.75"))]
    # April: 2.00 (ticket 1) + 9.00 (ticket 4)
    assert dict(hours.earlier_months)[Period(2026, 4)] == D("11.00")
    # No prepaid hours: 5.50 * 150 = 825
    assert amounts(receipt, "hours") == [("Billable hours", "Billed Hourly", D("825.00"))]
    assert receipt.warnings == ()


def test_hours_months_are_utc_and_dateless_hours_are_warned() -> None:
    from datetime import datetime, timedelta, timezone

    new_york = timezone(timedelta(hours=-5))
    late = ticket(1, entry("1.00", datetime(2026, 4, 30, 21, tzinfo=new_york), entry_id="x"))
    undated_entry = ticket(2, entry("2.00", None, entry_id="y"), closed_at=at(2026, 5, 6))
    created_only = ticket(3, total="0.50", created_at=at(2026, 5, 1))
    nothing = ticket(4, total="8.00")
    receipt = bill(company(tickets=(late, undated_entry, created_only, nothing)))
    assert receipt.hours is not None
    # 21:00 in New York on 30 April is 02:00 UTC on 1 May: 1.00 + 2.00 + 0.50 = 3.50
    assert receipt.hours.hours == D("3.50")
    assert receipt.warnings == (
        "ticket #2: time entry y has no date; counted in 2026-05 with the ticket",
        "ticket #3: no closed or updated date; its hours count in the month it was created "
        "(2026-05)",
        "ticket #4: 8.00 hours without any date; not counted")


# Hours worked in each month of 2026, with 2 prepaid hours a month and 10 a year at 100/h.
YEAR_HOURS = ["5", "1", "6", "4", "2", "0", "3", "8", "2.5", "0", "1", "4"]
# Worked by hand (over = hours beyond the monthly 2; U = yearly pool used before the month,
# capped at 10; R = 10 - U; billable = max(0, over - R)):
#   month hours over  U   R  billable charge
#   Jan    5     3    0  10   0        0
#   Feb    1     0    3   7   0        0     (hours under the monthly allowance use no pool)
#   Mar    6     4    3   7   0        0
#   Apr    4     2    7   3   0        0
#   May    2     0    9   1   0        0
#   Jun    0     0    9   1   0        0
#   Jul    3     1    9   1   0        0
#   Aug    8     6   10   0   6      600
#   Sep    2.5   0.5 10   0   0.5     50
#   Oct    0     0   10   0   0        0
#   Nov    1     0   10   0   0        0
#   Dec    4     2   10   0   2      200
# Year: 36.5 hours - 18 monthly-covered - 10 yearly = 8.5 billable, 850 charged.
YEAR_EXPECTED = [  # (U, R, billable, charge, yearly used this month, yearly left after it)
    ("0", "10", "0", "0.00", "3", "7"), ("3", "7", "0", "0.00", "0", "7"),
    ("3", "7", "0", "0.00", "4", "3"), ("7", "3", "0", "0.00", "2", "1"),
    ("9", "1", "0", "0.00", "0", "1"), ("9", "1", "0", "0.00", "0", "1"),
    ("9", "1", "0", "0.00", "1", "0"), ("10", "0", "6", "600.00", "0", "0"),
    ("10", "0", "0.5", "50.00", "0", "0"), ("10", "0", "0", "0.00", "0", "0"),
    ("10", "0", "0", "0.00", "0", "0"), ("10", "0", "2", "200.00", "0", "0")]


def _year_of_tickets() -> tuple[CodexTicket, ...]:
    tickets = [ticket(month, entry(hours, at(2026, month, 15), entry_id=f"m{month}"))
               for month, hours in enumerate(YEAR_HOURS, start=1) if hours != "0"]
    # The previous year's hours must not drain 2026's pool.
    tickets.append(ticket(99, entry("20", at(2025, 12, 15), entry_id="old")))
    return tuple(tickets)


def test_monthly_then_yearly_prepaid_hours_over_a_whole_year() -> None:
    prepaid = Plan("Prepaid", "1 Year", "Billed Hourly",
                   Rates(per_hour=D("100"), prepaid_hours_monthly=D("2"),
                         prepaid_hours_yearly=D("10")))
    data = company(billing_plan="Prepaid", tickets=_year_of_tickets())
    charged = D("0")
    for month, expected in enumerate(YEAR_EXPECTED, start=1):
        receipt = bill(data, year=2026, month=month, plans=[prepaid])
        hours = receipt.hours
        assert hours is not None
        used_before, remaining_before, billable, charge, used, left = map(D, expected)
        assert hours.hours == D(YEAR_HOURS[month - 1]), month
        assert hours.monthly_used == min(D(YEAR_HOURS[month - 1]), D(2)), month
        assert (hours.yearly_used_before, hours.yearly_remaining_before, hours.billable_hours,
                receipt.subtotals["hours"], hours.yearly_used, hours.yearly_remaining) == (
            used_before, remaining_before, billable, charge, used, left), month
        charged += receipt.total
    assert charged == D("850.00")


def test_prepaid_hours_from_the_client_override_including_zero() -> None:
    prepaid = Plan("Prepaid", "1 Year", "Billed Hourly",
                   Rates(per_hour=D("100"), prepaid_hours_monthly=D("2"),
                         prepaid_hours_yearly=D("10")))
    data = company(billing_plan="Prepaid", tickets=_year_of_tickets())
    # Override: no monthly allowance (0 honoured), 5 a year. March: Jan 5 + Feb 1 = 6 hours
    # before it all draw on the pool → U = min(5, 6) = 5, R = 0; March's 6 hours are billed.
    override = ClientOverride.enabled(prepaid_hours_monthly=D("0"),
                                      prepaid_hours_yearly=D("5"))
    receipt = bill(data, Overrides(client=override), month=3, plans=[prepaid])
    assert receipt.hours is not None
    assert (receipt.hours.yearly_used_before, receipt.hours.billable_hours) == (D(5), D(6))
    assert receipt.total == D("600.00")


def test_all_inclusive_and_unlimited_report_hours_without_charging_them() -> None:
    inclusive = Plan("Care", "1 Year", "All Inclusive", Rates(per_hour=D("150")))
    data = company(billing_plan="Care", tickets=(ticket(1, entry("7.00", at(2026, 5, 4))),))
    receipt = bill(data, plans=[inclusive])
    hours = receipt.hours
    assert hours is not None
    # 7 hours worked, none prepaid: 7 would be billable, but All Inclusive charges 0.
    assert (hours.hours, hours.billable_hours, hours.included_by_support_level) == (
        D("7.00"), D("7.00"), True)
    assert [(line.name, line.type, line.quantity, line.rate, line.amount)
            for line in receipt.lines] == [
        ("Support hours", "All Inclusive", D("7.00"), D("0"), D("0.00"))]
    assert receipt.total == D("0.00")
    unlimited = bill(data, Overrides(client=ClientOverride.enabled(support_level="Unlimited")),
                     plans=[inclusive])
    assert (unlimited.support_level, unlimited.total) == ("Unlimited", D("0.00"))
    # The client override can also take a client off an inclusive plan: 7 * 150 = 1050.
    hourly = bill(data, Overrides(client=ClientOverride.enabled(support_level="Billed Hourly")),
                  plans=[inclusive])
    assert hourly.total == D("1050.00")


# --- rule 7: custom line items -------------------------------------------------------------

LINE_ITEMS = (
    CustomLineItem(1, "Monitoring", "recurring", D("40.00")),
    CustomLineItem(2, "Project", "recurring", D("100.00"), start=Period(2026, 3),
                   end=Period(2026, 5)),
    CustomLineItem(3, "Onboarding", "one_off", D("250.00"), one_off=Period(2026, 4)),
    CustomLineItem(4, "Domain renewal", "yearly", D("18.00"), yearly_month=4,
                   start=Period(2026, 1)),
    CustomLineItem(5, "Old licence", "yearly", D("60.00"), yearly_month=2,
                   end=Period(2026, 12)),
)
# month → items billed (amount): worked from each item's kind and bounds
LINE_ITEM_MONTHS = {
    Period(2026, 1): ["Monitoring"],
    Period(2026, 2): ["Monitoring", "Old licence"],
    Period(2026, 3): ["Monitoring", "Project"],
    Period(2026, 4): ["Monitoring", "Project", "Onboarding", "Domain renewal"],
    Period(2026, 5): ["Monitoring", "Project"],
    Period(2026, 6): ["Monitoring"],
    Period(2025, 4): ["Monitoring"],  # before the renewal's start
    Period(2027, 2): ["Monitoring"],  # after the licence's end
    Period(2027, 4): ["Monitoring", "Domain renewal"],
}


def test_every_line_item_kind_bills_in_its_months_only() -> None:
    totals = {}
    for period, expected in LINE_ITEM_MONTHS.items():
        receipt = bill(company(), Overrides(line_items=LINE_ITEMS), period.year, period.month)
        assert [line.name for line in receipt.lines] == expected, period
        totals[period] = receipt.total
    # April 2026: 40 + 100 + 250 + 18 = 408
    assert totals[Period(2026, 4)] == D("408.00")
    line = bill(company(), Overrides(line_items=LINE_ITEMS), 2026, 4).lines[2]
    assert (line.section, line.type, line.source, line.ref) == ("custom", "One-off", "manual",
                                                                "3")


# --- rule 8: rounding ----------------------------------------------------------------------


def test_each_line_rounds_half_up_and_totals_add_rounded_lines() -> None:
    rate = Plan("Odd", "1 Year", "Billed Hourly", Rates(per_hour=D("33.335")))
    overrides = Overrides(
        assets=tuple(AssetOverride(number, "Custom", D("33.335")) for number in (1, 2, 3)),
        line_items=(CustomLineItem(1, "Half a cent", "recurring", D("0.005")),
                    CustomLineItem(2, "Under half", "recurring", D("2.674"))))
    data = company(billing_plan="Odd",
                   assets=tuple(asset(number, "Workstation") for number in (1, 2, 3)),
                   tickets=(ticket(1, entry("3", at(2026, 5, 1))),))
    receipt = bill(data, overrides, plans=[rate])
    # hours: one line of 3 * 33.335 = 100.005 → 100.01 (half-up; banker's rounding would
    # give 100.00, and a float 3 * 33.335 = 100.00499… would too)
    assert amounts(receipt, "hours") == [("Billable hours", "Billed Hourly", D("100.01"))]
    # assets: three lines of 33.335 → 33.34 each → 100.02 (not 100.01)
    assert receipt.subtotals["assets"] == D("100.02")
    # custom: 0.005 → 0.01 and 2.674 → 2.67
    assert [line.amount for line in receipt.section("custom")] == [D("0.01"), D("2.67")]
    # total = 100.01 + 100.02 + 0.01 + 2.67 = 202.71
    assert receipt.total == D("202.71")
    assert all(line.amount.as_tuple().exponent == -2 for line in receipt.lines)


# --- rule 9: what the receipt tells ----------------------------------------------------------


def test_features_come_from_the_plan_with_overrides_marked() -> None:
    overrides = Overrides(features=(
        FeatureOverride("soc", "Arctic Wolf"), FeatureOverride("antivirus", "Defender", False),
        FeatureOverride("sat", "KnowBe4"), FeatureOverride("email_security", "  ")))
    receipt = bill(company(), overrides)
    assert [(item.key, item.value, item.overridden) for item in receipt.features] == [
        ("antivirus", "SentinelOne", False), ("soc", "Arctic Wolf", True),
        ("sat", "KnowBe4", True)]


def test_contract_end_and_expiry_have_no_price_effect() -> None:
    data = company(assets=(asset(1, "Workstation"),), contract_end_date=date(2026, 6, 14))
    expired = bill(data)  # today is 2026-06-15
    assert (expired.contract_end_date, expired.contract_expired) == (date(2026, 6, 14), True)
    on_the_day = calculate(data, PLANS, Overrides(), 2026, 5, today=date(2026, 6, 14))
    assert on_the_day.contract_expired is False
    assert expired.total == on_the_day.total == D("30.00")
    # Without an end date: start + term - 1 day.
    assert contract_end(company(contract_start_date=date(2025, 7, 1))) == date(2026, 6, 30)
    assert contract_end(company(contract_start_date=date(2024, 2, 29))) == date(2025, 2, 28)
    assert contract_end(company(contract_start_date=date(2025, 1, 31),
                                contract_term_length="1 Month")) == date(2025, 2, 28)
    assert contract_end(company(contract_start_date=date(2024, 3, 15),
                                contract_term_length="24 Months")) == date(2026, 3, 14)
    assert contract_end(company(contract_term_length="3 Year",
                                contract_start_date=date(2023, 6, 15))) == date(2026, 6, 14)
    assert contract_end(company(contract_term_length="Month to Month")) is None
    assert contract_end(company(contract_start_date=None)) is None
    month_to_month = bill(company(contract_term_length="Month to Month"),
                          plans=[Plan("Gold", "Month to Month")])
    assert (month_to_month.contract_end_date, month_to_month.contract_expired) == (None, False)


def test_a_worked_bill_from_end_to_end() -> None:
    data = company(
        assets=(asset(1, "Workstation", TB // 4), asset(2, "Workstation", TB // 4),
                asset(3, "Server", 2 * TB), asset(4, "Printer")),
        contacts=(contact(1, "Dana"), contact(2, "Eli"), contact(3, "Old", active=False)),
        tickets=(ticket(1, entry("1.25", at(2026, 5, 2)), entry("0.5", at(2026, 5, 3))),))
    overrides = Overrides(
        client=ClientOverride.enabled(prepaid_hours_monthly=D("1")),
        users=(UserOverride(2, "No Charge"),),
        line_items=(CustomLineItem(1, "Microsoft 365", "recurring", D("12.50")),))
    receipt = bill(data, overrides)
    # users: Dana 25 + Eli 0 = 25
    # assets: 2 * 30 + 120 + 5 = 185
    # backup: 2 * 10 + 1 * 50 = 70 base; 0.25 + 0.25 + 2 = 2.5 TB vs 3 * 1 included → none
    # hours: 1.75 - 1 monthly prepaid = 0.75 * 150 = 112.50
    # custom: 12.50
    # total: 25 + 185 + 70 + 112.50 + 12.50 = 405
    assert receipt.subtotals == {"users": D("25.00"), "assets": D("185.00"),
                                 "backup": D("70.00"), "hours": D("112.50"),
                                 "custom": D("12.50")}
    assert receipt.total == D("405.00")
    assert receipt.hours is not None
    assert (receipt.hours.monthly_used, receipt.hours.billable_hours) == (D("1"), D("0.75"))
    assert sum(line.amount for line in receipt.lines) == receipt.total
