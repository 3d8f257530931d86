"""The PHI/CJIS filter on the real Presidio engines and the real spaCy model: the seed's
before/after example, the two entity sets, identifiers that must survive, one batched spaCy pass
per call, structure and type preservation, and no network when the e-mail recogniser runs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from hivematrix.brainhair import phi
from hivematrix.brainhair.phi import (
    LEVELS,
    PhiFilter,
    get_filter,
    level_for_compliance,
    person_initials,
)


@pytest.fixture(scope="module")
def pf() -> PhiFilter:
    return get_filter()


class CountingPipeline:
    """Wraps the spaCy pipeline Presidio holds: counts calls of ``__call__`` and ``pipe`` and
    the texts sent through, delegating everything to the real pipeline."""

    def __init__(self, nlp: Any) -> None:
        self._nlp = nlp
        self.calls = 0
        self.pipes = 0
        self.texts: list[str] = []

    def __call__(self, text: str, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        self.texts.append(text)
        return self._nlp(text, *args, **kwargs)

    def pipe(self, texts: Any, *args: Any, **kwargs: Any) -> Iterator[Any]:
        self.pipes += 1
        seen = list(texts)
        self.texts.extend(str(t) if not isinstance(t, tuple) else str(t[0]) for t in seen)
        return self._nlp.pipe(seen, *args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._nlp, name)


@pytest.fixture()
def counting(pf: PhiFilter) -> Iterator[CountingPipeline]:
    real = pf.nlp_engine.nlp["en"]  # type: ignore[index]
    wrapper = CountingPipeline(real)
    pf.nlp_engine.nlp["en"] = wrapper  # type: ignore[index]
    try:
        yield wrapper
    finally:
        pf.nlp_engine.nlp["en"] = real  # type: ignore[index]


SEED_BEFORE = {
    "requester": "John Smith",
    "email": "john.smith@example.com",
    "phone": "555-123-4567",
    "description": "Need help with SSN 123-45-6789",
    "ip_address": "192.168.1.100",
}
SEED_AFTER = {
    "requester": "John S.",
    "email": "<EMAIL_ADDRESS>",
    "phone": "<PHONE_NUMBER>",
    "description": "Need help with SSN <US_SSN>",
    "ip_address": "<IP_ADDRESS>",
}


# --- the seed's example and the levels ------------------------------------------------------


def test_seed_before_after_example_is_reproduced_exactly(pf: PhiFilter) -> None:
    before = json.loads(json.dumps(SEED_BEFORE))
    after, changed = pf.filter_data(before, "phi")
    assert after == SEED_AFTER
    assert changed is True
    assert before == SEED_BEFORE, "the input is not modified in place"


def test_cjis_replaces_its_set_and_leaves_email_and_phone(pf: PhiFilter) -> None:
    after, changed = pf.filter_data(SEED_BEFORE, "cjis")
    assert changed is True
    assert after == {
        "requester": "John S.",
        "email": "john.smith@example.com",
        "phone": "555-123-4567",
        "description": "Need help with SSN <US_SSN>",
        "ip_address": "<IP_ADDRESS>",
    }
    text = ("Officer report: Mary Ann Jones (mary.jones@example.org, 617-555-0199) was seen "
            "in Boston; licence plate scan from 10.20.30.40.")
    out, changed = pf.filter_text(text, "cjis")
    assert changed
    assert "Mary J." in out and "Jones" not in out
    assert "<LOCATION>" in out and "Boston" not in out
    assert "<IP_ADDRESS>" in out
    assert "mary.jones@example.org" in out and "617-555-0199" in out


def test_none_returns_input_unchanged(pf: PhiFilter, counting: CountingPipeline) -> None:
    assert pf.filter_data(SEED_BEFORE, "none") == (SEED_BEFORE, False)
    assert pf.filter_text("John Smith, 123-45-6789", "none") == ("John Smith, 123-45-6789", False)
    assert pf.filter_many(["John Smith"], "none") == [("John Smith", False)]
    assert counting.calls == counting.pipes == 0, "no analysis at all for 'none'"


def test_unknown_level_is_refused(pf: PhiFilter) -> None:
    with pytest.raises(ValueError, match="unknown filter level"):
        pf.filter_text("John Smith", "hipaa")


@pytest.mark.parametrize(("compliance", "default", "expected"), [
    (None, "phi", "phi"), ("", "phi", "phi"), ("standard", "phi", "phi"), ("hipaa", "phi", "phi"),
    ("cjis", "phi", "cjis"), ("CJIS ", "phi", "cjis"), ("weird", "phi", "phi"),
    (None, "cjis", "cjis"), ("standard", "cjis", "cjis"), ("hipaa", "cjis", "phi"),
    (None, "none", "phi"), ("unknown", "bogus", "phi"),
])
def test_level_for_compliance(compliance: str | None, default: str, expected: str) -> None:
    assert level_for_compliance(compliance, default) == expected
    assert expected in LEVELS


# --- names ------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "expected"), [
    ("John Smith", "John S."),
    ("Mary Ann Jones", "Mary J."),
    ("Smith", "S."),
    ("Smith, John", "John S."),
    ("Dr. Peter Novak", "Peter N."),
    ("José Müller", "José M."),
    ("anne o'neil", "anne O."),
    ("...", "<PERSON>"),
])
def test_person_initials_rule(name: str, expected: str) -> None:
    assert person_initials(name) == expected


def test_names_in_free_text_become_first_name_last_initial(pf: PhiFilter) -> None:
    out, changed = pf.filter_text(
        "Mary Ann Jones called; John Smith will follow up with José Müller.", "phi")
    assert changed
    assert "Mary J." in out and "John S." in out and "José M." in out
    for surname in ("Jones", "Smith", "Müller", "Ann"):
        assert surname not in out


def test_name_fields_are_names_even_when_the_model_misses_them(pf: PhiFilter) -> None:
    data = [
        {"requester": "Marcus Murphy", "description": "Please call Marcus Murphy back.",
         "first_name": "Marcus", "last_name": "Murphy", "assignedTo": " Ingrid Lindqvist "},
        {"subject": "Follow-up", "notes": "Marcus Murphy and Ingrid Lindqvist spoke again."},
        {"company_name": "Acme Dental", "contact": "support@acme.example"},
    ]
    out, changed = pf.filter_data(data, "cjis")
    assert changed is True
    assert out[0] == {"requester": "Marcus M.", "description": "Please call Marcus M. back.",
                      "first_name": "Marcus", "last_name": "M.",
                      "assignedTo": " Ingrid L. "}
    # A name given away in one record is replaced wherever the same call quotes it.
    assert out[1] == {"subject": "Follow-up", "notes": "Marcus M. and Ingrid L. spoke again."}
    # A company's name is no person's; a contact field that is no name is analysed as text
    # (and an e-mail address is not in the CJIS set).
    assert out[2] == data[2]


def test_a_pattern_beats_the_model_on_the_same_characters(pf: PhiFilter) -> None:
    out, _ = pf.filter_text("I checked the firewall rules for 10.65.145.234 and 10.0.0.1.", "phi")
    assert out == "I checked the firewall rules for <IP_ADDRESS> and <IP_ADDRESS>."


@pytest.mark.parametrize("phone", ["555-123-4567", "(617) 555-0199", "617.555.0199",
                                   "+1 617 555 0199", "+44 20 7946 0958", "020 7946 0958",
                                   "6175550199", "+49 30 901820"])
def test_phone_shapes(pf: PhiFilter, phone: str) -> None:
    assert pf.filter_text(f"Call back on {phone} today.", "phi") == (
        "Call back on <PHONE_NUMBER> today.", True)


@pytest.mark.parametrize(("candidate", "needed"), [
    ("617-555-0199", False), ("(617) 555-0199", False), ("10.65.145.234", False),
    ("12345", False), ("6175550199", True), ("020 7946 0958", True), ("+44 20 7946 0958", True),
])
def test_the_phone_library_runs_only_for_shapes_the_patterns_do_not_cover(
        candidate: str, needed: bool) -> None:
    assert phi._needs_phone_library(candidate) is needed


def test_lower_case_words_glued_to_a_name_stay() -> None:
    text = "please call Marcus Murphy back"
    start, end = phi._trim_person(text, len("please "), len(text))
    assert text[start:end] == "Marcus Murphy"
    assert phi._trim_person("anne o'neil", 0, 11) == (0, 11)


# --- identifiers survive ------------------------------------------------------------------


def test_identifiers_survive_in_structured_fields(pf: PhiFilter) -> None:
    ticket = {
        "id": 4711, "ticket_number": "12345", "account_number": "620547",
        "company_account_number": "100234", "hostname": "ACME-DC01", "device_name": "WS-0042",
        "status": "Open", "priority": "High", "compliance_level": "hipaa",
        "billing_plan": "Gold 2026", "created_at": "2026-03-01T09:15:00Z",
        "updated_at": "2026-03-02T10:00:00+00:00", "company_id": "c-42",
        "ticketId": "900001", "requester": "John Smith",
    }
    out, changed = pf.filter_data(ticket, "phi")
    assert changed is True
    expected = dict(ticket, requester="John S.")
    assert out == expected


def test_identifiers_survive_in_free_text(pf: PhiFilter) -> None:
    text = ("Ticket #12345 (see also INC-1234 and REQ-00042) for account 620547: ACME-DC01 and "
            "WS-0042 lost the share on fs01.acme.local. Account # 100234 is unaffected; "
            "ticket number 88123 was the last one. John Smith reported it from Boston.")
    out, changed = pf.filter_text(text, "phi")
    assert changed
    for ident in ("#12345", "INC-1234", "REQ-00042", "620547", "ACME-DC01", "WS-0042",
                  "fs01.acme.local", "100234", "88123"):
        assert ident in out, (ident, out)
    assert "<US_DRIVER_LICENSE>" not in out and "<DATE_TIME>" not in out
    assert "John S." in out and "Smith" not in out and "Boston" not in out


def test_account_numbers_known_in_the_data_survive_in_its_free_text(pf: PhiFilter) -> None:
    data = [
        {"account_number": "620547", "description": "Please invoice 620547 separately."},
        {"account_number": 731902, "notes": ["Customer 731902 moved to Gold."]},
    ]
    out, _ = pf.filter_data(data, "phi")
    assert out[0]["description"] == "Please invoice 620547 separately."
    assert out[1]["notes"] == ["Customer 731902 moved to Gold."]
    # The same number without the identifier in the data is no account number to us.
    alone, _ = pf.filter_text("Please invoice 620547 separately.", "phi", allow=["620547"])
    assert alone == "Please invoice 620547 separately."


def test_plan_names_survive(pf: PhiFilter) -> None:
    out, _ = pf.filter_data({"billing_plan": "Sterling", "notes": [
        "Account 920054 is on the Gold plan.", "Moved from Sterling to Platinum tier."]}, "phi")
    assert out["notes"] == ["Account 920054 is on the Gold plan.",
                            "Moved from Sterling to Platinum tier."]


def test_dates_do_not_pass_for_identifiers(pf: PhiFilter) -> None:
    out, _ = pf.filter_text("Opened Mar-03-2026 as request 2026-03-01.", "phi")
    assert "Mar-03" not in out, "a month's name makes it no hostname"
    assert out.endswith("as request <DATE_TIME>."), "no account-number-like span in a date"
    # A phone number in a {"type", "number"} pair is a phone number.
    data = {"phones": [{"type": "mobile", "number": "617-555-0199"}]}
    assert pf.filter_data(data, "phi") == (
        {"phones": [{"type": "mobile", "number": "<PHONE_NUMBER>"}]}, True)


@pytest.mark.parametrize("address", ["jsmith@acme.local", "sarah.connor@acmedental.example",
                                     "ops+alerts@corp.internal", "jane.doe@example.co.uk"])
def test_email_addresses_on_any_domain(pf: PhiFilter, address: str) -> None:
    assert pf.filter_text(f"Mail {address} today.", "phi") == ("Mail <EMAIL_ADDRESS> today.",
                                                               True)


def test_a_person_record_s_name_is_a_name(pf: PhiFilter) -> None:
    data = {"tickets": [{
        "id": 1, "subject": "Outlook crash for Ana Lima",
        "requester": {"name": "Ana Lima", "email": "ana@x.example"},
        "contacts": [{"name": "Kenji Tanaka", "phone": "617-555-0100"}],
    }]}
    out, _ = pf.filter_data(data, "cjis")
    ticket = out["tickets"][0]
    assert ticket["requester"] == {"name": "Ana L.", "email": "ana@x.example"}
    assert ticket["contacts"] == [{"name": "Kenji T.", "phone": "617-555-0100"}]
    assert ticket["subject"] == "Outlook crash for Ana L."


def test_a_company_or_device_record_keeps_its_name(pf: PhiFilter) -> None:
    data = [
        {"account_number": "620547", "name": "Acme Dental", "compliance_level": "hipaa"},
        {"hostname": "ACME-WS07", "name": "Reception Desk West", "os": "Windows 11"},
        {"name": "Mary Jones", "email": "mary@example.com"},
    ]
    out, changed = pf.filter_data(data, "phi")
    assert out[0] == data[0] and out[1] == data[1]
    assert out[2] == {"name": "Mary J.", "email": "<EMAIL_ADDRESS>"} and changed


def test_sensitive_values_are_not_protected_by_the_allow_list(pf: PhiFilter) -> None:
    out, changed = pf.filter_text(
        "Mail jane.doe@acme-dc01.com, SSN 078-05-1120, card 4111 1111 1111 1111.", "phi")
    assert changed
    assert "jane.doe" not in out and "<EMAIL_ADDRESS>" in out
    assert "<US_SSN>" in out and "078-05-1120" not in out
    assert "<CREDIT_CARD>" in out and "4111" not in out


def test_relative_times_are_kept_dates_are_not(pf: PhiFilter) -> None:
    out, _ = pf.filter_text("It failed yesterday morning and again on March 3, 2026.", "phi")
    assert "yesterday morning" in out
    assert "March 3, 2026" not in out and "<DATE_TIME>" in out
    assert pf.filter_text("Since 2026-03-01 it fails, see 12/03/2026.", "phi") == (
        "Since <DATE_TIME> it fails, see <DATE_TIME>.", True)
    assert pf.filter_text("Call on Tuesday", "phi") == ("Call on Tuesday", False)


def test_durations_are_no_dates(pf: PhiFilter) -> None:
    assert pf.filter_text("SLA breach in 4 hours; down for 2 days, back in 30 minutes.",
                          "phi") == ("SLA breach in 4 hours; down for 2 days, back in 30 minutes.",
                                     False)


def test_no_name_has_digits_and_support_levels_are_no_names(pf: PhiFilter) -> None:
    text = "Windows update KB5034441 failed; escalated to Tier 2 and then to Level 3."
    assert pf.filter_text(text, "phi") == (text, False)


def test_company_names_known_in_the_data_survive_in_its_free_text(pf: PhiFilter) -> None:
    data = {"company": {"account_number": "620547", "name": "Acme Dental"},
            "notes": ["Customer: Acme Dental (acct 620547).", "Called by John Smith."]}
    out, _ = pf.filter_data(data, "phi")
    assert out == {"company": {"account_number": "620547", "name": "Acme Dental"},
                   "notes": ["Customer: Acme Dental (acct 620547).", "Called by John S."]}


def test_a_bare_number_is_no_date(pf: PhiFilter) -> None:
    assert pf.filter_text("The public key 123456789 rotated.", "phi") == (
        "The public key 123456789 rotated.", False)


@pytest.mark.parametrize(("text", "expected"), [
    ("Her passport 912803456 expired.", "Her passport <US_PASSPORT> expired."),
    ("Driver licence D1234567 on file.", "Driver licence <US_DRIVER_LICENSE> on file."),
    ("DEA number AB1234563 for the doctor", "DEA number <MEDICAL_LICENSE> for the doctor"),
    ("Card 4111 1111 1111 1111 declined", "Card <CREDIT_CARD> declined"),
])
def test_weak_patterns_count_with_their_context_word(pf: PhiFilter, text: str,
                                                     expected: str) -> None:
    assert pf.filter_text(text, "phi") == (expected, True)


def test_field_names_are_context(pf: PhiFilter) -> None:
    data = {"drivers_license": "D1234567", "passport_number": "912803456",
            "phone_number": "6175550199", "asset_serial": "D1234567"}
    out, _ = pf.filter_data(data, "phi")
    assert out == {"drivers_license": "<US_DRIVER_LICENSE>", "passport_number": "<US_PASSPORT>",
                   "phone_number": "<PHONE_NUMBER>", "asset_serial": "D1234567"}


# --- batching -----------------------------------------------------------------------------


def _tickets(n: int) -> list[dict[str, Any]]:
    first = ["John", "Mary", "Peter", "Aisha", "Luis", "Grace", "Tomas", "Ingrid"]
    last = ["Smith", "Jones", "Novak", "Khan", "Ortega", "Hopper", "Berg", "Larsen"]
    return [{
        "id": i, "ticket_number": str(50000 + i), "status": "Open",
        "requester": f"{first[i % 8]} {last[(i * 3) % 8]}",
        "subject": f"Printer on WS-{i:04d} offline",
        "description": (f"{first[i % 8]} {last[(i * 3) % 8]} says ticket #{40000 + i} is "
                        f"back; call {first[(i + 1) % 8]} {last[(i + 5) % 8]} at "
                        f"617-555-0{100 + i % 99}."),
    } for i in range(n)]


def test_a_list_of_200_tickets_is_one_spacy_pass(pf: PhiFilter,
                                                  counting: CountingPipeline) -> None:
    tickets = _tickets(200)
    out, changed = pf.filter_data(tickets, "phi")
    assert changed is True
    assert counting.pipes == 1 and counting.calls == 0
    # Deduplicated: each distinct string is analysed once ("Open" is a status: never).
    assert len(counting.texts) == len(set(counting.texts))
    assert "Open" not in counting.texts
    for i, (before, after) in enumerate(zip(tickets, out, strict=True)):
        first, surname = before["requester"].split()
        assert after["requester"] == f"{first} {surname[0]}."
        assert surname not in after["description"]
        assert f"ticket #{40000 + i} is back" in after["description"]
        assert "<PHONE_NUMBER>" in after["description"]
        assert after["subject"] == before["subject"]
        assert after["id"] == before["id"] and after["ticket_number"] == before["ticket_number"]


def test_filter_many_is_one_pass_and_keeps_order(pf: PhiFilter,
                                                  counting: CountingPipeline) -> None:
    texts = ["John Smith called.", "", "   ", "John Smith called.", "Mary Jones too.", "---"]
    out = pf.filter_many(texts, "phi")
    assert out == [("John S. called.", True), ("", False), ("   ", False),
                   ("John S. called.", True), ("Mary J. too.", True), ("---", False)]
    assert counting.pipes == 1 and counting.calls == 0
    assert sorted(counting.texts) == ["John Smith called.", "Mary Jones too."]


def test_nothing_worth_analysing_means_no_pass(pf: PhiFilter, counting: CountingPipeline) -> None:
    assert pf.filter_many(["", " ", "-- //"], "phi") == [("", False), (" ", False),
                                                         ("-- //", False)]
    assert pf.filter_data({"id": "x", "n": 3, "ok": True, "none": None}, "phi") == (
        {"id": "x", "n": 3, "ok": True, "none": None}, False)
    assert counting.pipes == counting.calls == 0


def test_a_helper_process_shares_big_batches_with_the_same_results(pf: PhiFilter) -> None:
    tickets = _tickets(120)
    texts = [t["description"] for t in tickets]
    expected = pf.filter_many(texts, "phi")
    two = PhiFilter(processes=2)
    try:
        [pid] = two.helper_pids
        assert pid != os.getpid()
        assert Path(f"/proc/{pid}").exists()
        real = two.nlp_engine.nlp["en"]  # type: ignore[index]
        local = CountingPipeline(real)
        two.nlp_engine.nlp["en"] = local  # type: ignore[index]
        assert two.filter_many(texts, "phi") == expected
        # The calling process ran the model on part of the batch only; the helper did the rest.
        assert local.pipes == 1 and 30 < len(local.texts) < 90
        assert two.helper_pids == [pid]
        two.nlp_engine.nlp["en"] = real  # type: ignore[index]
        assert two.filter_many(texts[:3], "phi") == expected[:3]  # small: not shared
        # A helper that dies mid-life costs speed, never results.
        os.kill(pid, signal.SIGKILL)
        assert two.filter_many(texts, "phi") == expected
        assert two.helper_pids == []
    finally:
        two.close()
    assert two.helper_pids == []


def test_a_forked_child_does_not_use_its_parent_s_helper() -> None:
    two = PhiFilter(processes=2)
    try:
        texts = [t["description"] for t in _tickets(40)]
        expected = two.filter_many(texts, "phi")
        read, write = os.pipe()
        child = os.fork()
        if child == 0:  # pragma: no cover - runs in the child
            os.close(read)
            ok = two.filter_many(texts, "phi") == expected and two.helper_pids == []
            os.write(write, b"1" if ok else b"0")
            os._exit(0)
        os.close(write)
        assert os.read(read, 1) == b"1"
        os.close(read)
        os.waitpid(child, 0)
        # The parent's helper is untouched and still in use.
        assert len(two.helper_pids) == 1
        assert two.filter_many(texts, "phi") == expected
    finally:
        two.close()


def test_closing_stops_the_helper() -> None:
    two = PhiFilter(processes=2)
    [pid] = two.helper_pids
    two.close()
    assert not Path(f"/proc/{pid}").exists(), "stopped and reaped"


# --- structure, types, unicode ------------------------------------------------------------


def test_nested_structures_and_non_string_leaves(pf: PhiFilter) -> None:
    data = {
        "company": {"name": "Acme Dental", "contacts": [
            {"name": "John Smith", "phone": "617-555-0142", "vip": True, "score": 4.5},
            {"name": "Mary Ann Jones", "phone": None, "tags": ("billing", "Mary Ann Jones")},
        ]},
        "count": 2, "ratio": 0.5, "flag": False, "nothing": None, "empty": "", "list": [],
    }
    out, changed = pf.filter_data(data, "phi")
    assert changed is True
    contacts = out["company"]["contacts"]
    assert contacts[0] == {"name": "John S.", "phone": "<PHONE_NUMBER>", "vip": True,
                           "score": 4.5}
    assert contacts[1]["name"] == "Mary J." and contacts[1]["phone"] is None
    assert contacts[1]["tags"] == ("billing", "Mary J.")
    assert isinstance(contacts[1]["tags"], tuple)
    for key in ("count", "ratio", "flag", "nothing", "empty", "list"):
        assert out[key] == data[key] and type(out[key]) is type(data[key])
    # Plain leaves at the top are returned as they are.
    assert pf.filter_data(42, "phi") == (42, False)
    assert pf.filter_data(None, "phi") == (None, False)
    assert pf.filter_data("John Smith", "phi") == ("John S.", True)


@pytest.mark.parametrize("level", ["phi", "cjis"])
def test_filtered_text_filtered_again_is_unchanged(pf: PhiFilter, level: str) -> None:
    # History stored filtered is filtered again at another level: placeholders and "First L."
    # names stay as they are.
    for text in ["Call <PERSON> at <PHONE_NUMBER> in <LOCATION> on <DATE_TIME>.",
                 "Mail <EMAIL_ADDRESS>, SSN <US_SSN>, card <CREDIT_CARD>, host <IP_ADDRESS>.",
                 "John S. and Mary J. from <LOCATION> wrote to <EMAIL_ADDRESS>."]:
        assert pf.filter_text(text, level) == (text, False)


def test_changed_flag(pf: PhiFilter) -> None:
    assert pf.filter_text("The printer jammed again.", "phi") == ("The printer jammed again.",
                                                                  False)
    assert pf.filter_text("Reset the VPN for John Smith.", "phi") == (
        "Reset the VPN for John S.", True)
    assert pf.filter_data({"a": ["fine", {"b": "all good"}]}, "phi")[1] is False
    assert pf.filter_data({"a": ["fine", {"b": "ask John Smith"}]}, "phi")[1] is True


def test_unicode_and_emoji_are_preserved(pf: PhiFilter) -> None:
    text = "Status ✓ 🚀 — the café in São Paulo called; Zoë Brown wrote 日本語のテキスト."
    out, changed = pf.filter_text(text, "phi")
    assert changed
    assert out == "Status ✓ 🚀 — the café in <LOCATION> called; Zoë B. wrote 日本語のテキスト."
    assert pf.filter_text("", "phi") == ("", False)


def test_long_text_is_filtered_in_pieces(pf: PhiFilter) -> None:
    block = "The backup on ACME-FS01 finished without errors. " * 300
    text = block + "John Smith approved it. " + block + "Mary Jones checked it."
    assert len(text) > phi.MAX_CHUNK
    out, changed = pf.filter_text(text, "phi")
    assert changed
    assert "John S. approved it." in out and "Mary J. checked it." in out
    assert out.count("ACME-FS01") == 600
    assert len(out) == len(text) - len("mith") - len("ones") + 2  # two "." added


@pytest.mark.parametrize("blob", ["a" * 20000, "a-" * 10000, "ab-ab1-" * 3000, "a." * 10000,
                                  "1-" * 10000, "account" + " " * 20000 + "x"])
def test_allow_patterns_take_linear_time_on_long_runs(blob: str) -> None:
    # A pasted blob (base64, a log line) must not make a pattern backtrack quadratically:
    # the first versions took over 5 s on some of these.
    start = time.perf_counter()
    phi.allowed_spans(blob, ["620547"])
    assert time.perf_counter() - start < 1.0


def test_get_filter_is_one_per_process() -> None:
    assert get_filter() is get_filter()


def test_concurrent_calls_from_threads_give_the_sequential_results(pf: PhiFilter) -> None:
    batches = [[t["description"] for t in _tickets(40)[i::4]] for i in range(4)]
    expected = [pf.filter_many(batch, "phi") for batch in batches]
    with ThreadPoolExecutor(max_workers=4) as pool:
        for _ in range(2):
            got = list(pool.map(lambda b: pf.filter_many(b, "phi"), batches))
            assert got == expected


def test_the_filter_is_built_once_under_concurrent_first_use() -> None:
    code = textwrap.dedent("""
        from concurrent.futures import ThreadPoolExecutor
        from hivematrix.brainhair import phi
        with ThreadPoolExecutor(max_workers=4) as pool:
            filters = list(pool.map(lambda _: phi.get_filter(), range(8)))
        assert len({id(f) for f in filters}) == 1
        print(filters[0].filter_text("John Smith", "phi")[0])
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().splitlines()[-1] == "John S."


