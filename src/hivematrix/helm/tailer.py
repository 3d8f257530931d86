"""Reading the services' log files (``logs/<svc>.log``) into Helm's log store.

Each call of :func:`tail_once` reads what was appended since the last call. Where it got to
is kept per file in :class:`LogCursor` as ``(inode, offset)``, in the same transaction as the
entries read, so a crash never skips lines (and reading a line twice stores it once).

- **Rotation** (the supervisor renames ``x.log`` to ``x.log.1`` and opens a new ``x.log``):
  the inode changes, so the rest of the old file is read from ``x.log.1`` (or a later
  backup, found by inode) before the new file is read from its start.
- **Truncation** (the file is shorter than the offset, or its first bytes changed since
  they were read): read again from the start.
- Only whole lines are read; a line still being written waits for the next call.

JSON lines are records of the kit's logging, with their own level; any other line (a
traceback printed by a crashing process, a library's plain output) is stored as it is, with
level ``UNKNOWN``: the level is never guessed from the text.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

from sqlalchemy import select
from sqlalchemy.orm import Session

from hivematrix.helm.logstore import (
    UNKNOWN,
    Row,
    position_fingerprint,
    row_from_record,
    service_names,
    store,
)
from hivematrix.helm.models import MESSAGE_MAX, LogCursor

#: Bytes at the start of a file whose hash tells a rewritten file from a grown one.
HEAD_BYTES = 1024
#: Rotated copies the supervisor keeps (``x.log.1`` ... ``x.log.5``).
BACKUPS = 5
#: Bytes read from one file per call at most; the rest waits for the next call.
MAX_BYTES_PER_CALL = 8 * 1024 * 1024
_READ_SIZE = 1024 * 1024


@dataclass(frozen=True)
class Line:
    offset: int
    data: bytes


def row_from_line(line: bytes, *, service: str, inode: int, offset: int, file_name: str,
                  read_at: datetime | None = None) -> Row | None:
    """The row for one line of a log file; ``None`` for a blank line."""
    data = line.rstrip(b"\r")
    text = data.decode("utf-8", errors="replace")
    if not text.strip():
        return None
    fallback = position_fingerprint(service, inode, offset, data)
    now = read_at or datetime.now(UTC)
    if text.lstrip().startswith("{"):
        try:
            record = json.loads(text)
        except ValueError:
            record = None
        if isinstance(record, dict):
            return row_from_record(record, service=service, source="file", strict=False,
                                   received_at=now, fallback_fingerprint=fallback)
    context: dict[str, object] = {"raw": True, "file": file_name, "offset": offset}
    message = text.replace("\x00", "\ufffd")
    if len(message) > MESSAGE_MAX:
        context.update(truncated=True, message_length=len(message))
        message = message[:MESSAGE_MAX]
    return {"timestamp": now, "service": service, "level": UNKNOWN, "logger": None,
            "message": message, "correlation_id": None, "user": None, "context": context,
            "source": "file", "fingerprint": fallback}


def _read_lines(handle: IO[bytes], offset: int, *, final: bool,
                limit: int = MAX_BYTES_PER_CALL) -> tuple[list[Line], int]:
    """Whole lines from ``offset`` on (a last unterminated one too when ``final``).

    Returns the lines and the offset after the last one consumed.
    """
    handle.seek(offset)
    lines: list[Line] = []
    pending = b""
    position = offset  # where ``pending`` starts
    read = 0
    while read < limit:
        chunk = handle.read(min(_READ_SIZE, limit - read))
        if not chunk:
            break
        read += len(chunk)
        pending += chunk
        *complete, pending = pending.split(b"\n")
        for data in complete:
            lines.append(Line(position, data))
            position += len(data) + 1
    # A line longer than a whole call's budget would otherwise never be consumed.
    if pending and ((final and read < limit) or (not lines and read >= limit)):
        lines.append(Line(position, pending))
        position += len(pending)
    return lines, position


def _store_lines(session: Session, lines: list[Line], *, service: str, inode: int,
                 file_name: str) -> int:
    now = datetime.now(UTC)
    rows = [row for line in lines
            if (row := row_from_line(line.data, service=service, inode=inode,
                                     offset=line.offset, file_name=file_name,
                                     read_at=now)) is not None]
    return store(session, rows)


def _unread_backups(path: Path, inode: int) -> list[tuple[IO[bytes], int]]:
    """The backups to finish after a rotation, oldest first, opened: ``(file, inode)``.

    The backup holding ``inode`` (the file last read under the live name) is read on from
    ``offset`` by the caller; backups newer than it appeared after the last read, so they
    are read whole. If that file is gone (rotated away or deleted), nothing is read.
    """
    opened: list[tuple[IO[bytes], int]] = []
    found = False
    for number in range(1, BACKUPS + 1):
        candidate = path.with_name(f"{path.name}.{number}")
        try:
            handle = open(candidate, "rb")  # noqa: SIM115 - returned to the caller
        except FileNotFoundError:
            break
        candidate_inode = os.fstat(handle.fileno()).st_ino
        opened.append((handle, candidate_inode))
        if candidate_inode == inode:
            found = True
            break
    if not found:
        for unused, _inode in opened:
            unused.close()
        return []
    return list(reversed(opened))


def tail_file(session: Session, path: Path, service: str) -> int:
    """Read what is new in one log file; returns the entries stored (caller commits)."""
    try:
        handle = open(path, "rb")  # noqa: SIM115 - closed below
    except FileNotFoundError:
        return 0
    with handle:
        # Everything about the file comes from the open handle: a rotation after this
        # point cannot make us read one file at another's offset.
        status = os.fstat(handle.fileno())
        cursor = session.scalar(select(LogCursor).where(LogCursor.path == path.name))
        if cursor is None:
            cursor = LogCursor(path=path.name, inode=status.st_ino, offset=0, head_length=0)
            session.add(cursor)
        stored = 0
        if cursor.inode != status.st_ino:
            for old, old_inode in _unread_backups(path, cursor.inode):
                start = cursor.offset if old_inode == cursor.inode else 0
                with old:
                    lines, _end = _read_lines(old, start, final=True,
                                              limit=MAX_BYTES_PER_CALL * 4)
                stored += _store_lines(session, lines, service=service, inode=old_inode,
                                       file_name=Path(old.name).name)
            cursor.inode, cursor.offset = status.st_ino, 0
            cursor.head_length, cursor.head_hash = 0, None
        elif status.st_size < cursor.offset or not _same_head(handle, cursor):
            cursor.offset = 0  # truncated: what is there now is all new
            cursor.head_length, cursor.head_hash = 0, None
        lines, end = _read_lines(handle, cursor.offset, final=False)
        stored += _store_lines(session, lines, service=service, inode=status.st_ino,
                               file_name=path.name)
        cursor.offset = end
        _remember_head(handle, cursor)
    return stored


def _head_hash(handle: IO[bytes], length: int) -> str:
    handle.seek(0)
    return hashlib.sha256(handle.read(length)).hexdigest()


def _same_head(handle: IO[bytes], cursor: LogCursor) -> bool:
    if not cursor.head_length or cursor.head_hash is None:
        return True
    return _head_hash(handle, cursor.head_length) == cursor.head_hash


def _remember_head(handle: IO[bytes], cursor: LogCursor) -> None:
    length = min(cursor.offset, HEAD_BYTES)
    if length != cursor.head_length or cursor.head_hash is None:
        cursor.head_length = length
        cursor.head_hash = _head_hash(handle, length) if length else None


def tail_once(session: Session, logs_dir: Path) -> int:
    """Read every ``logs_dir/<service>.log`` once; one commit per file. Returns entries stored."""
    stored = 0
    paths = {path.name[:-len(".log")]: path for path in sorted(logs_dir.glob("*.log"))
             if path.is_file()}
    for service in service_names(paths):
        try:
            stored += tail_file(session, paths[service], service)
            session.commit()
        except BaseException:
            session.rollback()
            raise
    return stored
