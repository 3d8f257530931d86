"""wall.py on its own: the view split, the agent filter, rows, sort keys and links."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from hivematrix.beacon import wall
from hivematrix.beacon.settings import View

NOW = datetime(2025, 6, 2, 12, 0, tzinfo=UTC)
HELPDESK = View("helpdesk", "Helpdesk", frozenset(), others=True)
PROJECTS = View("projects", "Projects", frozenset({"10", "11"}))
ONSITE = View("onsite", "On-site", frozenset({"20"}))
EMPTY = View("empty", "Empty", frozenset())
VIEWS = (HELPDESK, PROJECTS, ONSITE, EMPTY)


def item(ticket_id: str, **fields: Any) -> dict[str, Any]:
    return {"id": ticket_id, "ticket_number": f"INC-{ticket_id}", "subject": f"Ticket {ticket_id}",
            "group_id": None, "responder_id": None, "sla_class": "sla-normal",
            "priority": "medium", **fields}


FEED = {
    "section1": [item("1", group_id="10", responder_id="7"), item("2"),
                 item("3", group_id=20, responder_id=8), item("4", group_id="99")],
    "section2": [item("5", group_id="11", responder_id="7"), item("6", responder_id="7")],
    "section3": [item("7", group_id="", responder_id="")],
    "section4": [],
    "last_sync_time": "2025-06-02T11:50:00+00:00",
}


def ids(sections: dict[int, list[dict[str, Any]]]) -> dict[int, list[str]]:
    return {number: [entry["id"] for entry in items] for number, items in sections.items()}


def test_a_view_holds_its_groups_and_the_catch_all_holds_everything_else() -> None:
    assert ids(wall.split(FEED, PROJECTS, VIEWS)) == {1: ["1"], 2: ["5"], 3: [], 4: []}
    # Group ids compare as text: Codex may send a number.
    assert ids(wall.split(FEED, ONSITE, VIEWS)) == {1: ["3"], 2: [], 3: [], 4: []}
    # Unclaimed groups, no group and an empty group all land on the catch-all view.
    assert ids(wall.split(FEED, HELPDESK, VIEWS)) == {1: ["2", "4"], 2: ["6"], 3: ["7"], 4: []}
    assert ids(wall.split(FEED, EMPTY, VIEWS)) == {1: [], 2: [], 3: [], 4: []}


def test_every_ticket_is_on_exactly_one_view() -> None:
    every = [entry for number in wall.SECTIONS for entry in FEED[f"section{number}"]]
    for entry in every:
        assert [view.slug for view in VIEWS if wall.belongs(entry, view, VIEWS)] in (
            ["helpdesk"], ["projects"], ["onsite"])


def test_a_catch_all_view_keeps_groups_it_names_itself() -> None:
    desk = View("desk", "Desk", frozenset({"10"}), others=True)
    views = (desk, View("other", "Other", frozenset({"11"})))
    assert ids(wall.split(FEED, desk, views))[2] == ["6"]
    assert ids(wall.split(FEED, desk, views))[1] == ["1", "2", "3", "4"]


def test_the_agent_filter_narrows_after_the_split_and_knows_unassigned() -> None:
    assert ids(wall.split(FEED, HELPDESK, VIEWS, "7")) == {1: [], 2: ["6"], 3: [], 4: []}
    assert ids(wall.split(FEED, PROJECTS, VIEWS, "7")) == {1: ["1"], 2: ["5"], 3: [], 4: []}
    assert ids(wall.split(FEED, ONSITE, VIEWS, "8")) == {1: ["3"], 2: [], 3: [], 4: []}
    assert ids(wall.split(FEED, HELPDESK, VIEWS, wall.UNASSIGNED)) == {
        1: ["2", "4"], 2: [], 3: ["7"], 4: []}
    assert ids(wall.split(FEED, HELPDESK, VIEWS, "nobody")) == {1: [], 2: [], 3: [], 4: []}
    assert wall.matches_agent(item("x", responder_id=7), "7")
    assert wall.matches_agent(item("x"), None)


def test_codex_order_is_kept_within_a_section() -> None:
    feed = {"section1": [item(str(n)) for n in (5, 3, 9, 1)]}
    assert ids(wall.split(feed, HELPDESK, VIEWS))[1] == ["5", "3", "9", "1"]


def test_agent_choices_are_the_active_agents_of_the_configured_psa_by_name() -> None:
    agents = [{"external_id": "2", "name": "zoe", "active": True, "source": "freshservice"},
              {"external_id": "1", "name": "Adam", "active": True, "source": "freshservice"},
              {"external_id": "3", "name": "Gone", "active": False, "source": "freshservice"},
              {"external_id": "4", "name": "Other PSA", "active": True, "source": "connectwise"},
              {"external_id": "", "name": "No id", "active": True}]
    assert wall.agent_choices(agents, "freshservice") == [
        {"id": "1", "name": "Adam"}, {"id": "2", "name": "zoe"}]
    assert len(wall.agent_choices(agents, None)) == 3


def test_a_row_has_texts_classes_and_sort_keys() -> None:
    entry = item("42", subject="  A   very " + "long " * 20, priority="urgent",
                 priority_text="Urgent", sla_class="sla-overdue", sla_text="FR Overdue by 2 min",
                 fr_due_by="2025-06-02T11:58:00Z", updated_at="2025-06-02T09:00:00+00:00",
                 created_at="2025-05-30T12:00:00", created_days_old="3 days old",
                 requester_name="Dana", agent_name=None, description_text="line 1\n\nline 2",
                 requester_email="dana@example.test", responder_id="7")
    found = wall.row(entry, NOW, None)
    assert found["subject"].startswith("A very long") and len(found["subject"]) == 60
    assert found["subject"].endswith("\u2026")
    assert found["subject_full"] == entry["subject"]
    assert found["sla_tone"] == "status-text--danger" and found["sla"] == "sla-overdue"
    assert found["priority_badge"] == "badge--danger"
    assert found["due"] == "FR due 2025-06-02 11:58 UTC"
    assert found["updated"] == "3h ago" and found["age"] == "3 days old"
    assert found["description"] == "line 1\n\nline 2"
    assert found["agent"] == "Unassigned" and found["agent_id"] == "7"
    assert found["sort"] == {"number": "INC-42", "subject": entry["subject"].casefold(),
                             "requester": "dana", "agent": "", "priority": "-4", "sla": "0",
                             "updated": str(3 * 3600), "age": str(3 * 86400)}
    assert found["url"] is None


def test_a_display_row_leaves_out_the_description_and_email() -> None:
    entry = item("1", description_text="secret", requester_email="a@example.test")
    shown = wall.row(entry, NOW, None, display=True)
    assert "description" not in shown and "requester_email" not in shown
    assert "secret" not in str(shown)


@pytest.mark.parametrize(("sla", "tone"), [
    ("sla-overdue", "status-text--danger"), ("sla-critical", "status-text--danger"),
    ("sla-warning", "status-text--warning"), ("sla-normal", "status-text--success"),
    ("sla-none", "status-text--muted"), ("sla-surprise", "status-text--muted")])
def test_sla_classes_map_to_the_red_orange_green_tones(sla: str, tone: str) -> None:
    assert wall.row(item("1", sla_class=sla), NOW, None)["sla_tone"] == tone


def test_sort_keys_order_by_urgency_and_time() -> None:
    rows = [wall.row(item(str(n), sla_class=sla, priority=priority,
                          updated_at=(NOW - timedelta(minutes=n)).isoformat()), NOW, None)
            for n, sla, priority in ((1, "sla-normal", "low"), (2, "sla-overdue", "urgent"),
                                     (3, "sla-warning", "high"))]
    by = {column: [r["id"] for r in sorted(rows, key=lambda r, c=column: int(r["sort"][c]))]
          for column in ("sla", "priority", "updated")}
    assert by == {"sla": ["2", "3", "1"], "priority": ["2", "3", "1"],
                  "updated": ["1", "2", "3"]}
    assert wall.row(item("1"), NOW, None)["sort"]["updated"] == ""  # unknown: sorts last


@pytest.mark.parametrize(("template", "expected"), [
    ("https://msp.freshservice.com/a/tickets/{id}", "https://msp.freshservice.com/a/tickets/5%2F6"),
    ("http://cw.example/ticket?id={number}", "http://cw.example/ticket?id=INC%20%3C7%3E"),
    ("javascript:alert(1)//{id}", None), ("/relative/{id}", None), ("https:///{id}", None),
    ("", None), (None, None)])
def test_ticket_links_come_from_the_template_and_only_as_web_addresses(
        template: str | None, expected: str | None) -> None:
    entry = item("5/6", ticket_number="INC <7>")
    assert wall.ticket_url(template, entry) == expected


def test_the_sync_indicator_turns_stale_after_the_limit() -> None:
    limit = timedelta(minutes=15)
    assert wall.sync_state(NOW - timedelta(minutes=14), NOW, limit) == {
        "text": "Last synced 14m ago", "stale": False,
        "at": (NOW - timedelta(minutes=14)).isoformat()}
    assert wall.sync_state(NOW - timedelta(minutes=16), NOW, limit)["stale"] is True
    assert wall.sync_state(None, NOW, limit) == {"text": "Tickets never synced", "stale": True,
                                                 "at": None}


def test_the_board_has_four_titled_sections_and_a_total() -> None:
    board = wall.board(FEED, HELPDESK, VIEWS, agent_id=None, url_template=None, now=NOW,
                       stale_after=timedelta(minutes=15))
    assert [section["title"] for section in board["sections"]] == [
        "Open Helpdesk Tickets", "Customer Replied", "Needs Agent / Update Overdue",
        "Other Active Helpdesk Tickets"]
    assert board["total"] == 4 and board["sync"]["text"] == "Last synced 10m ago"
    blank = wall.blank_row()
    assert set(blank) == set(board["sections"][0]["rows"][0])
    assert set(wall.blank_row(display=True)) == set(
        wall.board(FEED, HELPDESK, VIEWS, agent_id=None, url_template=None, now=NOW,
                   stale_after=timedelta(minutes=15), display=True)["sections"][0]["rows"][0])
