"""Starting services in the background, waiting until they are healthy, and stopping them.

Each service runs as its own process group (gunicorn master and workers); its pid is kept in
``$HIVEMATRIX_HOME/run/<svc>.pid`` and its output in ``logs/<svc>.log``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx


@dataclass(frozen=True)
class Running:
    name: str
    pid: int | None
    url: str
    healthy: bool


def pid_file(home: Path, name: str) -> Path:
    return home / "run" / f"{name}.pid"


def read_pid(home: Path, name: str) -> int | None:
    """The pid of a running service, or ``None`` (a stale pid file is removed)."""
    path = pid_file(home, name)
    try:
        pid = int(path.read_text().strip())
        os.kill(pid, 0)
    except (FileNotFoundError, ValueError, ProcessLookupError):
        path.unlink(missing_ok=True)
        return None
    except PermissionError:
        pass  # alive, owned by someone else
    return pid


def is_healthy(url: str, timeout: float = 2.0) -> bool:
    try:
        return httpx.get(f"{url}/health", timeout=timeout).status_code == 200
    except httpx.HTTPError:
        return False


def spawn(home: Path, name: str, env: dict[str, str] | None = None) -> int:
    """Start ``hivematrix run <name>`` detached; returns its pid."""
    log_path = home / "logs" / f"{name}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    pid_file(home, name).parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        process = subprocess.Popen(  # noqa: S603 - our own executable, fixed arguments
            [sys.executable, "-m", "hivematrix.cli", "run", name],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env={**os.environ, "HIVEMATRIX_HOME": str(home), **(env or {})},
            start_new_session=True,
        )
    pid_file(home, name).write_text(f"{process.pid}\n")
    return process.pid


def wait_healthy(url: str, pid: int, timeout: float = 60.0) -> bool:
    """Poll ``/health`` until it answers 200, the process dies, or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if is_healthy(url, timeout=1.0):
            return True
        try:
            finished, _status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            finished = 0 if _alive(pid) else pid
        if finished:
            return False
        time.sleep(0.2)
    return False


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stop(home: Path, name: str, timeout: float = 20.0) -> bool:
    """Stop a service's process group: TERM, then KILL after ``timeout``. True if it ran."""
    pid = read_pid(home, name)
    if pid is None:
        return False
    _signal_group(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while _group_alive(pid) and time.monotonic() < deadline:
        _reap(pid)
        time.sleep(0.1)
    if _group_alive(pid):
        _signal_group(pid, signal.SIGKILL)
        while _group_alive(pid):
            _reap(pid)
            time.sleep(0.05)
    pid_file(home, name).unlink(missing_ok=True)
    return True


def _signal_group(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, sig)


def _group_alive(pid: int) -> bool:
    try:
        os.killpg(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _reap(pid: int) -> None:
    # Our own child would otherwise linger as a zombie and look alive.
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
