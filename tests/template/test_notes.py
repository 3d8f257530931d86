"""The template's model and business logic, without Flask, on SQLite and PostgreSQL."""

from datetime import UTC, datetime, timedelta

import pytest

from hivematrix.common.db import Database
from hivematrix.template import notes
from hivematrix.template.models import Note


@pytest.fixture
def database(database_url: str):
    database = Database(database_url)
    yield database
    database.dispose()


def test_create_note_strips_text_and_records_author(database: Database) -> None:
    with database.transaction() as session:
        note = notes.create_note(session, title="  Printer  ", body=" jammed \n", author="tech")
        assert note.id is not None
    with database.transaction() as session:
        stored = session.get(Note, note.id)
        assert (stored.title, stored.body, stored.created_by) == ("Printer", "jammed", "tech")


def test_created_at_is_timezone_aware_utc(database: Database) -> None:
    before = datetime.now(UTC)
    with database.transaction() as session:
        note_id = notes.create_note(session, title="t", body="", author="a").id
    with database.transaction() as session:
        created = session.get(Note, note_id).created_at
    assert created.tzinfo is not None and created.utcoffset() == timedelta(0)
    assert before - timedelta(seconds=1) <= created <= datetime.now(UTC) + timedelta(seconds=1)


def test_list_notes_newest_first_and_limited(database: Database) -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    with database.transaction() as session:
        for day in range(5):
            session.add(Note(title=f"n{day}", body="", created_by="a",
                             created_at=start + timedelta(days=day)))
    with database.transaction() as session:
        titles = [note.title for note in notes.list_notes(session, limit=3)]
        assert titles == ["n4", "n3", "n2"]
        assert notes.count_notes(session) == 5


def test_naive_datetimes_are_refused(database: Database) -> None:
    with pytest.raises(Exception, match="naive"), database.transaction() as session:
        session.add(Note(title="t", body="", created_by="a", created_at=datetime(2026, 1, 1)))
        session.flush()


def test_failed_transaction_writes_nothing(database: Database) -> None:
    with pytest.raises(RuntimeError), database.transaction() as session:
        notes.create_note(session, title="half", body="", author="a")
        raise RuntimeError("boom")
    with database.transaction() as session:
        assert notes.count_notes(session) == 0
