"""``hivematrix logs``: the central log from a shell.

Helm's API is asked first, with a short-lived admin token signed by Core's key. When Helm
does not answer (it is stopped, or the platform is being repaired), Helm's database is read
directly, so the logs are there exactly when they are needed most.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any, Protocol

import click
import httpx
from rich.console import Console
from rich.text import Text

from hivematrix.common.config import hivematrix_home, load_settings
from hivematrix.common.registry import read_services

LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL", "UNKNOWN")
STYLES = {"DEBUG": "dim", "INFO": "green", "WARNING": "yellow", "ERROR": "red",
          "CRITICAL": "bold white on red", "UNKNOWN": "magenta"}
DEFAULT_HELM_URL = "http://127.0.0.1:5004"

err = Console(stderr=True)


class LogSource(Protocol):
    description: str
    #: The highest entry id stored, as of the last fetch.
    latest_id: int

    def fetch(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        """Entries matching ``params`` (the ``GET /api/logs`` filters), newest first."""


class HelmUnavailable(Exception):
    """Helm's API cannot be used right now."""


class ApiSource:
    """Helm's ``GET /api/logs``."""

    def __init__(self, base_url: str, token: str, http: httpx.Client | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.description = f"Helm at {self.base_url}"
        self.latest_id = 0
        self._http = http or httpx.Client(timeout=5.0)
        self._headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}

    def fetch(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        query = {key: value for key, value in params.items() if value not in (None, "")}
        try:
            response = self._http.get(f"{self.base_url}/api/logs", params=query,
                                      headers=self._headers)
        except httpx.HTTPError as exc:
            raise HelmUnavailable(str(exc)) from exc
        if response.status_code >= 500:
            raise HelmUnavailable(f"Helm answered {response.status_code}")
        if response.status_code != 200:
            detail = response.json().get("detail") if response.headers.get(
                "content-type", "").endswith("json") else response.text[:200]
            raise click.ClickException(f"Helm refused the query ({response.status_code}): "
                                       f"{detail}")
        page = response.json()
        self.latest_id = int(page.get("latest_id") or 0)
        logs: list[dict[str, Any]] = page["logs"]
        return logs


class DatabaseSource:
    """Helm's database, read directly (Helm's ``DATABASE_URL``)."""

    def __init__(self, url: str) -> None:
        from hivematrix.common.db import Database

        self.description = "Helm's database (Helm is not answering)"
        self.latest_id = 0
        self._database = Database(url)

    def fetch(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        from sqlalchemy.exc import SQLAlchemyError

        from hivematrix.helm import logstore

        query = logstore.LogQuery(
            service=params.get("service"), level=params.get("level"),
            correlation_id=params.get("correlation_id"), limit=int(params.get("limit", 50)),
            after_id=params.get("after_id"))
        try:
            with self._database.sessionmaker() as session:
                found = [entry.to_dict() for entry in logstore.search(session, query)]
                self.latest_id = logstore.latest_id(session)
                return found
        except SQLAlchemyError as exc:
            raise click.ClickException(f"cannot read Helm's database: {exc}") from exc

    def close(self) -> None:
        self._database.dispose()


def helm_url(home: Path) -> str:
    entry = read_services(home / "services.json").get("helm") or {}
    return str(entry.get("url") or DEFAULT_HELM_URL)


def _api_source(home: Path) -> ApiSource | None:
    """Helm's API, if Helm answers and a token can be made; otherwise ``None``."""
    from hivematrix.helm.tokens import create_test_token

    try:
        token = create_test_token(home, level="admin", ttl=timedelta(minutes=5),
                                  username="hivematrix-cli")
    except Exception:  # no key ring yet (Core never started): the database is all there is
        return None
    source = ApiSource(helm_url(home), token)
    try:
        source.fetch({"limit": 1})
    except HelmUnavailable:
        return None
    return source


def _database_source(home: Path) -> DatabaseSource:
    from sqlalchemy import make_url

    url = load_settings("helm", {"HIVEMATRIX_HOME": str(home)})["DATABASE_URL"]
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database and \
            not Path(parsed.database).exists():
        raise click.ClickException(f"Helm is not answering and has no database at "
                                   f"{parsed.database} yet")
    return DatabaseSource(url)


def format_entry(entry: dict[str, Any]) -> Text:
    """One line per entry; log text is added as plain text (never as rich markup)."""
    level = str(entry.get("level") or "UNKNOWN")
    line = Text()
    line.append(str(entry.get("timestamp", ""))[:19].replace("T", " "), style="dim")
    line.append(" ")
    line.append(f"{level:<8}", style=STYLES.get(level, ""))
    line.append(" ")
    line.append(str(entry.get("service", "")), style="cyan")
    if entry.get("logger"):
        line.append(f" {entry['logger']}", style="dim")
    line.append(": ")
    line.append(str(entry.get("message", "")))
    if entry.get("correlation_id"):
        line.append(f" [{entry['correlation_id']}]", style="blue")
    if entry.get("user"):
        line.append(f" ({entry['user']})", style="dim")
    return line


def follow_entries(source: LogSource, params: dict[str, Any], latest: int,
                   interval: float) -> Iterator[dict[str, Any]]:
    """New entries as they arrive, oldest first, polling every ``interval`` seconds."""
    while True:
        time.sleep(interval)
        batch = source.fetch({**params, "after_id": latest, "limit": 1000})
        for entry in reversed(batch):
            latest = max(latest, int(entry["id"]))
            yield entry


@click.command("logs")
@click.argument("service", required=False)
@click.option("--tail", "-n", "tail", type=click.IntRange(1, 1000), default=50,
              show_default=True, help="How many of the latest entries to show.")
@click.option("--level", type=click.Choice(LEVELS, case_sensitive=False),
              help="Only entries at or above this level (UNKNOWN: lines that were not "
                   "log records).")
@click.option("--follow", "-f", is_flag=True, help="Keep printing new entries.")
@click.option("--correlation", "correlation_id", metavar="ID",
              help="Only entries of one request chain (X-Correlation-ID).")
@click.option("--interval", type=click.FloatRange(0.1, 60), default=2.0, show_default=True,
              help="Seconds between polls with --follow.")
def logs_command(service: str | None, tail: int, level: str | None, follow: bool,
                 correlation_id: str | None, interval: float) -> None:
    """Show the central log (all services, or SERVICE), oldest of the selection first."""
    home = hivematrix_home()
    source: LogSource | None = _api_source(home)
    if source is None:
        source = _database_source(home)
        err.print(f"[yellow]{source.description}[/yellow]")
    params: dict[str, Any] = {"service": service, "level": level.upper() if level else None,
                              "correlation_id": correlation_id}
    out = Console(highlight=False)
    entries = source.fetch({**params, "limit": tail})
    for entry in reversed(entries):
        out.print(format_entry(entry), soft_wrap=True)
    if not follow:
        return
    # Everything stored by now was already eligible for the listing above.
    latest = max([source.latest_id, *(int(entry["id"]) for entry in entries)])
    try:
        for entry in follow_entries(source, params, latest, interval):
            out.print(format_entry(entry), soft_wrap=True)
    except KeyboardInterrupt:
        return


def register(main: click.Group) -> None:
    main.add_command(logs_command)
