"""The template's one table: short notes written by staff."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from hivematrix.common.db import UTCDateTime, utcnow

TITLE_MAX = 150
BODY_MAX = 10_000


class Base(DeclarativeBase):
    """Every table of this service; Alembic compares migrations against its metadata."""


class Note(Base):
    __tablename__ = "template_notes"

    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(TITLE_MAX))
    body: Mapped[str] = mapped_column(Text, default="")
    created_by: Mapped[str] = mapped_column(String(150))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)

    def to_dict(self) -> dict[str, object]:
        return {"id": self.id, "title": self.title, "body": self.body,
                "created_by": self.created_by, "created_at": self.created_at.isoformat()}
