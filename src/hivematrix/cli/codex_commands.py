"""``hivematrix codex sync``: run a Codex sync from a shell, with a progress display.

It uses Codex's own settings and database (as the running service does) and records the run
as a job like any other, so it shows in the sync page's history; a run of the same kind that
is already in progress (from the scheduler, say) is refused, not doubled.
"""

from __future__ import annotations

import click
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

console = Console(stderr=True)


def register(main: click.Group) -> None:
    @main.group("codex")
    def codex_group() -> None:
        """Codex: master data sync."""

    @codex_group.command("sync")
    @click.argument("kind", type=click.Choice(["psa", "tickets", "rmm", "agents"]))
    @click.option("--full", is_flag=True,
                  help="Tickets: the whole history instead of what changed since the last run.")
    def sync_command(kind: str, full: bool) -> None:
        """Sync companies/contacts/agents (psa), tickets, RMM devices (rmm) or staff (agents)."""
        from sqlalchemy import select

        from hivematrix.codex import SERVICE
        from hivematrix.codex.models import SyncJob
        from hivematrix.codex.settings import DEFAULTS, BadSetting
        from hivematrix.codex.sync import runner, service
        from hivematrix.common.config import load_settings
        from hivematrix.common.db import Database, current_revision

        config = load_settings(SERVICE.name, defaults=DEFAULTS)
        assert SERVICE.migrations
        if current_revision(SERVICE.migrations, config["DATABASE_URL"]) is None:
            raise click.ClickException("Codex's database is not set up; run "
                                       "`hivematrix db upgrade codex` first")
        database = Database(config["DATABASE_URL"])
        try:
            with Progress(SpinnerColumn(), TextColumn("[bold]{task.description}"),
                          TextColumn("{task.completed} read"), TimeElapsedColumn(),
                          console=console, transient=True) as progress:
                task = progress.add_task(f"{kind} sync", total=None)

                def report(phase: str, done: int) -> None:
                    progress.update(task, description=f"{kind} sync: {phase}", completed=done)

                job_id, status = service.run(config, database, kind, full=full,
                                             triggered_by="cli", progress=report)
            with database.transaction() as session:
                job = session.scalar(select(SyncJob).where(SyncJob.id == job_id))
                assert job is not None
                counts, error = job.counts, job.error
        except (BadSetting, runner.JobRunning) as exc:
            raise click.ClickException(str(exc)) from exc
        finally:
            database.dispose()
        for phase, numbers in counts.items():
            summary = ", ".join(f"{value} {name}" for name, value in numbers.items() if value)
            console.print(f"  {phase}: {summary or 'nothing to do'}")
        style = {"succeeded": "green", "partial": "yellow"}.get(status, "red")
        console.print(f"[{style}]{kind} sync {status}[/] (job {job_id})")
        if error:
            console.print(f"[red]{error}[/]")
        if status == "failed":
            raise SystemExit(1)
        if status == "partial":
            raise SystemExit(2)
