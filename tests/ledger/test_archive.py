"""Snapshots on SQLite and PostgreSQL: the database refuses UPDATE and DELETE, a period is
accepted once (409), a correction is a void plus a re-issue numbered -R1, custom costs keep."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DatabaseError

from hivematrix.common.db import Database
from hivematrix.common.testing import assert_migrations_match_models, assert_single_migration_head
from hivematrix.ledger import archive
from hivematrix.ledger.errors import LedgerError
from hivematrix.ledger.inputs import (
    AssetOverride,
    CustomLineItem,
    ManualUser,
    Overrides,
    Period,
    UserOverride,
)
from hivematrix.ledger.invoice import qbo_csv
from hivematrix.ledger.models import Base, BillingSnapshot
from tests.ledger.builders import D, asset, bill, company, contact


def receipt(**changes: object):  # type: ignore[no-untyped-def]
    return bill(company(assets=(asset(1, "Workstation"), asset(2, "Server")),
                        contacts=(contact(10, "Dana"),)), month=3, **changes)


def accept(database: Database, bill_receipt=None, by: str = "billing-user") -> int:  # type: ignore[no-untyped-def]
    with database.transaction() as session:
        snapshot = archive.accept(session, bill_receipt or receipt(), accepted_by=by)
        return snapshot.id


def test_migrations_match_models(ledger_db_url: str) -> None:
    assert_migrations_match_models("hivematrix.ledger", Base.metadata, ledger_db_url)
    assert_single_migration_head("hivematrix.ledger")


@pytest.mark.parametrize("table", ["ledger_billing_snapshots", "ledger_snapshot_line_items",
                                   "ledger_snapshot_voids"])
def test_the_database_refuses_update_and_delete(ledger_db: Database, table: str) -> None:
    snapshot_id = accept(ledger_db)
    with ledger_db.transaction() as session:
        archive.void(session, session.get(BillingSnapshot, snapshot_id), reason="test",
                     voided_by="someone")
    column = {"ledger_billing_snapshots": "company_name", "ledger_snapshot_line_items": "name",
              "ledger_snapshot_voids": "reason"}[table]
    for statement in (f"UPDATE {table} SET {column} = 'changed'", f"DELETE FROM {table}"):
        with pytest.raises(DatabaseError, match="immutable"), \
                ledger_db.engine.begin() as connection:
            connection.execute(text(statement))
    with ledger_db.engine.connect() as connection:
        values = connection.execute(text(f"SELECT {column} FROM {table}")).scalars().all()
    assert values and "changed" not in values


def test_the_orm_cannot_change_a_snapshot_either(ledger_db: Database) -> None:
    snapshot_id = accept(ledger_db)
    with pytest.raises(DatabaseError, match="immutable"), ledger_db.transaction() as session:
        session.get(BillingSnapshot, snapshot_id).total_amount = D("0.00")
    with pytest.raises(DatabaseError, match="immutable"), ledger_db.transaction() as session:
        session.delete(session.get(BillingSnapshot, snapshot_id).line_items[0])


def test_accept_keeps_lines_receipt_and_the_exact_csv(ledger_db: Database) -> None:
    bill_receipt = receipt()
    snapshot_id = accept(ledger_db, bill_receipt)
    with ledger_db.transaction() as session:
        snapshot = session.get(BillingSnapshot, snapshot_id)
        assert snapshot.invoice_number == "620547-202603"
        assert snapshot.revision == 0 and snapshot.replaces_id is None
        assert snapshot.invoice_csv == qbo_csv(bill_receipt)
        assert snapshot.receipt_json == bill_receipt.to_json()
        assert snapshot.total_amount == bill_receipt.total == D("175.00")
        assert (snapshot.invoice_date, snapshot.due_date) == ("2026-03-31", "2026-04-30")
        assert [(item.section, item.name, item.amount) for item in snapshot.line_items] == [
            (line.section, line.name, line.amount) for line in bill_receipt.lines]
        assert (snapshot.user_count, snapshot.asset_count) == (1, 2)


def test_a_period_is_accepted_once(ledger_db: Database) -> None:
    accept(ledger_db)
    with pytest.raises(LedgerError) as refused, ledger_db.transaction() as session:
        archive.accept(session, receipt(), accepted_by="again")
    assert refused.value.status == 409
    assert "620547-202603" in str(refused.value)
    with ledger_db.transaction() as session:
        # Another month of the same company is a bill of its own.
        other = archive.accept(session, bill(company(), month=4), accepted_by="x")
        assert other.invoice_number == "620547-202604"


def test_a_bill_with_an_error_is_not_accepted(ledger_db: Database) -> None:
    with pytest.raises(LedgerError) as refused, ledger_db.transaction() as session:
        archive.accept(session, bill(company(billing_plan="Nope"), month=3), accepted_by="x")
    assert refused.value.status == 422 and "no plan 'Nope'" in str(refused.value)


def test_void_and_reissue_keep_the_original(ledger_db: Database) -> None:
    original_id = accept(ledger_db)
    corrected = bill(company(assets=(asset(1, "Workstation"),), contacts=(contact(10, "D"),)),
                     month=3)
    with ledger_db.transaction() as session:
        original = session.get(BillingSnapshot, original_id)
        new = archive.reissue(session, original, corrected, reason="server was retired",
                              by="billing-user")
        new_id = new.id
        assert new.invoice_number == "620547-202603-R1"
        assert new.revision == 1 and new.replaces_id == original_id
        assert new.invoice_csv == qbo_csv(corrected, revision=1)
        assert "620547-202603-R1" in new.invoice_csv
    with ledger_db.transaction() as session:
        original = session.get(BillingSnapshot, original_id)
        assert original.void is not None and original.void.reason == "server was retired"
        assert original.total_amount == D("175.00")  # untouched
        assert archive.live(session, "620547", 2026, 3).id == new_id
        # The re-issue is live: the period is accepted again.
        with pytest.raises(LedgerError) as refused:
            archive.accept(session, corrected, accepted_by="x")
        assert refused.value.status == 409
        with pytest.raises(LedgerError) as twice:
            archive.void(session, original, reason="again", voided_by="x")
        assert twice.value.status == 409
    with ledger_db.transaction() as session:
        archive.void(session, session.get(BillingSnapshot, new_id), reason="wrong again",
                     voided_by="x")
        third = archive.accept(session, corrected, accepted_by="x")
        assert third.invoice_number == "620547-202603-R2"


def test_custom_costs_snapshot_fine(ledger_db: Database) -> None:
    custom = bill(company(assets=(asset(1, "Workstation"), asset(2, "Mystery")),
                          contacts=(contact(10, "Dana"), contact(11, "Eli"))),
                  Overrides(assets=(AssetOverride(1, "Custom", D("33.33")),),
                            users=(UserOverride(11, "Custom", D("7.50")),),
                            manual_users=(ManualUser(5, "=cmd|' /C calc'!A0", "Custom",
                                                     D("12.25")),),
                            line_items=(CustomLineItem(7, "Firewall lease", "recurring",
                                                       D("99.99"), start=Period(2026, 1)),)),
                  month=3)
    snapshot_id = accept(ledger_db, custom)
    with ledger_db.transaction() as session:
        snapshot = session.get(BillingSnapshot, snapshot_id)
        lines = {(item.section, item.name): (item.type, item.rate, item.amount)
                 for item in snapshot.line_items}
        assert lines[("assets", "WORKSTATION-1")] == ("Custom", D("33.33"), D("33.33"))
        assert lines[("users", "Eli")] == ("Custom", D("7.50"), D("7.50"))
        assert lines[("custom", "Firewall lease")] == ("Recurring", D("99.99"), D("99.99"))
        assert snapshot.total_amount == custom.total
        assert snapshot.invoice_csv == qbo_csv(custom)
        assert "User: =cmd|' /C calc'!A0 (Custom),1,12.25,12.25" in snapshot.invoice_csv
        assert snapshot.receipt_json["warnings"]  # the unknown type's warning is kept


def test_search(ledger_db: Database) -> None:
    accept(ledger_db)
    with ledger_db.transaction() as session:
        archive.accept(session, bill(company(account_number="700001", name="Other"), month=2),
                       accepted_by="x")
    with ledger_db.transaction() as session:
        total, page = archive.search(session)
        assert total == 2 and [s.invoice_number for s in page] == ["620547-202603",
                                                                   "700001-202602"]
        assert archive.search(session, account_number="700001")[0] == 1
        assert archive.search(session, year=2026, month=3)[1][0].account_number == "620547"
        assert archive.search(session, invoice_number="202602")[1][0].account_number == "700001"
        today = datetime.now(UTC).date()
        assert archive.search(session, date_from=today, date_to=today)[0] == 2
        assert archive.search(session, date_to=date(2020, 1, 1))[0] == 0
        assert archive.search(session, limit=1, offset=1)[1][0].account_number == "700001"
