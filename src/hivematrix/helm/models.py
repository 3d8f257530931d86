"""Helm's tables: central log entries, the log tailer's file positions, service samples."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Float, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from hivematrix.common.db import UTCDateTime, utcnow

SERVICE_MAX = 50
LEVEL_MAX = 20
LOGGER_MAX = 255
CORRELATION_MAX = 128
USER_MAX = 255
MESSAGE_MAX = 10_000
FINGERPRINT_LENGTH = 64  # hex SHA-256

#: ``BIGINT`` on PostgreSQL, but ``INTEGER`` on SQLite, where only that is an auto-increment
#: row id.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    """Every table of this service; Alembic compares migrations against its metadata."""


class LogEntry(Base):
    """One log record of one service, pushed by the service or read from its log file."""

    __tablename__ = "helm_log_entries"
    __table_args__ = (
        Index("ix_helm_log_entries_timestamp", "timestamp"),
        Index("ix_helm_log_entries_service_timestamp", "service", "timestamp"),
        Index("ix_helm_log_entries_level_timestamp", "level", "timestamp"),
        Index("ix_helm_log_entries_correlation_id", "correlation_id"),
        Index("ix_helm_log_entries_user", "user"),
        UniqueConstraint("fingerprint", name="uq_helm_log_entries_fingerprint"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    timestamp: Mapped[datetime] = mapped_column(UTCDateTime)
    service: Mapped[str] = mapped_column(String(SERVICE_MAX))
    level: Mapped[str] = mapped_column(String(LEVEL_MAX))
    logger: Mapped[str | None] = mapped_column(String(LOGGER_MAX))
    message: Mapped[str] = mapped_column(Text)
    correlation_id: Mapped[str | None] = mapped_column(String(CORRELATION_MAX))
    user: Mapped[str | None] = mapped_column(String(USER_MAX))
    context: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    #: ``push`` (POST /api/logs/ingest) or ``file`` (read from logs/<svc>.log).
    source: Mapped[str] = mapped_column(String(10))
    #: Identifies the record, so the copy arriving the other way is not stored twice.
    fingerprint: Mapped[str] = mapped_column(String(FINGERPRINT_LENGTH))

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "timestamp": self.timestamp.isoformat(), "service": self.service,
                "level": self.level, "logger": self.logger, "message": self.message,
                "correlation_id": self.correlation_id, "user": self.user,
                "context": self.context or {}, "source": self.source}


class LogCursor(Base):
    """How far the tailer has read one log file (by name inside ``logs/``)."""

    __tablename__ = "helm_log_cursors"
    __table_args__ = (UniqueConstraint("path", name="uq_helm_log_cursors_path"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    path: Mapped[str] = mapped_column(String(255))
    inode: Mapped[int] = mapped_column(BigInteger)
    offset: Mapped[int] = mapped_column(BigInteger)
    #: SHA-256 of the file's first ``head_length`` bytes: a file truncated and written again
    #: past the old offset is recognised by its changed beginning.
    head_hash: Mapped[str | None] = mapped_column(String(64))
    head_length: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class ServiceSample(Base):
    """A service's state and resource use at one moment, for charts."""

    __tablename__ = "helm_service_samples"
    __table_args__ = (
        Index("ix_helm_service_samples_service_timestamp", "service", "timestamp"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    service: Mapped[str] = mapped_column(String(SERVICE_MAX))
    timestamp: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    cpu_percent: Mapped[float | None] = mapped_column(Float)
    memory_mb: Mapped[float | None] = mapped_column(Float)
    uptime_seconds: Mapped[float | None] = mapped_column(Float)
    state: Mapped[str] = mapped_column(String(20))
