"""Starting, stopping and describing supervised services (what the CLI verbs do).

Each service has a supervisor (:mod:`hivematrix.helm.supervisor`) whose pid is in
``run/<svc>.pid``; the service itself runs in its own process group, its pid in
``run/<svc>.child.pid``.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil

from hivematrix.helm.supervisor import (
    State,
    child_pid_file,
    group_alive,
    log_file,
    pid_file,
    stop_group,
)


class PortTaken(Exception):
    """Something that is not this service listens on its port."""


def _read_pid(path: Path) -> int | None:
    try:
        pid = int(path.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    return pid if psutil.pid_exists(pid) and not _zombie(pid) else None


def _zombie(pid: int) -> bool:
    try:
        return bool(psutil.Process(pid).status() == psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return True


def supervisor_pid(home: Path, name: str) -> int | None:
    """The running supervisor's pid, or ``None`` (a stale pid file is removed)."""
    pid = _read_pid(pid_file(home, name))
    if pid is None:
        pid_file(home, name).unlink(missing_ok=True)
    return pid


def service_pid(home: Path, name: str) -> int | None:
    return _read_pid(child_pid_file(home, name))


def health(url: str, timeout: float = 2.0) -> str:
    """``healthy``, ``degraded`` or ``unhealthy`` from ``/health``; ``unreachable`` if silent."""
    try:
        answer = httpx.get(f"{url}/health", timeout=timeout)
    except httpx.HTTPError:
        return "unreachable"
    with contextlib.suppress(ValueError, AttributeError):
        status = answer.json().get("status")
        if status in ("healthy", "degraded", "unhealthy"):
            return str(status)
    return "healthy" if answer.status_code == 200 else "unhealthy"


def port_holder(port: int, host: str = "127.0.0.1") -> str | None:
    """Who listens on ``port`` (``"nginx (pid 12)"``, or ``"another program"``), else ``None``."""
    probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        probe.bind((host, port))
    except OSError as exc:
        if exc.errno != errno.EADDRINUSE:
            raise
    else:
        return None
    finally:
        probe.close()
    with contextlib.suppress(psutil.Error, OSError):
        for connection in psutil.net_connections(kind="tcp"):
            if (connection.status == psutil.CONN_LISTEN and connection.laddr
                    and connection.laddr.port == port and connection.pid):
                with contextlib.suppress(psutil.Error):
                    return f"{psutil.Process(connection.pid).name()} (pid {connection.pid})"
    return "another program"


def start(home: Path, name: str, port: int, *, stop_timeout: float = 20.0) -> int:
    """Launch the service's supervisor, detached; returns the supervisor's pid.

    Refused with :class:`PortTaken` when something else already listens on ``port``.
    """
    holder = port_holder(port)
    if holder is not None:
        raise PortTaken(f"{name} cannot start: port {port} is already in use by {holder}. "
                        f"Stop that program or give {name} another port in apps_registry.json.")
    log = log_file(home, name)
    log.parent.mkdir(parents=True, exist_ok=True)
    pid_file(home, name).parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:  # only the supervisor's own crash, should it have one
        process = subprocess.Popen(  # noqa: S603 - our own executable, fixed arguments
            [sys.executable, "-m", "hivematrix.cli", "supervise", name,
             "--stop-timeout", str(stop_timeout)],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env={**os.environ, "HIVEMATRIX_HOME": str(home)}, start_new_session=True)
    pid_file(home, name).write_text(f"{process.pid}\n")
    return process.pid


def wait_healthy(home: Path, name: str, url: str, timeout: float = 60.0, *,
                 check: Callable[[], str] | None = None) -> bool:
    """Poll ``/health`` (or ``check``, for what is not HTTP) until it says healthy, the
    supervisor is gone, or time is up."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (check() if check else health(url, timeout=1.0)) == "healthy":
            return True
        if supervisor_pid(home, name) is None:
            return False
        time.sleep(0.2)
    return False


def stop(home: Path, name: str, timeout: float = 20.0) -> bool:
    """Stop the supervisor and with it the service; True when something was running.

    The supervisor stops the service's process group itself; should it not manage within
    ``timeout`` (or be gone already), what is left is stopped from here.
    """
    supervisor = supervisor_pid(home, name)
    child = service_pid(home, name)
    if supervisor is None and child is None:
        return False
    if supervisor is not None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(supervisor, signal.SIGTERM)
        deadline = time.monotonic() + timeout + 5
        while _running(supervisor) and time.monotonic() < deadline:
            time.sleep(0.05)
        if _running(supervisor):
            stop_group(supervisor, 0)
    if child is not None and group_alive(child):
        stop_group(child, timeout)
    for path in (pid_file(home, name), child_pid_file(home, name)):
        path.unlink(missing_ok=True)
    return True


def _running(pid: int) -> bool:
    # The CLI that started a supervisor may be its parent: reap it, so it does not linger.
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
    return psutil.pid_exists(pid) and not _zombie(pid)


@dataclass(frozen=True)
class Status:
    name: str
    state: str  # running | starting | restarting | stopped
    health: str
    pid: int | None
    port: int
    cpu_percent: float | None
    memory_mb: float | None
    uptime_seconds: float | None
    restarts: int


def _tree(pid: int) -> list[psutil.Process]:
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.Error:
        return []


def statuses(home: Path, services: Iterable[tuple[str, str, int]],
             sample_seconds: float = 0.2, *,
             checks: Mapping[str, Callable[[], str]] | None = None) -> list[Status]:
    """The status of each ``(name, url, port)``; CPU is sampled once over all of them.

    Health comes from ``/health``, or from ``checks[name]`` for what is not HTTP.
    """
    listed = list(services)
    trees = {name: _tree(pid) for name, _url, _port in listed
             if (pid := service_pid(home, name)) is not None}
    for tree in trees.values():
        for process in tree:
            with contextlib.suppress(psutil.Error):
                process.cpu_percent(None)
    if trees:
        time.sleep(sample_seconds)
    found = []
    for name, url, port in listed:
        supervisor = supervisor_pid(home, name)
        state = State.read(home, name)
        tree = trees.get(name, [])
        cpu = memory = uptime = None
        if tree:
            cpu = memory = 0.0
            for process in tree:
                with contextlib.suppress(psutil.Error):
                    cpu += process.cpu_percent(None)
                    memory += process.memory_info().rss / 2**20
            with contextlib.suppress(psutil.Error):
                uptime = time.time() - tree[0].create_time()
        if supervisor is None:
            label, checked = "stopped", "-"
        else:
            check = (checks or {}).get(name)
            checked = check() if check else health(url)
            waiting = state is not None and state.status == "waiting"
            label = "restarting" if waiting else (
                "running" if checked == "healthy" else "starting")
        found.append(Status(name=name, state=label, health=checked,
                            pid=tree[0].pid if tree else None, port=port, cpu_percent=cpu,
                            memory_mb=memory, uptime_seconds=uptime,
                            restarts=state.restarts if state else 0))
    return found


def restart_now(home: Path, name: str) -> bool:
    """Ask a service's supervisor to restart it at once (SIGHUP); False when unsupervised."""
    supervisor = supervisor_pid(home, name)
    if supervisor is None:
        return False
    try:
        os.kill(supervisor, signal.SIGHUP)
    except ProcessLookupError:
        return False
    return True
