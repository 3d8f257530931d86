"""The per-service supervisor, driving small stand-in programs as its service."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from hivematrix.helm import lifecycle, supervisor
from hivematrix.helm.supervisor import RotatingLog, pause_before_restart

pytestmark = pytest.mark.processes

#: A service stand-in: says hello with its pid, starts a helper in its own process group (as
#: gunicorn starts workers), then does what $MODE says.
SERVICE = textwrap.dedent("""
    import os, signal, subprocess, sys, time
    mode = os.environ["MODE"]
    helper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    print(f"hello from {os.getpid()} helper {helper.pid}", flush=True)
    if mode == "stubborn":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if mode == "crash":
        time.sleep(0.3)
        print("going down", flush=True)
        sys.exit(3)
    time.sleep(600)
""")


def wait_for(check: Callable[[], object], timeout: float = 15.0) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError("timed out waiting")


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def helpers_in(log: Path) -> list[tuple[int, int]]:
    """(service pid, helper pid) of every start the log shows."""
    found = []
    for line in log.read_text().splitlines():
        if line.startswith("hello from "):
            parts = line.split()
            found.append((int(parts[2]), int(parts[4])))
    return found


@pytest.fixture
def supervise(tmp_path: Path) -> Iterator[Callable[..., subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    script = tmp_path / "service.py"
    script.write_text(SERVICE)

    def run(mode: str, stop_timeout: float = 5.0) -> subprocess.Popen[bytes]:
        code = ("import sys; from pathlib import Path; from hivematrix.helm.supervisor import "
                "Supervisor; sys.exit(Supervisor(Path(sys.argv[1]), 'toy', stop_timeout="
                f"{stop_timeout}, command=[sys.executable, sys.argv[2]]).run())")
        process = subprocess.Popen([sys.executable, "-c", code, str(tmp_path), str(script)],
                                   env={**os.environ, "MODE": mode}, start_new_session=True)
        started.append(process)
        return process

    yield run
    for process in started:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    for pid_path in (tmp_path / "run").glob("*.child.pid"):
        pid = int(pid_path.read_text())
        if alive(pid):
            os.killpg(pid, signal.SIGKILL)


def test_pauses_grow_to_a_minute() -> None:
    assert [pause_before_restart(n) for n in range(1, 9)] == [1, 2, 4, 8, 16, 32, 60, 60]


def test_log_rotates_by_size_and_keeps_a_few(tmp_path: Path) -> None:
    path = tmp_path / "svc.log"
    path.write_bytes(b"from before\n")
    log = RotatingLog(path, max_bytes=100, backups=2)
    for number in range(30):
        log.write(f"line {number:02d} ".encode() + b"x" * 20 + b"\n")
    log.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["svc.log", "svc.log.1", "svc.log.2"]
    for name in ("svc.log", "svc.log.1", "svc.log.2"):
        assert (tmp_path / name).stat().st_size <= 100
    # Nothing is lost within what is kept: the newest lines, in order, across the files.
    kept = b"".join((tmp_path / name).read_bytes() for name in ("svc.log.2", "svc.log.1",
                                                               "svc.log"))
    numbers = [int(line.split()[1]) for line in kept.splitlines()]
    assert numbers == list(range(numbers[0], 30))


def test_a_crashing_service_is_started_again_with_its_log_appended(
        tmp_path: Path, supervise: Callable[..., subprocess.Popen[bytes]]) -> None:
    log = tmp_path / "logs" / "toy.log"
    log.parent.mkdir()
    log.write_text("an earlier run\n")
    process = supervise("crash")
    wait_for(lambda: len(helpers_in(log)) >= 2)
    state = wait_for(lambda: supervisor.State.read(tmp_path, "toy"))
    assert isinstance(state, supervisor.State) and state.restarts >= 1
    text = log.read_text()
    assert text.startswith("an earlier run\n")
    assert "going down" in text
    notes = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    crash = next(note for note in notes if "exited with code 3" in note["message"])
    assert crash["level"] == "ERROR" and crash["service"] == "toy"
    assert "starting again in 1 s" in crash["message"]
    first_service, first_helper = helpers_in(log)[0]
    # The crashed run's helper went with it: nothing of an old run is left behind.
    assert not alive(first_service) and not alive(first_helper)
    process.send_signal(signal.SIGTERM)
    assert process.wait(10) == 0


def test_stop_reaches_the_whole_process_group(
        tmp_path: Path, supervise: Callable[..., subprocess.Popen[bytes]]) -> None:
    log = tmp_path / "logs" / "toy.log"
    process = supervise("steady")
    wait_for(lambda: log.exists() and helpers_in(log))
    service, helper = helpers_in(log)[0]
    assert int((tmp_path / "run" / "toy.child.pid").read_text()) == service
    process.send_signal(signal.SIGTERM)
    assert process.wait(10) == 0
    assert not alive(service) and not alive(helper)
    assert not (tmp_path / "run" / "toy.child.pid").exists()
    assert "supervisor stopped" in log.read_text()


def test_a_service_ignoring_sigterm_is_killed_after_the_timeout(
        tmp_path: Path, supervise: Callable[..., subprocess.Popen[bytes]]) -> None:
    log = tmp_path / "logs" / "toy.log"
    process = supervise("stubborn", stop_timeout=1.0)
    wait_for(lambda: log.exists() and helpers_in(log))
    service, helper = helpers_in(log)[0]
    time.sleep(0.2)  # let it install its handler
    began = time.monotonic()
    process.send_signal(signal.SIGTERM)
    assert process.wait(10) == 0
    assert time.monotonic() - began >= 0.9
    assert not alive(service) and not alive(helper)


def test_sighup_restarts_the_service_at_once(
        tmp_path: Path, supervise: Callable[..., subprocess.Popen[bytes]]) -> None:
    log = tmp_path / "logs" / "toy.log"
    process = supervise("steady")
    wait_for(lambda: log.exists() and helpers_in(log))
    process.send_signal(signal.SIGHUP)
    wait_for(lambda: len(helpers_in(log)) == 2, timeout=5)
    (old, old_helper), (new, _new_helper) = helpers_in(log)
    assert not alive(old) and not alive(old_helper) and alive(new)
    assert "restarting on request" in log.read_text()
    process.send_signal(signal.SIGTERM)
    assert process.wait(10) == 0


def test_stop_from_the_cli_side_cleans_up_after_a_killed_supervisor(
        tmp_path: Path, supervise: Callable[..., subprocess.Popen[bytes]]) -> None:
    log = tmp_path / "logs" / "toy.log"
    process = supervise("steady")
    (tmp_path / "run").mkdir(exist_ok=True)
    (tmp_path / "run" / "toy.pid").write_text(f"{process.pid}\n")
    wait_for(lambda: log.exists() and helpers_in(log))
    service, helper = helpers_in(log)[0]
    os.kill(process.pid, signal.SIGKILL)  # the supervisor dies; its service lives on
    process.wait()
    assert alive(service)
    assert lifecycle.stop(tmp_path, "toy", timeout=2) is True
    assert not alive(service) and not alive(helper)
    assert not (tmp_path / "run" / "toy.pid").exists()
    assert lifecycle.stop(tmp_path, "toy") is False
