"""Contract alignment: the comparison and the change plan on hand-worked cases (plain data),
then the whole workflow against real Ledger and Codex: analyse, compare, a dry run that
writes nothing, the approval's list of changes, applying them, and verify."""

from __future__ import annotations

from typing import Any

import pytest

from hivematrix.brainhair.tools import contract
from hivematrix.brainhair.tools.base import Tool, ToolError
from hivematrix.brainhair.tools.contract import TermsError, compare, override_body, plan
from tests.brainhair.services import ACME, Platform, ok, platform, propose, run

__all__ = ["platform"]

TOOLS = {tool.name: tool for tool in contract.TOOLS}
ZERO = "0.00"


def tool(name: str) -> Tool:
    return TOOLS[name]


def current(**rates: str) -> dict[str, Any]:
    """A Gold-like company: 25/user, 30/workstation, 120/server, 150/hour, 2 prepaid hours a
    month; a firewall line item, a one-off setup fee and an old monitoring charge."""
    base = {name: ZERO for name in contract.RATES}
    base.update({"per_user": "25.00", "per_workstation": "30.00", "per_server": "120.00",
                 "per_hour": "150.00", "prepaid_hours_monthly": "2.00"}, **rates)
    return {"rates": base, "support_level": "Billed Hourly", "line_items": [
        {"id": 1, "name": "Firewall management", "kind": "recurring", "amount": "45.00"},
        {"id": 2, "name": "Setup fee", "kind": "one_off", "amount": "500.00"},
        {"id": 3, "name": "Old monitoring", "kind": "recurring", "amount": "10.00"}]}


TERMS = {"rates": {"per_user": "25.01", "per_workstation": "0", "per_server": 120,
                   "per_hour": "165"},
         "prepaid_hours_monthly": "2", "prepaid_hours_yearly": 10,
         "support_level": "billed  hourly",
         "line_items": [{"name": "firewall  Management", "amount": "45.00"},
                        {"name": "Email security", "amount": "3.50"}]}


def fields(found: list[dict[str, Any]]) -> list[str]:
    return [item["field"] for item in found]


def test_every_term_is_compared_with_one_cent_of_tolerance() -> None:
    found = compare(TERMS, current())
    # per_user 25.01 v 25.00 is within a cent; per_server, the monthly prepaid hours, the
    # support level (case and spaces aside) and the firewall item (name normalised) agree;
    # the one-off setup fee is not a contract term.
    assert fields(found) == ["per_workstation", "per_hour", "prepaid_hours_yearly",
                             "line item 'Email security'", "line item 'Old monitoring'"]
    workstation, hour, yearly, missing, extra = found
    assert (workstation["contract_value"], workstation["current_value"],
            workstation["difference"]) == ("0.00", "30.00", "-30.00")
    assert hour["difference"] == "+15.00" and hour["kind"] == "rate"
    assert yearly["kind"] == "prepaid_hours" and yearly["difference"] == "+10.00"
    assert missing["change"] == {"op": "add_line_item", "body": {
        "name": "Email security", "kind": "recurring", "amount": "3.50"}}
    assert extra["note"] == "on the bill but not in the contract"
    assert extra["change"] == {"op": "remove_line_item", "id": 3, "name": "Old monitoring"}


def test_a_cent_is_tolerated_and_more_is_not() -> None:
    assert compare({"rates": {"per_user": "25.01"}}, current()) == []
    assert compare({"rates": {"per_user": "24.99"}}, current()) == []
    over = compare({"rates": {"per_user": "25.011"}}, current())
    assert fields(over) == ["per_user"] and over[0]["difference"] == "+0.011"
    under = compare({"rates": {"per_user": 24.98}}, current())
    assert under[0]["difference"] == "-0.02"


def test_support_level_and_changed_line_items() -> None:
    found = compare({"support_level": "All Inclusive",
                     "line_items": [{"name": "Firewall management", "amount": "50",
                                     "kind": "yearly", "yearly_month": 3},
                                    {"name": "Old monitoring", "amount": "10.00"}]},
                    current())
    assert fields(found) == ["support_level", "line item 'Firewall management'"]
    level, item = found
    assert level["change"] == {"op": "override", "field": "support_level",
                               "value": "All Inclusive"}
    assert item["difference"] == "+5.00"
    assert item["change"]["body"] == {"amount": "50.00", "kind": "yearly", "yearly_month": 3}
    assert item["current_value"] == "45.00 recurring"


def test_without_line_items_in_the_terms_the_bills_items_are_not_judged() -> None:
    assert compare({"rates": {"per_user": "25"}}, current()) == []


def test_a_current_value_missing_is_a_discrepancy() -> None:
    found = compare({"rates": {"per_vm": "40"}}, {"rates": {}, "line_items": []})
    assert found[0]["current_value"] is None and found[0]["difference"] is None


def test_bad_terms_are_refused_naming_where() -> None:
    with pytest.raises(TermsError, match="per_user: 'lots' is not an amount"):
        compare({"rates": {"per_user": "lots"}}, current())
    with pytest.raises(TermsError, match=r"line_items\.1\.name: 'a' is listed twice"):
        compare({"line_items": [{"name": "A", "amount": 1}, {"name": " a ", "amount": 2}]},
                current())
    with pytest.raises(TermsError, match="non-negative"):
        compare({"prepaid_hours_monthly": "-1"}, current())


