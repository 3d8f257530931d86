"""Backups started from Helm's console: one at a time, in a background thread, watched through
a status file; and the archives in ``$HIVEMATRIX_HOME/backups``.

A backup takes minutes on a real installation, far longer than a request may. The page starts
it and returns; the thread does the work with :func:`hivematrix.helm.backup.create_backup` and
writes its progress to ``run/helm-backup.json``, which any of Helm's worker processes can read.
An exclusive ``flock`` on ``run/helm-backup.lock``, held for the whole backup, refuses a second
one (from the CLI's point of view nothing changes: ``hivematrix backup`` takes no lock and may
still run beside it, as two CLI backups may). A status saying "running" whose lock nobody
holds belongs to a process that died: it is reported as interrupted.

Restoring is not offered here: it stops every service, Helm included.
"""

from __future__ import annotations

import contextlib
import json
import re
import stat
import threading
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hivematrix.common.files import write_atomic
from hivematrix.helm import backup
from hivematrix.helm.jobs import FileLock

RUNNING, SUCCEEDED, FAILED, INTERRUPTED = "running", "succeeded", "failed", "interrupted"
#: What an archive in the backups folder may be called; anything else is refused, so a name
#: from a URL can never leave the folder (no separators, no leading dot, one suffix).
ARCHIVE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,200}" + re.escape(backup.ARCHIVE_SUFFIX))
#: Seconds between two progress writes (a phase change is written at once).
PROGRESS_INTERVAL = 0.5


class AlreadyRunning(Exception):
    """Another backup started from Helm has not finished."""


class BadArchiveName(ValueError):
    """Not a name :data:`ARCHIVE_NAME` allows."""


def backups_dir(home: Path) -> Path:
    return home / "backups"


def status_path(home: Path) -> Path:
    return home / "run" / "helm-backup.json"


def lock_path(home: Path) -> Path:
    return home / "run" / "helm-backup.lock"


def summaries_path(home: Path) -> Path:
    """What Helm's own backups held, by archive name: reading a manifest back would cost a
    key derivation (scrypt) per archive, far too slow for a listing."""
    return home / "run" / "helm-backup-summaries.json"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass
class BackupRun:
    """The latest backup started from Helm, as ``run/helm-backup.json`` holds it."""

    state: str
    archive: str
    started_at: str
    requested_by: str | None = None
    phase: str | None = None
    done: int = 0
    total: int = 0
    finished_at: str | None = None
    error: str | None = None
    #: A backup key was generated for this backup: the operator must copy it away.
    new_key: bool = False
    summary: dict[str, Any] | None = None

    @property
    def running(self) -> bool:
        return self.state == RUNNING

    @property
    def percent(self) -> int | None:
        """Progress of the current phase, 0-100; ``None`` before the first report."""
        if not self.total:
            return None
        return max(0, min(100, int(self.done * 100 / self.total)))

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "percent": self.percent}


def _save(home: Path, run: BackupRun) -> None:
    write_atomic(status_path(home), json.dumps(asdict(run)), mode=0o600)


def _held_elsewhere(home: Path) -> bool:
    probe = FileLock(lock_path(home))
    if probe.acquire():
        probe.release()
        return False
    return True


def read_run(home: Path) -> BackupRun | None:
    """The latest run, or ``None`` if Helm never made one (or its status is unreadable)."""
    try:
        data = json.loads(status_path(home).read_text(encoding="utf-8"))
        run = BackupRun(**data)
    except (FileNotFoundError, ValueError, TypeError):
        return None
    if run.running and not _held_elsewhere(home):
        run.state = INTERRUPTED
        run.error = "Helm stopped before the backup finished; no archive was written."
    return run


def summarise(manifest: backup.Manifest) -> dict[str, Any]:
    """The few facts of a manifest worth a line in the listing."""
    return {"created_at": manifest.created_at, "hostname": manifest.hostname,
            "hivematrix_version": manifest.hivematrix_version,
            "databases": sorted(str(member.service) for member in manifest.members
                                if member.kind in backup.DATABASE_KINDS),
            "files": sum(member.kind == backup.KIND_FILE for member in manifest.members)}


