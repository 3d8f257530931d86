"""Notes: the template's business logic, plain Python over a SQLAlchemy session."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from hivematrix.template.models import Note


def list_notes(session: Session, *, limit: int = 50) -> list[Note]:
    """The newest notes first."""
    query = select(Note).order_by(Note.created_at.desc(), Note.id.desc()).limit(limit)
    return list(session.scalars(query))


def count_notes(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(Note)) or 0


def create_note(session: Session, *, title: str, body: str, author: str) -> Note:
    """Add a note (the caller commits). Input is already validated by the view's schema."""
    note = Note(title=title.strip(), body=body.strip(), created_by=author)
    session.add(note)
    session.flush()
    return note
