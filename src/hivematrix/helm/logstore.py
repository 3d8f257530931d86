"""Central log storage: turning records into rows, storing them once, finding them again.

Plain Python over a SQLAlchemy session (no Flask), shared by the ingest API, the log tailer,
the log viewer and the CLI.

A record is the JSON object a service's logging writes (see :mod:`hivematrix.common.logging`):
``level``, ``logger``, ``message``, ``timestamp``, ``service``, ``correlation_id``, ``user``,
``pid``, ``seq`` and any extra fields, which end up in the entry's ``context``.

Deduplication needs no guessing. A record that carries ``pid`` and ``seq`` is identified by
``(service, pid, seq, timestamp)``: the same record pushed over HTTP and read back from the
log file gets the same fingerprint and is stored once (an insert that ignores a fingerprint
already present, on SQLite and PostgreSQL alike). A line that is not such a record is
identified by where it was read: ``(service, file inode, byte offset)`` plus a hash of the
line itself, because a truncated file reuses offsets for new text.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import and_, delete, func, or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from hivematrix.helm.models import (
    CORRELATION_MAX,
    LOGGER_MAX,
    MESSAGE_MAX,
    SERVICE_MAX,
    USER_MAX,
    LogEntry,
    ServiceSample,
)

#: Standard levels, lowest first.
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
#: The level of a line that is not a log record (a traceback, a library's plain print).
UNKNOWN = "UNKNOWN"
_ALIASES = {"WARN": "WARNING", "FATAL": "CRITICAL"}
#: Entries one ingest request may carry.
MAX_BATCH = 10_000
#: Entries one query returns at most.
MAX_LIMIT = 1000
#: A context larger than this (as JSON) is replaced by a note and a preview.
CONTEXT_MAX_BYTES = 64 * 1024
#: Fields of a record that have columns; every other field goes into ``context``.
RECORD_FIELDS = frozenset({"level", "logger", "message", "timestamp", "service",
                           "correlation_id", "user", "pid", "seq", "context"})
SERVICE_NAME = re.compile(r"^[a-z0-9_-]{1,50}$")
_INSERT_CHUNK = 1000

Row = dict[str, Any]


class EntryError(ValueError):
    """One field of one entry is unusable; ``index`` is its position in the batch."""

    def __init__(self, index: int, field: str, message: str) -> None:
        super().__init__(f"logs[{index}].{field}: {message}")
        self.index = index
        self.field = field
        self.message = message


def normalise_level(value: object) -> str | None:
    """``"warn"`` -> ``"WARNING"``; ``None`` for anything that is not a standard level."""
    if not isinstance(value, str):
        return None
    name = value.strip().upper()
    name = _ALIASES.get(name, name)
    return name if name in LEVELS or name == UNKNOWN else None


def levels_at_or_above(level: str) -> list[str]:
    """``WARNING`` -> WARNING, ERROR, CRITICAL. ``UNKNOWN`` selects exactly itself."""
    if level == UNKNOWN:
        return [UNKNOWN]
    return list(LEVELS[LEVELS.index(level):])


def parse_timestamp(value: str) -> datetime:
    """An ISO 8601 timestamp, timezone-aware (a missing offset means UTC).

    :raises ValueError: not ISO 8601.
    """
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def _digest(*parts: object) -> str:
    return hashlib.sha256(json.dumps(parts, separators=(",", ":")).encode()).hexdigest()


def record_fingerprint(service: str, pid: int, seq: int, timestamp: datetime) -> str:
    """The identity of a structured record, whichever way it arrived."""
    return _digest("record", service, pid, seq, timestamp.astimezone(UTC).isoformat())


def position_fingerprint(service: str, inode: int, offset: int, line: bytes) -> str:
    """The identity of a line read from a file: where it was, and what it said."""
    return _digest("position", service, inode, offset, hashlib.sha256(line).hexdigest())


def _clean(text: str) -> str:
    # PostgreSQL text cannot hold NUL characters.
    return text.replace("\x00", "\ufffd")


def _bounded_context(context: dict[str, Any]) -> dict[str, Any]:
    text = json.dumps(context, default=str)
    if len(text) <= CONTEXT_MAX_BYTES:
        return context
    return {"context_truncated": True, "context_bytes": len(text),
            "context_preview": _clean(text[:10_000])}


def _cut_message(message: str, context: dict[str, Any]) -> str:
    if len(message) > MESSAGE_MAX:
        context["truncated"] = True
        context["message_length"] = len(message)
        message = message[:MESSAGE_MAX]
    return _clean(message)


def _optional_text(record: Mapping[str, Any], name: str, limit: int, index: int,
                   strict: bool) -> str | None:
    value = record.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        if strict:
            raise EntryError(index, name, "must be a string or null")
        value = str(value)
    if len(value) > limit:
        if strict:
            raise EntryError(index, name, f"must be at most {limit} characters")
        value = value[:limit]
    return _clean(value) or None


def _counter(record: Mapping[str, Any], name: str, index: int, strict: bool) -> int | None:
    value = record.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        if strict:
            raise EntryError(index, name, "must be a non-negative integer")
        return None
    return value


def _context(record: Mapping[str, Any], index: int, strict: bool) -> dict[str, Any]:
    context = {key: value for key, value in record.items() if key not in RECORD_FIELDS}
    explicit = record.get("context")
    if explicit is not None:
        if isinstance(explicit, dict):
            context.update(explicit)
        elif strict:
            raise EntryError(index, "context", "must be an object")
        else:
            context["context"] = explicit
    return context


def row_from_record(record: Mapping[str, Any], *, service: str, source: str, index: int = 0,
                    strict: bool = True, received_at: datetime | None = None,
                    fallback_fingerprint: str | None = None) -> Row:
    """A row for ``helm_log_entries`` from one record.

    ``strict`` (pushed entries) refuses bad fields with :class:`EntryError`; otherwise (lines
    read from files) bad fields are replaced: an unknown level becomes ``UNKNOWN``, an
    unreadable timestamp the time of reading.

    :param fallback_fingerprint: used when the record has no ``pid``/``seq`` (or no usable
        timestamp); a random one when omitted, so such records are never merged.
    """
    now = received_at or datetime.now(UTC)
    level = normalise_level(record.get("level"))
    unknown_level = None
    if level is None or (strict and level == UNKNOWN):
        if strict:
            raise EntryError(index, "level", f"must be one of {', '.join(LEVELS)}")
        level, unknown_level = UNKNOWN, record.get("level")
    message = record.get("message")
    if not isinstance(message, str):
        if strict:
            raise EntryError(index, "message", "is required and must be a string")
        message = "" if message is None else json.dumps(message, default=str)
    timestamp: datetime | None = None
    raw_time = record.get("timestamp")
    if raw_time is not None:
        try:
            if not isinstance(raw_time, str):
                raise ValueError(raw_time)
            timestamp = parse_timestamp(raw_time)
        except ValueError:
            if strict:
                raise EntryError(index, "timestamp", "must be an ISO 8601 date-time") from None
    pid = _counter(record, "pid", index, strict)
    seq = _counter(record, "seq", index, strict)
    row: Row = {
        "logger": _optional_text(record, "logger", LOGGER_MAX, index, strict),
        "correlation_id": _optional_text(record, "correlation_id", CORRELATION_MAX, index,
                                         strict),
        "user": _optional_text(record, "user", USER_MAX, index, strict),
    }
    context = _context(record, index, strict)
    # Kept, so an operator can tell two identical lines of one process apart.
    context.update({name: value for name, value in (("pid", pid), ("seq", seq),
                                                    ("level_name", unknown_level))
                    if value is not None})
    if timestamp is not None and pid is not None and seq is not None:
        fingerprint = record_fingerprint(service, pid, seq, timestamp)
    else:
        fingerprint = fallback_fingerprint or _digest("random", uuid.uuid4().hex)
    row.update(
        timestamp=timestamp or now, service=service, level=level,
        message=_cut_message(message, context), context=_bounded_context(context),
        source=source, fingerprint=fingerprint,
    )
    return row


def validate_batch(entries: object, *, service: str, received_at: datetime | None = None,
                   max_errors: int = 50) -> tuple[list[Row], list[EntryError]]:
    """Validate a pushed batch: its rows, or (all or nothing) up to ``max_errors`` problems.

    A problem's ``index`` is -1 when the batch itself is not a list.
    """
    if not isinstance(entries, list):
        return [], [EntryError(-1, "logs", "must be a list of log entries")]
    now = received_at or datetime.now(UTC)
    rows: list[Row] = []
    problems: list[EntryError] = []
    for index, entry in enumerate(entries):
        try:
            if not isinstance(entry, dict):
                raise EntryError(index, "entry", "must be an object")
            rows.append(row_from_record(entry, service=service, source="push", index=index,
                                        strict=True, received_at=now))
        except EntryError as exc:
            problems.append(exc)
            if len(problems) >= max_errors:
                break
    return rows, problems


def _insert_statement(session: Session) -> Any:
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        return postgresql.insert(LogEntry).on_conflict_do_nothing(index_elements=["fingerprint"])
    if dialect == "sqlite":
        return sqlite.insert(LogEntry).on_conflict_do_nothing(index_elements=["fingerprint"])
    raise NotImplementedError(f"log storage supports SQLite and PostgreSQL, not {dialect}")


def store(session: Session, rows: Sequence[Row]) -> int:
    """Insert rows whose fingerprint is new; returns how many were stored (caller commits)."""
    unique: dict[str, Row] = {}
    for row in rows:
        unique.setdefault(row["fingerprint"], row)
    if not unique:
        return 0
    statement = _insert_statement(session).returning(LogEntry.id)
    listed = list(unique.values())
    stored = 0
    for start in range(0, len(listed), _INSERT_CHUNK):
        result = session.execute(statement, listed[start:start + _INSERT_CHUNK])
        stored += len(result.all())
    return stored


# --- finding entries -----------------------------------------------------------------------

@dataclass
class LogQuery:
    """Filters of the log viewer and ``GET /api/logs``; newest first."""

    service: str | None = None
    level: str | None = None  # at or above
    correlation_id: str | None = None
    user: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    q: str | None = None  # substring of the message, case-insensitive
    limit: int = 100
    before_id: int | None = None  # the page after this entry (in newest-first order)
    after_id: int | None = None  # entries stored after this one (live mode)


class UnknownCursor(ValueError):
    """``before_id`` names no stored entry."""


def _filters(query: LogQuery) -> list[Any]:
    conditions: list[Any] = []
    if query.service:
        conditions.append(LogEntry.service == query.service)
    if query.level:
        conditions.append(LogEntry.level.in_(levels_at_or_above(query.level)))
    if query.correlation_id:
        conditions.append(LogEntry.correlation_id == query.correlation_id)
    if query.user:
        conditions.append(LogEntry.user == query.user)
    if query.since:
        conditions.append(LogEntry.timestamp >= query.since)
    if query.until:
        conditions.append(LogEntry.timestamp <= query.until)
    if query.q:
        conditions.append(LogEntry.message.icontains(query.q, autoescape=True))
    return conditions


def search(session: Session, query: LogQuery) -> list[LogEntry]:
    """Entries matching ``query``, newest first (by timestamp, then id).

    ``before_id`` continues after that entry in this order (keyset paging, stable while
    entries arrive). ``after_id`` returns entries stored after that one, the oldest of them
    first chosen and then listed newest first, so a live view that polls with the highest
    id it has seen never skips one.

    :raises UnknownCursor: ``before_id`` is not a stored entry.
    """
    limit = max(1, min(query.limit, MAX_LIMIT))
    conditions = _filters(query)
    if query.after_id is not None:
        statement = (select(LogEntry).where(LogEntry.id > query.after_id, *conditions)
                     .order_by(LogEntry.id).limit(limit))
        found = list(session.scalars(statement))
        found.sort(key=lambda entry: (entry.timestamp, entry.id), reverse=True)
        return found
    if query.before_id is not None:
        anchor = session.get(LogEntry, query.before_id)
        if anchor is None:
            raise UnknownCursor(query.before_id)
        conditions.append(or_(LogEntry.timestamp < anchor.timestamp,
                              and_(LogEntry.timestamp == anchor.timestamp,
                                   LogEntry.id < anchor.id)))
    statement = (select(LogEntry).where(*conditions)
                 .order_by(LogEntry.timestamp.desc(), LogEntry.id.desc()).limit(limit))
    return list(session.scalars(statement))


def latest_id(session: Session) -> int:
    return session.scalar(select(func.max(LogEntry.id))) or 0


def level_counts(session: Session, since: datetime) -> dict[str, dict[str, int]]:
    """``{service: {level: count}}`` of entries since ``since``."""
    statement = (select(LogEntry.service, LogEntry.level, func.count())
                 .where(LogEntry.timestamp >= since)
                 .group_by(LogEntry.service, LogEntry.level))
    counts: dict[str, dict[str, int]] = {}
    for service, level, count in session.execute(statement):
        counts.setdefault(service, {})[level] = count
    return counts


def services_with_logs(session: Session) -> list[str]:
    return list(session.scalars(select(LogEntry.service).distinct().order_by(LogEntry.service)))


# --- retention -----------------------------------------------------------------------------

def purge(session: Session, *, older_than: datetime, batch_size: int = 5000) -> int:
    """Delete entries (and samples) older than ``older_than``, committing per batch."""
    removed = 0
    for model in (LogEntry, ServiceSample):
        while True:
            doomed = (select(model.id).where(model.timestamp < older_than)
                      .limit(batch_size).scalar_subquery())
            result = session.execute(delete(model).where(model.id.in_(doomed)))
            session.commit()
            count = int(getattr(result, "rowcount", 0) or 0)
            if model is LogEntry:
                removed += count
            if count < batch_size:
                break
    return removed


def retention_once(session: Session, days: int, *, now: datetime | None = None,
                   batch_size: int = 5000) -> int:
    """Apply ``HELM_LOG_RETENTION_DAYS``; 0 or less keeps everything. Returns entries removed."""
    if days <= 0:
        return 0
    cutoff = (now or datetime.now(UTC)) - timedelta(days=days)
    return purge(session, older_than=cutoff, batch_size=batch_size)


def service_names(names: Iterable[str]) -> list[str]:
    """Names usable as a log source (``logs/<name>.log``, a token's calling service)."""
    return [name for name in names if SERVICE_NAME.match(name) and len(name) <= SERVICE_MAX]
