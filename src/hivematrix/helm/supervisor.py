"""One supervisor process per service: it runs the service, keeps its log and restarts it.

``hivematrix start`` launches ``hivematrix supervise <svc>`` detached; that process starts
``hivematrix run <svc>`` in a process group of its own, copies everything the service prints
into ``logs/<svc>.log`` (appended, rotated by size), and starts it again with growing pauses
when it exits without being asked to. SIGTERM stops the service's whole process group (TERM,
then KILL after a timeout) and then the supervisor; SIGHUP restarts the service at once.

A supervisor per service rather than one for all keeps a fault in one from touching the rest,
and lets ``hivematrix stop <svc>`` be a plain signal.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from hivematrix.common.files import write_atomic

#: A run at least this long counts as healthy: the next crash restarts after the first pause.
STABLE_SECONDS = 60.0
FIRST_PAUSE = 1.0
LONGEST_PAUSE = 60.0
LOG_MAX_BYTES = 10 * 1024 * 1024
LOG_BACKUPS = 5


def run_dir(home: Path) -> Path:
    return home / "run"


def pid_file(home: Path, name: str) -> Path:
    """The supervisor's pid: what ``stop`` signals."""
    return run_dir(home) / f"{name}.pid"


def child_pid_file(home: Path, name: str) -> Path:
    """The service's own pid (its process group's id)."""
    return run_dir(home) / f"{name}.child.pid"


def state_file(home: Path, name: str) -> Path:
    return run_dir(home) / f"{name}.state.json"


def log_file(home: Path, name: str) -> Path:
    return home / "logs" / f"{name}.log"


def pause_before_restart(failures: int) -> float:
    """Seconds to wait after the ``failures``-th crash in a row: 1, 2, 4 ... up to 60."""
    return float(min(LONGEST_PAUSE, FIRST_PAUSE * 2 ** max(0, failures - 1)))


@dataclass
class State:
    """What ``hivematrix status`` shows about a supervised service."""

    status: str  # starting | running | waiting | stopping
    restarts: int = 0
    started_at: str | None = None
    last_exit: int | None = None
    next_start_in: float | None = None

    @classmethod
    def read(cls, home: Path, name: str) -> State | None:
        try:
            data = json.loads(state_file(home, name).read_text(encoding="utf-8"))
            return cls(**data)
        except (FileNotFoundError, ValueError, TypeError):
            return None


