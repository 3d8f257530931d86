"""Files that appear whole or not at all: written beside their target, then renamed over it."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO


@contextlib.contextmanager
def atomic_file(path: Path, mode: int = 0o644, *, durable: bool = False,
                suffix: str = "") -> Iterator[BinaryIO]:
    """A file to write that replaces ``path`` (with ``mode``) only once the block succeeds.

    Readers never see half a file; a failure leaves ``path`` as it was and no temporary file
    behind. ``durable`` also syncs the file and its folder to disk before returning (backups,
    restores: what must survive a power cut).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    try:
        with os.fdopen(handle, "wb") as out:
            os.fchmod(out.fileno(), mode)
            yield out
            if durable:
                out.flush()
                os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    if durable:
        fsync_directory(path.parent)


def write_atomic(path: Path, data: bytes | str, mode: int = 0o644) -> None:
    """Replace ``path`` with ``data`` (text is written as UTF-8), atomically."""
    with atomic_file(path, mode) as out:
        out.write(data.encode("utf-8") if isinstance(data, str) else data)


def fsync_directory(path: Path) -> None:
    """Make a rename in ``path`` durable (where the platform allows it)."""
    with contextlib.suppress(OSError):
        handle = os.open(path, os.O_RDONLY)
        try:
            os.fsync(handle)
        finally:
            os.close(handle)
