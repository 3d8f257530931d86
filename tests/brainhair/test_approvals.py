"""Approvals cannot be forged: only the owner of the session decides, once, in time; a
guessed id or another user's approval is not found; service tokens never decide; every
decision and expiry is audited."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest

from hivematrix.brainhair import approvals, sessions
from hivematrix.brainhair.errors import BrainhairError
from hivematrix.brainhair.models import Approval, AuditEvent
from hivematrix.common.db import Database, utcnow

ANN = {"sub": "user-ann", "preferred_username": "ann", "permission_level": "admin"}
BOB = {"sub": "user-bob", "preferred_username": "bob", "permission_level": "admin"}
SERVICE = {"sub": "service:brainhair", "type": "service", "calling_service": "brainhair"}


def new_approval(database: Database, user: dict[str, str] = ANN, seconds: float = 120,
                 **extra: object) -> Approval:
    with database.transaction() as db:
        session = sessions.create(db, user)
        return approvals.create(
            db, session_id=session.id, user=user, tool="set_rate",
            action="Set the per-user rate of 620547 to 45.00",
            details={"account_number": "620547", "contact": "Call John Smith on 555-867-5309"},
            tool_input={"account_number": "620547", "rate": "45.00"}, seconds=seconds,
            level="phi", **extra)  # type: ignore[arg-type]


def events(database: Database) -> list[tuple[str, str]]:
    with database.transaction() as db:
        return [(e.event, e.actor) for e in db.query(AuditEvent).order_by(AuditEvent.id)]


def test_ids_are_random_and_details_filtered(brainhair_db: Database) -> None:
    first, second = new_approval(brainhair_db), new_approval(brainhair_db)
    assert first.id != second.id and len(first.id) >= 32
    assert first.session_id not in first.id
    assert "Smith" not in first.details["contact"] and "John S." in first.details["contact"]
    assert "867-5309" not in first.details["contact"]
    assert first.details["account_number"] == "620547"
    assert first.tool_input == {"account_number": "620547", "rate": "45.00"}


def test_the_owner_decides_once(brainhair_db: Database) -> None:
    approval = new_approval(brainhair_db)
    with brainhair_db.transaction() as db:
        decided = approvals.decide(db, approval.id, ANN, True)
    assert decided.status == "approved" and decided.decided_by == "user-ann"
    with brainhair_db.transaction() as db, pytest.raises(BrainhairError) as replay:
        approvals.decide(db, approval.id, ANN, False)  # a replay, even with another answer
    assert replay.value.status == 409
    with brainhair_db.transaction() as db:
        assert db.get(Approval, approval.id).status == "approved"  # type: ignore[union-attr]
    assert events(brainhair_db) == [("approval.requested", "user-ann"),
                                    ("approval.approved", "user-ann")]


def test_a_decision_from_another_chat_is_refused(brainhair_db: Database) -> None:
    approval = new_approval(brainhair_db)
    other = new_approval(brainhair_db)  # Ann's second chat, with its own approval
    with brainhair_db.transaction() as db, pytest.raises(BrainhairError) as refused:
        approvals.decide(db, approval.id, ANN, True, session_id=other.session_id)
    assert refused.value.status == 404
    with brainhair_db.transaction() as db:
        assert approvals.decide(db, approval.id, ANN, True,
                                session_id=approval.session_id).status == "approved"


@pytest.mark.parametrize("who", ["another user", "guessed id", "service token"])
def test_forgeries_are_refused(brainhair_db: Database, who: str) -> None:
    approval = new_approval(brainhair_db)
    new_approval(brainhair_db, BOB)  # Bob has a session and an approval of his own
    user, approval_id, status = {
        "another user": (BOB, approval.id, 404),
        "guessed id": (ANN, approval.id[:-1] + ("A" if approval.id[-1] != "A" else "B"), 404),
        "service token": (SERVICE, approval.id, 403),
    }[who]
    with brainhair_db.transaction() as db, pytest.raises(BrainhairError) as refused:
        approvals.decide(db, approval_id, user, True)
    assert refused.value.status == status
    with brainhair_db.transaction() as db:
        assert db.get(Approval, approval.id).status == "pending"  # type: ignore[union-attr]
        with pytest.raises(BrainhairError):
            approvals.get(db, approval_id, user)


def test_racing_decisions_one_wins(brainhair_db_url: str) -> None:
    databases = [Database(brainhair_db_url) for _ in range(2)]
    try:
        approval = new_approval(databases[0])
        barrier = threading.Barrier(2)
        outcomes: list[str] = []

        def decide(database: Database, approved: bool) -> None:
            barrier.wait()
            try:
                with database.transaction() as db:
                    approvals.decide(db, approval.id, ANN, approved)
                outcomes.append("won")
            except BrainhairError as exc:
                outcomes.append(str(exc.status))
            except Exception as exc:  # a serialisation failure is a refusal too
                outcomes.append(type(exc).__name__)

        threads = [threading.Thread(target=decide, args=(databases[i], i == 0))
                   for i in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert outcomes.count("won") == 1, outcomes
        decided = [e for e, _ in events(databases[0]) if e in ("approval.approved",
                                                               "approval.denied")]
        assert len(decided) == 1
    finally:
        for database in databases:
            database.dispose()


def test_an_expired_approval_cannot_be_approved(brainhair_db: Database) -> None:
    approval = new_approval(brainhair_db, seconds=60)
    later = utcnow() + timedelta(seconds=61)
    with brainhair_db.transaction() as db, pytest.raises(BrainhairError) as late:
        approvals.decide(db, approval.id, ANN, True, now=later)
    assert late.value.status == 409 and "expired" in str(late.value)
    with brainhair_db.transaction() as db:
        assert db.get(Approval, approval.id).status == "expired"  # type: ignore[union-attr]
    assert ("approval.expired", "system") in events(brainhair_db)


def test_wait_returns_the_decision_or_expires(brainhair_db: Database) -> None:
    approval = new_approval(brainhair_db)

    def approve_soon() -> None:
        time.sleep(0.2)
        with brainhair_db.transaction() as db:
            approvals.decide(db, approval.id, ANN, False)

    thread = threading.Thread(target=approve_soon)
    thread.start()
    assert approvals.wait(brainhair_db, approval.id, lambda: False, interval=0.02) == "denied"
    thread.join()

    short = new_approval(brainhair_db, seconds=0.2)
    assert approvals.wait(brainhair_db, short.id, lambda: False, interval=0.02) == "expired"
    stopped = new_approval(brainhair_db)
    assert approvals.wait(brainhair_db, stopped.id, lambda: True, interval=0.02) == "expired"
    with brainhair_db.transaction() as db:
        reasons = [e.details.get("reason") for e in db.query(AuditEvent)
                   .filter(AuditEvent.event == "approval.expired").order_by(AuditEvent.id)]
    assert reasons == ["timeout", "turn stopped"]


def test_the_inbox_lists_my_pending_approvals_only(brainhair_db: Database) -> None:
    mine = new_approval(brainhair_db)
    decided = new_approval(brainhair_db)
    new_approval(brainhair_db, BOB)
    with brainhair_db.transaction() as db:
        approvals.decide(db, decided.id, ANN, True)
    with brainhair_db.transaction() as db:
        assert [a.id for a in approvals.pending(db, ANN)] == [mine.id]
        assert approvals.pending(db, ANN, now=utcnow() + timedelta(hours=1)) == []