def _read_summaries(home: Path) -> dict[str, Any]:
    try:
        data = json.loads(summaries_path(home).read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _remember(home: Path, archive: Path, summary: dict[str, Any]) -> None:
    known = {name: entry for name, entry in _read_summaries(home).items()
             if (backups_dir(home) / name).is_file()}
    info = archive.stat()
    known[archive.name] = {**summary, "size": info.st_size, "mtime_ns": info.st_mtime_ns}
    write_atomic(summaries_path(home), json.dumps(known), mode=0o600)


class _Progress:
    """The backup module's ``progress(phase, done, total)``, written to the status file."""

    def __init__(self, home: Path, run: BackupRun) -> None:
        self.home, self.run = home, run
        self._written = float("-inf")

    def __call__(self, phase: str, done: int, total: int) -> None:
        changed = phase != self.run.phase
        self.run.phase, self.run.done, self.run.total = phase, done, total
        now = time.monotonic()
        if changed or done == total or now - self._written >= PROGRESS_INTERVAL:
            self._written = now
            _save(self.home, self.run)


def _work(home: Path, run: BackupRun, target: Path, lock: FileLock) -> None:
    try:
        try:
            key = backup.find_backup_key(home)
            if key is None:
                key = backup.backup_key(home)
                run.new_key = True
            manifest = backup.create_backup(home, target, key, progress=_Progress(home, run))
            run.summary = summarise(manifest)
            _remember(home, target, run.summary)
            run.state = SUCCEEDED
        except Exception as exc:  # a failed backup is a status to show, not a crash
            run.state = FAILED
            run.error = str(exc) if isinstance(exc, backup.BackupError) else (
                f"{type(exc).__name__}: {exc}")
        run.finished_at = _now()
        with contextlib.suppress(OSError):  # the home may be gone (a test's, a removed one)
            _save(home, run)
    finally:
        lock.release()


@dataclass
class Started:
    run: BackupRun
    thread: threading.Thread = field(repr=False)


def start_backup(home: Path, *, requested_by: str | None = None) -> Started:
    """Begin a backup of ``home`` into ``backups/`` in a background thread.

    :raises AlreadyRunning: a backup started from Helm (in any of its processes) is running.
    """
    lock = FileLock(lock_path(home))
    if not lock.acquire():
        raise AlreadyRunning("a backup is already running; wait for it to finish")
    try:
        target = backup.default_archive_path(home)
        run = BackupRun(state=RUNNING, archive=target.name, started_at=_now(),
                        requested_by=requested_by)
        _save(home, run)
        thread = threading.Thread(target=_work, args=(home, run, target, lock),
                                  name="helm-backup", daemon=True)
        thread.start()
    except BaseException:
        lock.release()
        raise
    return Started(run=run, thread=thread)


# --- the archives ----------------------------------------------------------------------------

@dataclass(frozen=True)
class Archive:
    name: str
    size: int
    modified: datetime
    #: What :func:`summarise` said when Helm made it; ``None`` for archives made elsewhere.
    summary: dict[str, Any] | None


def list_archives(home: Path) -> list[Archive]:
    """The archives in ``backups/``, newest first (symbolic links and odd names left out)."""
    folder = backups_dir(home)
    summaries = _read_summaries(home)
    found = []
    with contextlib.suppress(FileNotFoundError):
        for path in folder.iterdir():
            if not ARCHIVE_NAME.fullmatch(path.name):
                continue
            info = path.lstat()
            if not stat.S_ISREG(info.st_mode):
                continue
            known = summaries.get(path.name)
            fresh = (isinstance(known, dict) and known.get("size") == info.st_size
                     and known.get("mtime_ns") == info.st_mtime_ns)
            found.append(Archive(name=path.name, size=info.st_size,
                                 modified=datetime.fromtimestamp(info.st_mtime, UTC),
                                 summary=known if fresh else None))
    return sorted(found, key=lambda archive: (archive.modified, archive.name), reverse=True)


def archive_path(home: Path, name: str) -> Path:
    """The archive called ``name`` in ``backups/``.

    :raises BadArchiveName: ``name`` could not be an archive's (a path, a dot file, ...).
    :raises FileNotFoundError: there is no such archive (or it is not a plain file).
    """
    if not ARCHIVE_NAME.fullmatch(name):
        raise BadArchiveName(f"must be an archive's file name ending in {backup.ARCHIVE_SUFFIX}")
    path = backups_dir(home) / name
    try:
        info = path.lstat()
    except FileNotFoundError:
        raise FileNotFoundError(name) from None
    if not stat.S_ISREG(info.st_mode):
        raise FileNotFoundError(name)
    return path


def human_size(count: float) -> str:
    """``1.4 MB``: binary multiples, as the CLI prints them."""
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if count < 1024 or unit == "TB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    return f"{count:.1f} TB"  # pragma: no cover - unreachable
