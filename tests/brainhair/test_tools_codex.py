"""Codex, RMM and Beacon tools against real services over HTTP, with users' own tokens."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hivematrix.brainhair.tools import beacon, codex, rmm
from hivematrix.brainhair.tools.base import BearerServices, Tool, ToolContext, ToolError
from hivematrix.common.service_client import ServiceClient
from tests.brainhair.services import ACME, BETA, Platform, platform, propose, run

__all__ = ["platform"]

TOOLS = {tool.name: tool for tool in (*codex.TOOLS, *rmm.TOOLS, *beacon.TOOLS)}


def tool(name: str) -> Tool:
    return TOOLS[name]


def test_companies_are_listed_and_searched(platform: Platform) -> None:
    ctx = platform.context("technician")
    listed = run(tool("codex_list_companies"), ctx, {})
    assert [item["account_number"] for item in listed["items"]] == [ACME, BETA]
    assert listed["count"] == 2 and listed["truncated"] is False
    found = run(tool("codex_list_companies"), ctx, {"query": "beta"})
    assert [item["name"] for item in found["items"]] == ["Beta Law"]
    hipaa = run(tool("codex_list_companies"), ctx, {"compliance_level": "hipaa"})
    assert [item["account_number"] for item in hipaa["items"]] == [ACME]
    first = run(tool("codex_list_companies"), ctx, {"limit": 1})
    assert first["count"] == 2 and first["truncated"] is True and "note" in first


def test_company_detail_has_its_compliance_level(platform: Platform) -> None:
    company = run(tool("codex_get_company"), platform.context("billing"),
                  {"account_number": ACME})
    assert company["name"] == "Acme Dental" and company["compliance_level"] == "hipaa"
    assert company["billing_plan"] == "Gold" and company["support_level"] == "Billed Hourly"
    assert company["locations"] == [] and company["child_companies"] == []


def test_a_client_user_sees_only_their_company(platform: Platform) -> None:
    ctx = platform.context("client", account_number=BETA)
    listed = run(tool("codex_list_companies"), ctx, {})
    assert [item["account_number"] for item in listed["items"]] == [BETA]
    with pytest.raises(ToolError, match="Codex refused \\(404\\)"):
        run(tool("codex_get_company"), ctx, {"account_number": ACME})


def test_contacts_assets_and_network_equipment(platform: Platform) -> None:
    ctx = platform.context("technician")
    contacts = run(tool("codex_list_contacts"), ctx, {"account_number": ACME})
    assert [item["name"] for item in contacts["items"]] == ["Dana Reyes", "Eli Stone"]
    dana = run(tool("codex_get_contact"), ctx, {"contact_id": platform.ids["dana"]})
    assert dana["title"] == "Office manager" and dana["roles"][0]["role"] == "primary"
    assets = run(tool("codex_list_assets"), ctx, {"account_number": ACME})
    assert [item["hostname"] for item in assets["items"]] == ["ACME-DC01", "ACME-FRONT01"]
    by_user = run(tool("codex_list_assets"), ctx, {"query": "dana"})
    assert [item["hostname"] for item in by_user["items"]] == ["ACME-FRONT01"]
    server = run(tool("codex_get_asset"), ctx, {"asset_id": platform.ids["server"]})
    assert server["serial_number"] == "SN-DC01"
    assert server["rmm_device_id"] == platform.ids["device_uid"]
    gear = run(tool("codex_list_network_equipment"), ctx, {"account_number": ACME})
    assert [(item["kind"], item["name"]) for item in gear["items"]] == [
        ("switch", "Core switch")]


def test_tickets_by_company_and_status_and_one_with_its_conversation(
        platform: Platform) -> None:
    ctx = platform.context("technician")
    on_hold = run(tool("codex_list_tickets"), ctx,
                  {"account_number": ACME, "status": "on_hold, customer_replied"})
    assert sorted(item["number"] for item in on_hold["items"]) == ["INC-201", "INC-401"]
    closed = run(tool("codex_list_tickets"), ctx, {"status": "closed"})
    assert {item["number"] for item in closed["items"]} == {"INC-501", "INC-900"}
    ticket = run(tool("codex_get_ticket"), ctx, {"ticket_id": platform.ids["ticket"]})
    assert ticket["subject"] == "Backup failed on the server"
    assert [item["body_text"] for item in ticket["conversations"]] == [
        "The backup failed again last night.", "Disk full on the NAS; cleared it."]
    assert ticket["time_entries"][0]["hours"] == "2.00"


def test_one_search_covers_companies_contacts_assets_and_tickets(platform: Platform) -> None:
    found = run(tool("codex_search"), platform.context("technician"), {"query": "acme"})
    assert [item["account_number"] for item in found["companies"]["items"]] == [ACME]
    assert {item["name"] for item in found["contacts"]["items"]} == {"Dana Reyes",
                                                                     "Eli Stone"}
    assert {item["hostname"] for item in found["assets"]["items"]} == {"ACME-DC01",
                                                                       "ACME-FRONT01"}
    backup = run(tool("codex_search"), platform.context("technician"), {"query": "backup"})
    assert [item["number"] for item in backup["tickets"]["items"]] == ["INC-900"]


# --- RMM -----------------------------------------------------------------------------------

def test_live_device_details_come_from_datto(platform: Platform) -> None:
    details = run(tool("rmm_device_details"), platform.context("billing"),
                  {"asset_id": platform.ids["server"]})
    assert details["asset"]["hostname"] == "ACME-DC01"
    assert details["device"]["online"] is True
    assert details["device"]["antivirus"]["product"] == "Windows Defender"


def test_a_device_without_rmm_is_a_clear_error(platform: Platform) -> None:
    with pytest.raises(ToolError, match="not managed by an RMM"):
        run(tool("rmm_device_details"), platform.context("admin"),
            {"asset_id": platform.ids["desktop"]})


def test_a_quick_job_is_proposed_without_running_then_runs(platform: Platform) -> None:
    job_tool = tool("rmm_run_quick_job")
    assert job_tool.writes and job_tool.levels == ("admin", "technician")
    component = platform.datto.add_component("Check disk", ("Drive",))
    args = {"asset_id": platform.ids["server"], "component_uid": component,
            "variables": {"Drive": "C:"}, "reason": "Disk full alert on the NAS backup"}
    ctx = platform.context("technician", preferred_username="tech-7")
    before = len(platform.datto.jobs)
    proposal = propose(job_tool, ctx, args)
    assert "ACME-DC01" in proposal.action and component in proposal.action
    assert proposal.details["variables"] == {"Drive": "C:"}
    assert proposal.details["reason"] == args["reason"]
    assert len(platform.datto.jobs) == before  # proposing runs nothing
    started = run(job_tool, ctx, args)
    assert started["started"] is True and started["job"]["status"] == "active"
    job = platform.datto.jobs[started["job"]["job_uid"]]
    assert job.name == "Brainhair: Disk full alert on the NAS backup (by tech-7)"
    status = run(tool("rmm_job_status"), ctx, {"asset_id": platform.ids["server"],
                                               "job_uid": started["job"]["job_uid"]})
    assert status["job"]["status"] == "completed"
    assert status["results"]["components"][0]["stdout"] == "Check disk ran with Drive=C:"


def test_a_billing_user_cannot_run_a_job_even_if_the_tool_were_called(
        platform: Platform) -> None:
    component = platform.datto.add_component("Reboot")
    before = len(platform.datto.jobs)
    with pytest.raises(ToolError, match="Codex refused \\(403\\)"):
        run(tool("rmm_run_quick_job"), platform.context("billing"),
            {"asset_id": platform.ids["server"], "component_uid": component,
             "reason": "test"})
    assert len(platform.datto.jobs) == before


# --- Beacon --------------------------------------------------------------------------------

def test_active_tickets_come_by_section_as_the_wall_shows_them(platform: Platform) -> None:
    wall = run(tool("beacon_active_tickets"), platform.context("technician"), {})
    assert wall["view"]["slug"] == "helpdesk"
    numbers = {section["number"]: {row["number"] for row in section["tickets"]}
               for section in wall["sections"]}
    assert numbers[1] == {"INC-101", "INC-102", "INC-103", "INC-104", "INC-105"}
    assert numbers[2] == {"INC-201"} and numbers[3] == {"INC-301"}
    assert numbers[4] == {"INC-401", "INC-402", "INC-403"}
    only = run(tool("beacon_active_tickets"), platform.context("technician"),
               {"section": 2})
    assert [section["number"] for section in only["sections"]] == [2]
    assert only["sections"][0]["tickets"][0]["status"]


def test_unknown_wall_view_is_a_tool_error(platform: Platform) -> None:
    with pytest.raises(ToolError, match="Beacon refused \\(404\\)"):
        run(tool("beacon_active_tickets"), platform.context("technician"),
            {"view": "nowhere"})


def test_an_unreachable_service_is_a_clear_tool_error(platform: Platform,
                                                       tmp_path: Path) -> None:
    services = tmp_path / "services.json"
    services.write_text(json.dumps({"codex": {"url": "http://127.0.0.1:9", "port": 9}}))
    client = ServiceClient(service_name="brainhair", secret=None,
                           core_url="http://127.0.0.1:9", services_file=str(services))
    try:
        ctx = platform.context("admin")
        offline = ToolContext(user=ctx.user, services=BearerServices(client, "token"),
                              session_id="s")
        with pytest.raises(ToolError, match="Codex is unavailable"):
            run(tool("codex_list_companies"), offline, {})
    finally:
        client.http.close()