class RotatingLog:
    """Appends lines to a file; past ``max_bytes`` it becomes ``.1`` (``.1`` becomes ``.2``...)."""

    def __init__(self, path: Path, max_bytes: int = LOG_MAX_BYTES,
                 backups: int = LOG_BACKUPS) -> None:
        self.path, self.max_bytes, self.backups = path, max_bytes, backups
        self._lock = threading.Lock()
        path.parent.mkdir(parents=True, exist_ok=True)
        self._out: IO[bytes] = open(path, "ab")  # noqa: SIM115 - closed in close()
        self._size = self._out.tell()

    def write(self, line: bytes) -> None:
        with self._lock:
            if self._size and self._size + len(line) > self.max_bytes:
                self._rotate()
            self._out.write(line)
            self._out.flush()
            self._size += len(line)

    def _rotate(self) -> None:
        self._out.close()
        for number in range(self.backups - 1, 0, -1):
            older = self.path.with_name(f"{self.path.name}.{number}")
            if older.exists():
                os.replace(older, self.path.with_name(f"{self.path.name}.{number + 1}"))
        if self.backups:
            os.replace(self.path, self.path.with_name(f"{self.path.name}.1"))
        else:
            self.path.unlink(missing_ok=True)
        self._out = open(self.path, "ab")  # noqa: SIM115
        self._size = 0

    def close(self) -> None:
        with self._lock:
            self._out.close()


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stop_group(pgid: int, timeout: float, reap: subprocess.Popen[bytes] | None = None) -> None:
    """TERM a process group, KILL what is left after ``timeout``, return once all are gone."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while group_alive(pgid) and time.monotonic() < deadline:
        if reap is not None:
            reap.poll()  # the leader must not linger as a zombie
        time.sleep(0.05)
    if group_alive(pgid):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)
        while group_alive(pgid):
            if reap is not None:
                reap.poll()
            time.sleep(0.02)
    if reap is not None:
        reap.wait()


class Supervisor:
    """Runs one service until told to stop; see the module's docstring."""

    def __init__(self, home: Path, name: str, *, stop_timeout: float = 20.0,
                 command: list[str] | None = None) -> None:
        self.home, self.name, self.stop_timeout = home, name, stop_timeout
        self.command = command or [sys.executable, "-m", "hivematrix.cli", "run", name]
        self.log = RotatingLog(log_file(home, name))
        self.state = State(status="starting")
        self._stopping = threading.Event()
        self._restart_now = threading.Event()
        self._wake = threading.Event()

    # --- signals ---

    def request_stop(self, *_args: object) -> None:
        self._stopping.set()
        self._wake.set()

    def request_restart(self, *_args: object) -> None:
        self._restart_now.set()
        self._wake.set()

    # --- the loop ---

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self.request_stop)
        signal.signal(signal.SIGINT, self.request_stop)
        signal.signal(signal.SIGHUP, self.request_restart)
        run_dir(self.home).mkdir(parents=True, exist_ok=True)
        failures = 0
        try:
            while not self._stopping.is_set():
                began = time.monotonic()
                code = self._run_once()
                if self._stopping.is_set():
                    break
                if self._restart_now.is_set():
                    self._restart_now.clear()
                    self.note("info", "restarting on request")
                    self.state.restarts += 1
                    continue
                failures = 0 if time.monotonic() - began >= STABLE_SECONDS else failures + 1
                pause = pause_before_restart(max(failures, 1))
                self.state.restarts += 1
                self.state.status, self.state.last_exit = "waiting", code
                self.state.next_start_in = pause
                self._save_state()
                self.note("error", f"exited with code {code} after "
                                   f"{time.monotonic() - began:.1f} s; starting again in "
                                   f"{pause:.0f} s")
                self._wake.clear()
                if not self._stopping.is_set():  # a stop that came just now still counts
                    self._wake.wait(pause)
                self._restart_now.clear()
        finally:
            self.note("info", "supervisor stopped")
            for path in (child_pid_file(self.home, self.name), state_file(self.home, self.name)):
                path.unlink(missing_ok=True)
            self.log.close()
        return 0

    def _run_once(self) -> int:
        child = subprocess.Popen(  # noqa: S603 - our own command line
            self.command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True)
        write_atomic(child_pid_file(self.home, self.name), f"{child.pid}\n")
        self.state.status = "running"
        self.state.started_at = datetime.now(UTC).isoformat(timespec="seconds")
        self.state.next_start_in = None
        self._save_state()
        assert child.stdout is not None
        copier = threading.Thread(target=self._copy, args=(child.stdout,), daemon=True)
        copier.start()
        while True:
            try:
                code = child.wait(timeout=0.5)
                break
            except subprocess.TimeoutExpired:
                if self._stopping.is_set() or self._restart_now.is_set():
                    self.state.status = "stopping"
                    self._save_state()
                    stop_group(child.pid, self.stop_timeout, reap=child)
                    code = child.returncode
                    break
        # Workers that outlived their master (it was killed) belong to this run too.
        if group_alive(child.pid):
            stop_group(child.pid, self.stop_timeout)
        copier.join(timeout=5)
        return code

    def _copy(self, stream: IO[bytes]) -> None:
        for line in iter(stream.readline, b""):
            self.log.write(line if line.endswith(b"\n") else line + b"\n")
        stream.close()

    def _save_state(self) -> None:
        write_atomic(state_file(self.home, self.name), json.dumps(asdict(self.state)))

    def note(self, level: str, message: str) -> None:
        """A line of the supervisor's own, in the services' JSON log format."""
        entry: dict[str, Any] = {
            "timestamp": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "level": level.upper(), "service": self.name,
            "logger": "hivematrix.helm.supervisor", "message": message}
        self.log.write(json.dumps(entry).encode() + b"\n")


def main(home: Path, name: str, stop_timeout: float) -> None:
    supervisor = Supervisor(home, name, stop_timeout=stop_timeout)
    supervisor.note("info", f"supervisor started (pid {os.getpid()})")
    sys.exit(supervisor.run())
