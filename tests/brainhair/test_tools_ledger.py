"""Ledger tools against a real Ledger (PostgreSQL) that bills a real Codex: reads return the
seeded bill; every write's proposal shows before → after and writes nothing; running it
applies; a technician's change is refused by Ledger itself."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from hivematrix.brainhair.tools import ledger
from hivematrix.brainhair.tools.base import Tool, ToolError
from tests.brainhair.services import ACME, BETA, Platform, ok, platform, propose, run

__all__ = ["platform"]

TOOLS = {tool.name: tool for tool in ledger.TOOLS}


def tool(name: str) -> Tool:
    return TOOLS[name]


def ledger_get(platform: Platform, path: str) -> Any:
    return ok(platform.test_client("ledger").get(path, headers=platform.headers("billing")))


def test_the_bill_is_ledgers_calculation(platform: Platform) -> None:
    bill = run(tool("ledger_billing"), platform.context("technician"), {"account_number": ACME})
    assert bill["plan_name"] == "Gold" and bill["error"] is None
    assert bill["effective_rates"]["per_user"] == "25.00"
    assert bill["effective_rates"]["prepaid_hours_monthly"] == "2.00"
    lines = {(line["section"], line["name"]): line for line in bill["lines"]["lines"]}
    assert lines[("assets", "ACME-DC01")]["amount"] == "120.00"
    assert lines[("assets", "ACME-FRONT01")]["amount"] == "30.00"
    # Two users at 25, a server at 120 and a workstation at 30.
    assert Decimal(bill["total"]) == Decimal("200.00")
    assert bill["lines"]["truncated"] is False


def test_plans_are_listed(platform: Platform) -> None:
    plans = run(tool("ledger_plans"), platform.context("billing"), {"plan_name": "gol"})
    assert [plan["plan_name"] for plan in plans["plans"]] == ["Gold"]
    assert plans["plans"][0]["per_server"] == "120.00"


def test_an_override_change_is_proposed_then_applied_then_cleared(platform: Platform) -> None:
    ctx = platform.context("billing")
    change = {"account_number": ACME, "set": {"per_user": 30, "support_level": "Unlimited"}}
    proposal = propose(tool("ledger_set_override"), ctx, change)
    assert proposal.details["per_user"] == "25.00 (plan) → 30"
    assert proposal.details["support_level"] == "Billed Hourly (plan) → Unlimited"
    assert ledger_get(platform, f"/api/overrides/{ACME}/client")["per_user"]["enabled"] is False
    done = run(tool("ledger_set_override"), ctx, change)
    assert done["client_override"] == {"per_user": "30.00", "support_level": "Unlimited"}
    bill = run(tool("ledger_billing"), ctx, {"account_number": ACME})
    assert bill["effective_rates"]["per_user"] == "30.00"
    assert bill["support_level"] == "Unlimited"
    again = propose(tool("ledger_set_override"), ctx,
                    {"account_number": ACME, "set": {"per_user": "35.5"}})
    assert again.details["per_user"] == "30.00 → 35.5"
    undo = {"account_number": ACME, "clear": ["per_user", "support_level"]}
    assert propose(tool("ledger_set_override"), ctx, undo).details["per_user"] == \
        "30.00 → (plan's value)"
    run(tool("ledger_set_override"), ctx, undo)
    back = run(tool("ledger_billing"), ctx, {"account_number": ACME})
    assert back["effective_rates"]["per_user"] == "25.00"


def test_a_technicians_billing_change_is_refused_by_ledger(platform: Platform) -> None:
    ctx = platform.context("technician")
    change = {"account_number": ACME, "set": {"per_user": "0"}}
    propose(tool("ledger_set_override"), ctx, change)  # reading is allowed
    with pytest.raises(ToolError, match=r"Ledger refused \(403\)"):
        run(tool("ledger_set_override"), ctx, change)
    with pytest.raises(ToolError, match=r"Ledger refused \(403\)"):
        run(tool("ledger_add_line_item"), ctx, {"account_number": ACME, "name": "Free",
                                                "kind": "recurring", "amount": "0"})
    assert ledger_get(platform, f"/api/overrides/{ACME}/client")["per_user"]["enabled"] is False
    assert ledger_get(platform, f"/api/overrides/{ACME}/line-items") == []


def test_nothing_to_change_is_said_before_asking_anyone(platform: Platform) -> None:
    with pytest.raises(ToolError, match="Nothing to change"):
        propose(tool("ledger_set_override"), platform.context("billing"),
                {"account_number": ACME})


def test_manual_assets_are_added_changed_and_removed(platform: Platform) -> None:
    ctx = platform.context("admin")
    add = {"account_number": BETA, "hostname": "BETA-FW1", "billing_type": "Firewall",
           "notes": "Client-owned firewall"}
    proposal = propose(tool("ledger_add_manual_asset"), ctx, add)
    assert "BETA-FW1" in proposal.action and proposal.details["hostname"] == "— → BETA-FW1"
    assert proposal.details["entries now"] == 0
    assert run(tool("ledger_list_manual_assets"), ctx, {"account_number": BETA})["rows"] == []
    added = run(tool("ledger_add_manual_asset"), ctx, add)["added"]
    listed = run(tool("ledger_list_manual_assets"), ctx, {"account_number": BETA})
    assert [row["hostname"] for row in listed["rows"]] == ["BETA-FW1"]
    change = {"account_number": BETA, "id": added["id"], "billing_type": "Custom",
              "custom_cost": "12.5"}
    shown = propose(tool("ledger_update_manual_asset"), ctx, change)
    assert shown.details["billing_type"] == "Firewall → Custom"
    assert shown.details["custom_cost"] == "— → 12.5"
    assert run(tool("ledger_update_manual_asset"), ctx, change)["updated"]["custom_cost"] == \
        "12.50"
    gone = {"account_number": BETA, "id": added["id"]}
    removal = propose(tool("ledger_remove_manual_asset"), ctx, gone)
    assert removal.details["hostname"] == "BETA-FW1 → —"
    assert len(ledger_get(platform, f"/api/overrides/{BETA}/manual-assets")) == 1
    run(tool("ledger_remove_manual_asset"), ctx, gone)
    assert ledger_get(platform, f"/api/overrides/{BETA}/manual-assets") == []


def test_manual_users_and_line_items(platform: Platform) -> None:
    ctx = platform.context("billing")
    user = run(tool("ledger_add_manual_user"), ctx,
               {"account_number": BETA, "full_name": "Pat Contractor",
                "billing_type": "No Charge"})["added"]
    item = run(tool("ledger_add_line_item"), ctx,
               {"account_number": BETA, "name": "Firewall management", "kind": "recurring",
                "amount": 45})["added"]
    assert item["amount"] == "45.00"
    change = {"account_number": BETA, "id": item["id"], "amount": "50"}
    assert propose(tool("ledger_update_line_item"), ctx, change).details["amount"] == \
        "45.00 → 50"
    run(tool("ledger_update_line_item"), ctx, change)
    overrides = run(tool("ledger_get_overrides"), ctx, {"account_number": BETA})
    assert [row["full_name"] for row in overrides["manual_users"]["rows"]] == \
        ["Pat Contractor"]
    assert [row["amount"] for row in overrides["line_items"]["rows"]] == ["50.00"]
    bill = run(tool("ledger_billing"), ctx, {"account_number": BETA})
    assert ("custom", "Firewall management", "50.00") in {
        (line["section"], line["name"], line["amount"]) for line in bill["lines"]["lines"]}
    with pytest.raises(ToolError, match="no line-items entry 999999"):
        propose(tool("ledger_remove_line_item"), ctx, {"account_number": BETA, "id": 999999})
    run(tool("ledger_remove_line_item"), ctx, {"account_number": BETA, "id": item["id"]})
    run(tool("ledger_remove_manual_user"), ctx, {"account_number": BETA, "id": user["id"]})
    assert ledger_get(platform, f"/api/overrides/{BETA}/line-items") == []


def test_a_bill_is_accepted_once(platform: Platform) -> None:
    ctx = platform.context("billing", preferred_username="bill-1")
    args = {"account_number": BETA, "year": 2026, "month": 1, "notes": "January"}
    proposal = propose(tool("ledger_accept_bill"), ctx, args)
    assert "2026-01" in proposal.action
    assert proposal.details["status"] == "open → accepted"
    assert proposal.details["total"] is not None
    assert ledger_get(platform, f"/archive/snapshots/company/{BETA}") == []
    accepted = run(tool("ledger_accept_bill"), ctx, args)
    assert accepted["accepted"] is True and accepted["period"] == "2026-01"
    assert accepted["accepted_by"] == "bill-1" and accepted["total"] == proposal.details["total"]
    with pytest.raises(ToolError, match=r"Ledger refused \(409\).*accepted already"):
        run(tool("ledger_accept_bill"), ctx, args)
