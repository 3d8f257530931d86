"""``hivematrix logs``: through Helm's API when Helm answers, from its database when not."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from hivematrix.cli import main
from hivematrix.cli.logs_commands import DatabaseSource, follow_entries
from hivematrix.common import db
from hivematrix.common.config import load_settings
from hivematrix.common.testing import FakeCore, TokenFactory, free_port, serve_wsgi
from hivematrix.core import tokens as core_tokens
from hivematrix.core.keyring import KeyRing
from hivematrix.helm import SERVICE, create_app, logstore


def add_entries(url: str, *entries: dict[str, Any], service: str = "codex") -> None:
    database = db.Database(url)
    base = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
    rows = [logstore.row_from_record(
        {"timestamp": (base + timedelta(seconds=n)).isoformat(), **entry},
        service=entry.get("service", service), source="push")
        for n, entry in enumerate(entries)]
    with database.transaction() as session:
        logstore.store(session, rows)
    database.dispose()


SAMPLE = [
    {"level": "INFO", "message": "first codex line", "correlation_id": "c-1"},
    {"level": "ERROR", "message": "codex broke [red]not markup[/red]", "correlation_id": "c-1",
     "user": "alice"},
    {"level": "WARNING", "message": "ledger slow", "service": "ledger"},
    {"level": "DEBUG", "message": "last codex line"},
]


@pytest.fixture
def helm_down(hm_home: Path) -> str:
    """Helm registered on a port where nothing listens, with its default database filled."""
    port = free_port()
    (hm_home / "services.json").write_text(json.dumps(
        {"helm": {"url": f"http://127.0.0.1:{port}", "port": port}}))
    url = load_settings("helm")["DATABASE_URL"]
    assert SERVICE.migrations
    db.upgrade(SERVICE.migrations, url)
    add_entries(url, *SAMPLE)
    return url


def run(*args: str) -> Any:
    return CliRunner().invoke(main, ["logs", *args], catch_exceptions=False)


def test_reads_the_database_when_helm_does_not_answer(helm_down: str) -> None:
    result = run()
    assert result.exit_code == 0, result.output
    assert "Helm is not answering" in result.stderr
    lines = result.stdout.splitlines()
    assert [line.split(": ", 1)[1] for line in lines] == [
        "first codex line [c-1]", "codex broke [red]not markup[/red] [c-1] (alice)",
        "ledger slow", "last codex line"]
    assert lines[1].split()[2:4] == ["ERROR", "codex:"]


@pytest.mark.parametrize(("args", "expected"), [
    (("codex",), ["first codex line", "codex broke", "last codex line"]),
    (("codex", "--tail", "1"), ["last codex line"]),
    (("--level", "warning"), ["codex broke", "ledger slow"]),
    (("--correlation", "c-1"), ["first codex line", "codex broke"]),
])
def test_filters(helm_down: str, args: tuple[str, ...], expected: list[str]) -> None:
    result = run(*args)
    assert result.exit_code == 0, result.output
    assert [line.split(": ", 1)[1].split(" [")[0] for line in result.stdout.splitlines()] == \
        expected


def test_no_helm_and_no_database_is_a_clear_error(hm_home: Path) -> None:
    port = free_port()
    (hm_home / "services.json").write_text(json.dumps(
        {"helm": {"url": f"http://127.0.0.1:{port}", "port": port}}))
    result = CliRunner().invoke(main, ["logs"])
    assert result.exit_code == 1
    assert "no database" in result.output


def test_follow_yields_new_entries(helm_down: str) -> None:
    source = DatabaseSource(helm_down)
    try:
        source.fetch({"limit": 10})
        following = follow_entries(source, {"service": "codex"}, source.latest_id, 0.01)
        add_entries(helm_down, {"level": "INFO", "message": "ledger only", "service": "ledger"},
                    {"level": "INFO", "message": "new codex line", "seq": 1, "pid": 1})
        assert next(following)["message"] == "new codex line"
    finally:
        source.close()


@pytest.fixture
def helm_up(hm_home: Path, tmp_path: Path) -> Iterator[str]:
    """A real Helm over HTTP, trusting the key ring in $HIVEMATRIX_HOME/keys (as Core does)."""
    ring = KeyRing.open(hm_home / "keys", publish_for=core_tokens.USER_TOKEN_LIFETIME)
    core = FakeCore(keys=ring.published(), tokens=TokenFactory(ring.current))
    url = f"sqlite:///{tmp_path}/elsewhere.db"  # not the default: proves the API was used
    assert SERVICE.migrations
    db.upgrade(SERVICE.migrations, url)
    add_entries(url, *SAMPLE)
    with serve_wsgi(core.wsgi()) as core_url:
        app = create_app({"HIVEMATRIX_HOME": str(hm_home), "CORE_SERVICE_URL": core_url,
                          "DATABASE_URL": url, "HELM_BACKGROUND_JOBS": False,
                          "SECRET_KEY": "k"})
        with serve_wsgi(app) as helm_url:
            port = int(helm_url.rsplit(":", 1)[1])
            (hm_home / "services.json").write_text(json.dumps(
                {"helm": {"url": helm_url, "port": port}}))
            yield helm_url
        app.extensions["hivematrix.db"].dispose()


def test_asks_helm_when_it_answers(helm_up: str) -> None:
    result = run("codex", "--level", "ERROR")
    assert result.exit_code == 0, result.output
    assert "not answering" not in result.stderr
    assert [line.split(": ", 1)[1] for line in result.stdout.splitlines()] == [
        "codex broke [red]not markup[/red] [c-1] (alice)"]
