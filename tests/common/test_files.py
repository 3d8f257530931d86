"""Atomic file writes: whole or not at all."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from hivematrix.common.files import atomic_file, write_atomic


def test_a_write_replaces_the_file_with_its_mode(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "secret.txt"
    write_atomic(target, "one")
    write_atomic(target, b"two", 0o600)
    assert target.read_text() == "two"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert [path.name for path in target.parent.iterdir()] == ["secret.txt"]


def test_a_failed_write_leaves_the_old_file_and_no_leftovers(tmp_path: Path) -> None:
    target = tmp_path / "data.bin"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic_file(target, durable=True, suffix=".partial") as out:
        out.write(b"half of the new")
        raise RuntimeError("interrupted")
    assert target.read_bytes() == b"old"
    assert [path.name for path in tmp_path.iterdir()] == ["data.bin"]
