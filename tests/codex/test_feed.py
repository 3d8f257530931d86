"""The ticket wall's sections and SLA texts, at every threshold's edge, with a frozen clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from hivematrix.codex import feed

NOW = datetime(2026, 11, 30, 15, 0, tzinfo=UTC)


def ticket(**fields: Any) -> dict[str, Any]:
    return {"external_id": "1", "status": "open", "priority": "medium",
            "updated_at": NOW - timedelta(hours=1), **fields}


def sla(**fields: Any) -> tuple[int, str, str] | None:
    result = feed.classify(ticket(**fields), NOW)
    return None if result is None else (result.section, result.text, result.css_class)


@pytest.mark.parametrize("status", sorted(feed.EXCLUDED))
def test_finished_tickets_never_show(status: str) -> None:
    assert sla(status=status) is None


def test_customer_replied_wins_even_when_overdue() -> None:
    assert sla(status="customer_replied", updated_at=NOW - timedelta(days=9)) == (
        2, "Customer Replied (9d ago)", "sla-warning")


@pytest.mark.parametrize(("priority", "limit"), [
    ("urgent", timedelta(minutes=30)), ("high", timedelta(days=2)),
    ("medium", timedelta(days=3)), ("low", timedelta(days=4)), ("odd", timedelta(days=3))])
def test_update_overdue_exactly_after_the_priority_limit(priority: str, limit: timedelta) -> None:
    at_limit = sla(status="pending", priority=priority, updated_at=NOW - limit,
                   first_responded_at=NOW - limit)
    assert at_limit is not None and at_limit[0] == 1  # at the limit: not yet overdue
    over = sla(status="pending", priority=priority,
               updated_at=NOW - limit - timedelta(seconds=1))
    assert over is not None
    assert over[0] == 3 and over[2] == "sla-critical"
    assert over[1].startswith("Update Overdue (Pending, ")


@pytest.mark.parametrize(("remaining", "text", "css"), [
    (None, "No FR Due Date", "sla-none"),
    (timedelta(seconds=-1), "FR Overdue by 1 sec", "sla-overdue"),
    (timedelta(0), "0 sec for FR", "sla-critical"),
    (timedelta(hours=4) - timedelta(seconds=1), "4.0 hours for FR", "sla-critical"),
    (timedelta(hours=4), "4.0 hours for FR", "sla-warning"),
    (timedelta(hours=12) - timedelta(seconds=1), "12.0 hours for FR", "sla-warning"),
    (timedelta(hours=12), "12.0 hours for FR", "sla-normal"),
    (timedelta(minutes=59), "59 min for FR", "sla-critical"),
    (timedelta(days=2), "2.0 days for FR", "sla-normal"),
    (timedelta(days=-3), "FR Overdue by 3.0 days", "sla-overdue"),
])
def test_first_response_sla_edges(remaining: timedelta | None, text: str, css: str) -> None:
    due = None if remaining is None else NOW + remaining
    assert sla(status="open", fr_due_by=due) == (1, text, css)


def test_service_requests_use_the_due_date() -> None:
    assert sla(status="open", ticket_type="Service Request", fr_due_by=NOW,
               due_by=NOW + timedelta(hours=5)) == (1, "5.0 hours for Due", "sla-warning")
    assert sla(status="open", ticket_type="Service Request") == (1, "No Due Date", "sla-none")


def test_first_response_met() -> None:
    assert sla(status="update_needed", first_responded_at=NOW - timedelta(hours=2)) == (
        1, "Update Needed (FR Met)", "sla-responded")


def test_section_four_kinds() -> None:
    assert sla(status="waiting_customer", agent_responded_at=NOW - timedelta(hours=5)) == (
        4, "Waiting on Customer (Agent: 5h ago)", "sla-responded")
    assert sla(status="on_hold") == (4, "On Hold (1h ago)", "sla-none")
    assert sla(status="pending_hubspot", updated_at=NOW - timedelta(days=30)) == (
        4, "Pending Hubspot (30d ago)", "sla-none")
    assert sla(status="scheduled") == (4, "Scheduled (1h ago)", "sla-in-progress")


def test_friendly_times() -> None:
    assert feed.ago(NOW - timedelta(seconds=59), NOW) == "Just now"
    assert feed.ago(NOW - timedelta(minutes=1), NOW) == "1m ago"
    assert feed.ago(NOW - timedelta(hours=23, minutes=59), NOW) == "23h ago"
    assert feed.days_old(NOW - timedelta(hours=23), NOW) == "Today"
    assert feed.days_old(NOW - timedelta(days=1), NOW) == "1 day old"
    assert feed.days_old(NOW - timedelta(days=12), NOW) == "12 days old"


def test_build_sorts_by_priority_then_oldest_update() -> None:
    tickets = [
        ticket(external_id="a", priority="low", priority_raw=1),
        ticket(external_id="b", priority="high", priority_raw=3,
               updated_at=NOW - timedelta(minutes=5)),
        ticket(external_id="c", priority="high", priority_raw=3,
               updated_at=NOW - timedelta(hours=3)),
        ticket(external_id="d", status="closed"),
        ticket(external_id="f", priority="urgent", priority_raw=8,  # a ConnectWise id
               updated_at=NOW - timedelta(minutes=10)),
        ticket(external_id="e", status="customer_replied"),
    ]
    result = feed.build(tickets, NOW, last_sync_time=NOW - timedelta(minutes=4))
    assert [item["id"] for item in result["section1"]] == ["f", "c", "b", "a"]
    assert [item["id"] for item in result["section2"]] == ["e"]
    assert result["total_active"] == 5
    assert result["last_sync_time"] == NOW - timedelta(minutes=4)
    assert result["section1"][0]["agent_name"] == "Unassigned"
