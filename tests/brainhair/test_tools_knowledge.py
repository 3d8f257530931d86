"""KnowledgeTree tools against a real KnowledgeTree on FalkorDB, with users' own tokens."""

from __future__ import annotations

from typing import Any

import pytest

from hivematrix.brainhair.tools import knowledge
from hivematrix.brainhair.tools.base import Tool, ToolError
from tests.brainhair.services import ACME, BETA, Platform, ok, platform, propose, run

__all__ = ["platform"]

TOOLS = {tool.name: tool for tool in knowledge.TOOLS}


def tool(name: str) -> Tool:
    return TOOLS[name]


def item(platform: Platform, item_id: str) -> Any:
    return ok(platform.test_client("knowledgetree").get(f"/api/items/{item_id}",
                                                        headers=platform.headers()))


def children(platform: Platform, item_id: str) -> list[str]:
    found = ok(platform.test_client("knowledgetree").get(f"/api/items/{item_id}/children",
                                                         headers=platform.headers()))
    return [child["name"] for child in found]


def test_search_finds_articles_with_their_folder(platform: Platform) -> None:
    found = run(tool("kt_search"), platform.context("technician"), {"query": "printer jams"})
    assert [hit["name"] for hit in found["results"]] == ["Printers"]
    assert found["results"][0]["folder_path"] == "KnowledgeTree / Companies / Acme Dental"
    assert found["count"] == 1 and found["truncated"] is False
    inside = run(tool("kt_search"), platform.context("technician"),
                 {"query": "reset", "start": platform.ids["runbooks"]})
    assert [hit["name"] for hit in inside["results"]] == ["VPN reset"]


def test_browse_and_read(platform: Platform) -> None:
    ctx = platform.context("technician")
    top = run(tool("kt_browse"), ctx, {})
    assert [child["name"] for child in top["children"]] == ["Companies", "Runbooks"]
    acme = run(tool("kt_browse"), ctx, {"item_id": platform.ids["acme_folder"]})
    assert acme["path"].endswith("Companies / Acme Dental")
    assert [child["name"] for child in acme["children"]] == ["Printers"]
    article = run(tool("kt_read"), ctx, {"item_id": platform.ids["printers"]})
    assert article["content"] == "The front desk printer jams: open tray 2."
    assert article["path"].endswith("Acme Dental / Printers")
    with pytest.raises(ToolError, match=r"KnowledgeTree refused \(404\)"):
        run(tool("kt_read"), ctx, {"item_id": "no-such-item"})


def test_a_companys_context(platform: Platform) -> None:
    ctx = platform.context("technician")
    context = run(tool("kt_company_context"), ctx, {"account_number": ACME})
    assert "open tray 2" in context["context"]
    assert [source["name"] for source in context["sources"]] == ["Printers"]
    assert context["truncated"] is False
    # A client user asks for their own company only.
    with pytest.raises(ToolError, match=r"refused \(404\)"):
        run(tool("kt_company_context"), platform.context("client", account_number=BETA),
            {"account_number": ACME})


def test_an_article_is_proposed_then_created(platform: Platform) -> None:
    ctx = platform.context("technician", preferred_username="tech-3")
    args = {"parent_id": platform.ids["runbooks"], "name": "Printer driver",
            "content": "Install the PCL6 driver from the vendor site."}
    proposal = propose(tool("kt_create_article"), ctx, args)
    assert proposal.action == "Create the article 'Printer driver' in KnowledgeTree / Runbooks"
    assert proposal.details["folder"] == "KnowledgeTree / Runbooks"
    assert proposal.details["content"] == args["content"]
    assert "Printer driver" not in children(platform, platform.ids["runbooks"])
    created = run(tool("kt_create_article"), ctx, args)["created"]
    stored = item(platform, created["id"])
    assert stored["content"] == args["content"] and stored["created_by"] == "tech-3"
    with pytest.raises(ToolError, match="named 'Printer driver' already"):
        propose(tool("kt_create_article"), ctx, args)
    with pytest.raises(ToolError, match="is an article, not a folder"):
        propose(tool("kt_create_article"), ctx, {**args, "parent_id": created["id"]})


def test_an_article_update_shows_before_and_after(platform: Platform) -> None:
    ctx = platform.context("admin")
    args = {"item_id": platform.ids["vpn"],
            "content": "Reset the VPN tunnel, then renew the client certificate."}
    proposal = propose(tool("kt_update_article"), ctx, args)
    assert proposal.details["content before"] == "Reset the VPN tunnel from the firewall UI."
    assert proposal.details["content after"] == args["content"]
    assert proposal.details["length"] == f"42 → {len(args['content'])} characters"
    assert item(platform, platform.ids["vpn"])["content"].endswith("firewall UI.")
    run(tool("kt_update_article"), ctx, args)
    assert item(platform, platform.ids["vpn"])["content"] == args["content"]


def test_a_billing_users_approved_edit_is_refused_by_knowledgetree(
        platform: Platform) -> None:
    args = {"item_id": platform.ids["printers"], "content": "overwritten"}
    with pytest.raises(ToolError, match=r"KnowledgeTree refused \(403\)"):
        run(tool("kt_update_article"), platform.context("billing"), args)
    assert item(platform, platform.ids["printers"])["content"].startswith("The front desk")


def test_folders_are_not_edited_through_the_assistant(platform: Platform) -> None:
    with pytest.raises(ToolError, match="articles only"):
        propose(tool("kt_update_article"), platform.context("admin"),
                {"item_id": platform.ids["runbooks"], "name": "Renamed"})