def test_the_plan_sets_overrides_first_and_leaves_extra_items_unless_asked() -> None:
    found = compare(TERMS, current())
    changes, left = plan(found)
    assert [change["op"] for change in changes] == ["override", "override", "override",
                                                    "add_line_item"]
    assert [change.get("field") for change in changes[:3]] == [
        "per_workstation", "per_hour", "prepaid_hours_yearly"]
    assert changes[0]["shown"] == "30.00 → 0.00"
    assert left == [{"field": "line item 'Old monitoring'",
                     "note": "on the bill but not in the contract"}]
    assert override_body(changes) == {
        "per_workstation": {"enabled": True, "value": "0.00"},
        "per_hour": {"enabled": True, "value": "165.00"},
        "prepaid_hours_yearly": {"enabled": True, "value": "10.00"}}
    everything, none_left = plan(found, remove_extra_line_items=True)
    assert everything[-1]["op"] == "remove_line_item" and none_left == []
    assert everything[-1]["shown"] == "10.00 recurring → (removed)"


# --- the workflow against real services ----------------------------------------------------

def line_items(platform: Platform) -> list[dict[str, Any]]:
    return list(ok(platform.test_client("ledger").get(
        f"/api/overrides/{ACME}/line-items", headers=platform.headers("billing"))))


def client_override(platform: Platform) -> dict[str, Any]:
    return dict(ok(platform.test_client("ledger").get(
        f"/api/overrides/{ACME}/client", headers=platform.headers("billing"))))


LIVE_TERMS = {"rates": {"per_user": "25", "per_workstation": "0", "per_hour": "140"},
              "prepaid_hours_monthly": "4", "support_level": "Billed Hourly",
              "line_items": [{"name": "Email security", "amount": "3.50"}]}


def test_analyse_compare_align_apply_verify(platform: Platform) -> None:
    ctx = platform.context("billing")
    account = {"account_number": ACME}
    settings = run(tool("contract_analyze"), ctx, account)
    assert settings["plan_name"] == "Gold" and settings["support_level"] == "Billed Hourly"
    assert settings["rates"]["per_server"] == "120.00" and settings["line_items"] == []
    assert {"plan_name": "Gold", "term_length": "1 Year"} in settings["available_plans"]

    terms = {**account, "contract_terms": LIVE_TERMS}
    compared = run(tool("contract_compare"), ctx, terms)
    assert compared["aligned"] is False
    assert fields(compared["discrepancies"]) == [
        "per_workstation", "per_hour", "prepaid_hours_monthly", "line item 'Email security'"]

    dry = run(tool("contract_align"), ctx, terms)
    assert dry["dry_run"] is True and len(dry["changes"]) == 4
    assert [change["step"] for change in dry["changes"]] == [1, 2, 3, 4]
    assert client_override(platform)["per_hour"]["enabled"] is False
    assert line_items(platform) == []

    proposal = propose(tool("contract_apply_alignment"), ctx, terms)
    assert proposal.action == f"Align the billing of {ACME} with its contract (4 changes)"
    assert proposal.details["1. set per_workstation"] == "30.00 → 0.00"
    assert proposal.details["2. set per_hour"] == "150.00 → 140.00"
    assert proposal.details["3. set prepaid_hours_monthly"] == "2.00 → 4.00"
    assert proposal.details["4. add line item Email security"] == \
        "— → 3.50 recurring"
    assert line_items(platform) == []  # proposing writes nothing

    applied = run(tool("contract_apply_alignment"), ctx, terms)
    assert applied["success"] is True and applied["applied"] == 4
    assert [result["change"] for result in applied["results"]] == [
        "set per_workstation", "set per_hour", "set prepaid_hours_monthly",
        "add line item Email security"]
    assert client_override(platform)["per_hour"] == {"enabled": True, "value": "140.00"}
    assert [item["name"] for item in line_items(platform)] == ["Email security"]

    verified = run(tool("contract_verify"), ctx, terms)
    assert verified == {"account_number": ACME, "aligned": True,
                        "message": "The bill matches the contract terms."}
    with pytest.raises(ToolError, match="matches the contract already"):
        propose(tool("contract_apply_alignment"), ctx, terms)
    changed = {**account, "contract_terms": {**LIVE_TERMS, "rates": {"per_user": "27"}}}
    remaining = run(tool("contract_verify"), ctx, changed)
    assert remaining["aligned"] is False
    assert fields(remaining["remaining_discrepancies"]) == ["per_user"]


def test_a_technician_cannot_align_billing(platform: Platform) -> None:
    terms = {"account_number": ACME,
             "contract_terms": {"rates": {"per_server": "99"}}}
    ctx = platform.context("technician")
    assert propose(tool("contract_apply_alignment"), ctx, terms).details[
        "1. set per_server"] == "120.00 → 99.00"
    with pytest.raises(ToolError, match=r"No change was made: Ledger refused \(403\)"):
        run(tool("contract_apply_alignment"), ctx, terms)
    assert client_override(platform)["per_server"]["enabled"] is False
