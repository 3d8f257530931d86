"""``hivematrix backup`` and ``hivematrix restore``; the work is done by
:mod:`hivematrix.helm.backup`."""

from __future__ import annotations

import sys
from pathlib import Path
from types import TracebackType

import click
from rich.panel import Panel
from rich.progress import (
    BarColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from hivematrix.cli import _home, console
from hivematrix.helm import backup as backups

#: Phases counted in bytes; the others count files.
_BYTE_PHASES = (backups.PHASE_ENCRYPT, backups.PHASE_VERIFY)


class _Bars:
    """Rich progress bars fed by the backup module's ``progress(phase, done, total)``."""

    def __init__(self) -> None:
        self._progress: Progress | None = None
        self._tasks: dict[str, TaskID] = {}

    def __call__(self, phase: str, done: int, total: int) -> None:
        if self._progress is None:
            self._progress = Progress(TextColumn("{task.description}"), BarColumn(),
                                      TextColumn("{task.fields[amount]}"), TimeElapsedColumn(),
                                      console=console)
            self._progress.start()
            self._tasks = {}
        task = self._tasks.get(phase)
        if task is None:
            task = self._tasks[phase] = self._progress.add_task(phase, total=total, amount="")
        self._progress.update(task, completed=done, total=total,
                              amount=_amount(phase, done, total))

    def close(self) -> None:
        """Stop drawing (before a prompt or a message); the next update starts anew."""
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    def __enter__(self) -> _Bars:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.close()


def _amount(phase: str, done: int, total: int) -> str:
    if phase not in _BYTE_PHASES:
        return f"{done}/{total}"
    return f"{_size(done)} / {_size(total)}"


def _size(count: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if count < 1024 or unit == "GB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    return f"{count:.1f} TB"  # pragma: no cover - unreachable


def register(main: click.Group) -> None:
    """Add ``backup`` and ``restore`` to the ``hivematrix`` command."""
    main.add_command(backup_command)
    main.add_command(restore_command)


@click.command("backup")
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path),
              help="Archive to write [default: $HIVEMATRIX_HOME/backups/"
                   "hivematrix-backup-<UTC time>.hmbackup].")
def backup_command(output: Path | None) -> None:
    """Back up every service database, the settings and the keys into one encrypted file.

    The key is $HIVEMATRIX_ENCRYPTION_KEY, else system.encryption_key in
    configs/master_config.json, else keys/backup.key (generated on first use). Keep a copy of
    it away from this machine: an archive cannot be restored without it.
    """
    home = _home()
    try:
        existing = backups.find_backup_key(home)
        key = existing or backups.backup_key(home)
        target = (output or backups.default_archive_path(home)).absolute()
        with _Bars() as bars:
            manifest = backups.create_backup(home, target, key, progress=bars)
    except backups.BackupError as exc:
        raise click.ClickException(str(exc)) from exc
    databases = [member.service for member in manifest.members
                 if member.kind in backups.DATABASE_KINDS]
    files = sum(member.kind == backups.KIND_FILE for member in manifest.members)
    console.print(f"[green]backup written:[/green] {target} ({_size(target.stat().st_size)}): "
                  f"{len(databases)} database(s) ({', '.join(map(str, databases)) or 'none'}), "
                  f"{files} settings and key files")
    if existing is None:
        console.print(Panel(
            f"A new backup key was generated and stored in [bold]{backups.backup_key_path(home)}"
            "[/bold].\n\nCopy it NOW to a safe place OUTSIDE this machine (a password manager, "
            "a printed sheet in a safe). Without this key no backup can ever be restored: if "
            "this machine is lost, so is the key kept on it.",
            title="[bold red]KEEP THE BACKUP KEY SAFE[/bold red]", border_style="red"))


def _restore_key(home: Path, key_file: Path | None) -> str:
    try:
        key = (key_file.read_text(encoding="utf-8").strip() if key_file
               else backups.find_backup_key(home))
    except (OSError, backups.BackupError) as exc:
        raise click.ClickException(str(exc)) from exc
    if not key:
        raise click.ClickException(
            f"no backup key: set ${backups.KEY_ENVIRONMENT_VARIABLE}, system.encryption_key in "
            f"configs/master_config.json, put it in {backups.backup_key_path(home)}, or pass "
            "--key-file")
    return key


def _show_plan(plan: backups.RestorePlan) -> None:
    manifest = plan.manifest
    console.print(f"Archive from [bold]{manifest.hostname}[/bold], made {manifest.created_at} "
                  f"by HiveMatrix {manifest.hivematrix_version}. It will overwrite:")
    for line in plan.overwrites:
        console.print(f"  - {line}", markup=False, highlight=False)
    if plan.services:
        console.print(f"and stop first: {', '.join(plan.services)}")


@click.command("restore")
@click.argument("archive", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--only", type=click.Choice(backups.ONLY_CHOICES), multiple=True,
              help="Restore only this part (repeatable): databases, postgresql, sqlite, "
                   "identity (its database), configs (settings and keys), files (other service "
                   "files) or graph.")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@click.option("--key-file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Read the backup key from this file instead of the usual places.")
def restore_command(archive: Path, only: tuple[str, ...], yes: bool,
                    key_file: Path | None) -> None:
    """Restore ARCHIVE: stop the affected services, then replace their databases and files.

    The whole archive is decrypted and checked before anything is stopped or changed. Start
    the stopped services again afterwards with `hivematrix start`.
    """
    if not yes and not sys.stdin.isatty():
        raise click.ClickException("refusing to restore without confirmation: input is not a "
                                   "terminal; pass --yes to restore anyway")
    home = _home()
    key = _restore_key(home, key_file)
    stopped: list[str] = []
    bars = _Bars()

    def confirm(plan: backups.RestorePlan) -> bool:
        bars.close()
        _show_plan(plan)
        return yes or click.confirm("Overwrite these?", default=False, err=True)

    def stop(names: list[str]) -> None:
        from hivematrix.helm import lifecycle

        for name in reversed(names):
            if lifecycle.stop(home, name):
                stopped.insert(0, name)
                console.print(f"{name}: stopped")

    try:
        with bars:
            result = backups.restore_backup(home, archive, key, only=only or None,
                                            stop_services=stop, confirm=confirm, progress=bars)
    except backups.BackupError as exc:
        if stopped:
            console.print(f"[yellow]stopped for the restore:[/yellow] {', '.join(stopped)}")
        raise click.ClickException(str(exc)) from exc
    for warning in result.warnings:
        console.print(f"[yellow]warning:[/yellow] {warning}")
    console.print(f"[green]restored[/green] {len(result.restored)} item(s) from {archive}")
    if stopped:
        console.print(f"Stopped for the restore: {', '.join(stopped)}. Start them again with "
                      f"[bold]hivematrix start {' '.join(stopped)}[/bold]")
    else:
        console.print("No affected service was running; start them with "
                      "[bold]hivematrix start[/bold]")