# --- no network ---------------------------------------------------------------------------

NO_NETWORK_SCRIPT = textwrap.dedent("""
    import json, socket, sys
    attempts = []
    def refuse(*args, **kwargs):
        attempts.append(repr(args[:2]))
        raise OSError("network disabled in this test")
    socket.socket.connect = refuse
    socket.socket.connect_ex = refuse
    socket.create_connection = refuse
    socket.getaddrinfo = refuse
    if sys.argv[1:] == ["tldextract-first"]:
        import tldextract  # imported before the filter, without our environment variable
    from hivematrix.brainhair.phi import get_filter
    import tldextract.tldextract as tld
    out = get_filter().filter_text("Write to jane.doe@example.co.uk or ops@acme.com.au", "phi")
    print(json.dumps({"attempts": attempts, "out": out[0],
                      "urls": list(tld.TLD_EXTRACTOR.suffix_list_urls)}))
""")


@pytest.mark.parametrize("order", ["filter-first", "tldextract-first"])
def test_the_filter_makes_no_network_call(tmp_path: Path, order: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TLDEXTRACT")}
    # An empty tldextract cache: a filter that needed the public suffix list would fetch it.
    env["TLDEXTRACT_CACHE"] = str(tmp_path / "tld-cache")
    env["HOME"] = str(tmp_path)
    env["XDG_CACHE_HOME"] = str(tmp_path / "cache")
    proc = subprocess.run([sys.executable, "-c", NO_NETWORK_SCRIPT, order], env=env,
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["attempts"] == []
    assert result["urls"] == []
    assert result["out"] == "Write to <EMAIL_ADDRESS> or <EMAIL_ADDRESS>"


# --- terms a turn protects beyond one call -------------------------------------------------

def test_protected_terms_are_the_identifiers_and_company_names_of_a_structure(
        pf: PhiFilter) -> None:
    company = {"account_number": "620547", "name": "Acme Dental", "billing_plan": "Gold",
               "contacts": [{"name": "Dana Reyes", "email": "dana@acme.example"}],
               "assets": [{"hostname": "ACME-DC01"}]}
    terms = pf.protected_terms(company)
    assert {"620547", "Acme Dental", "Gold", "ACME-DC01"} <= terms
    assert "Dana Reyes" not in terms and "dana@acme.example" not in terms
    # A later call (the model's reply) keeps them, and still shortens the person.
    text, _ = pf.filter_text("Acme Dental (620547) is on Gold; Dana Reyes runs ACME-DC01.",
                             "phi", allow=terms)
    assert text.startswith("Acme Dental (620547) is on Gold; Dana R. runs ACME-DC01")


def test_thousands_of_protected_company_names_keep_the_ones_mentioned(pf: PhiFilter) -> None:
    names = {f"Client {number} Holdings" for number in range(5_000)} | {"Beta Law"}
    text, _ = pf.filter_text("Reset the VPN for Beta Law and call Maria Lopez.", "phi",
                             allow=names)
    assert "Beta Law" in text and "Maria L." in text and "Lopez" not in text
    # Without the names, the small model takes the client for a person.
    bare, _ = pf.filter_text("Reset the VPN for Beta Law and call Maria Lopez.", "phi")
    assert "Lopez" not in bare


def test_filter_data_reports_the_terms_it_protected(pf: PhiFilter) -> None:
    company = {"account_number": "620547", "name": "Acme Dental", "billing_plan": "Gold",
               "contacts": [{"name": "Dana Reyes"}]}
    found: set[str] = set()
    pf.filter_data(company, "phi", found=found)
    assert found == pf.protected_terms(company)
