"""``hivematrix update-config``, ``hivematrix list`` and ``hivematrix systemd install``."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from hivematrix.cli import _home
from hivematrix.common.registry import discover_services
from hivematrix.helm import apps, embedded, systemd

console = Console(stderr=True)


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


@click.command("update-config")
def update_config_command() -> None:
    """Add newly installed services to apps_registry.json and regenerate services.json."""
    home = _home()
    specs = discover_services()
    files = [home / apps.REGISTRY_FILE, home / apps.SERVICES_FILE,
             home / apps.MASTER_SERVICES_FILE]
    before = {path: _read(path) for path in files}
    try:
        registry = apps.sync_registry(home, specs)
        apps.write_service_documents(home, registry, specs)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    report = registry.report
    for line in report.describe():
        colour = "yellow" if line.startswith("port ") or "not installed" in line else "green"
        console.print(f"[{colour}]{line}[/{colour}]", highlight=False)
    changed = [path.name for path in files if _read(path) != before[path]]
    if changed:
        console.print(f"written: {', '.join(changed)} in {home}", highlight=False)
    else:
        console.print("nothing to change", highlight=False)
    if report.conflicts:
        console.print("[yellow]warning:[/yellow] services sharing a port cannot all start; "
                      f"change one in {home / apps.REGISTRY_FILE}", highlight=False)


@click.command("list")
def list_command() -> None:
    """Show the services in apps_registry.json and whether each is installed."""
    home = _home()
    specs = discover_services()
    try:
        registry = apps.Registry.load(home)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    table = Table("service", "port", "enabled", "source", "installed", "depends on")
    entries = sorted(registry.services.items(), key=lambda item: (item[1].port, item[0]))
    for name, entry in entries:
        table.add_row(name, str(entry.port), "yes" if entry.enabled else "no", entry.source,
                      "yes" if name in specs else "[red]no[/red]",
                      ", ".join(entry.depends_on) or "-")
    Console().print(table)
    unregistered = [name for name in specs if name not in registry.services]
    if unregistered:
        console.print(f"installed but not registered yet: {', '.join(unregistered)} "
                      "(run `hivematrix update-config`)", highlight=False)


@click.group("systemd")
def systemd_group() -> None:
    """Run the platform under systemd."""


@systemd_group.command("install")
@click.option("--output", type=click.Path(file_okay=False, path_type=Path),
              default=systemd.DEFAULT_DIRECTORY, show_default=True,
              help="Directory the unit files are written to.")
@click.option("--user", help="Run the services as this user (default: root).")
def systemd_install_command(output: Path, user: str | None) -> None:
    """Write a unit per enabled service and hivematrix.target that starts them all.

    Uses apps_registry.json as it is; run `hivematrix init` (as the user the services run
    as) first. Nothing in $HIVEMATRIX_HOME is changed.
    """
    home = _home()
    if not apps.Registry.path_for(home).exists():
        raise click.ClickException(f"no {apps.REGISTRY_FILE} in {home}; run `hivematrix init` "
                                   "first (as the user the services will run as)")
    specs = discover_services()
    try:
        registry = apps.Registry.load(home)
        dependencies = {name: "embedded graph store" for name in
                        embedded.configured(home, specs, prepare=False)}
        texts = systemd.units(home, registry, specs, python=sys.executable, user=user,
                              embedded=dependencies)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    try:
        written = systemd.install_units(output, texts)
    except PermissionError as exc:
        raise click.ClickException(f"cannot write to {output} ({exc.strerror}); run as root "
                                   "or choose another --output") from exc
    for path in written:
        console.print(f"[green]wrote[/green] {path}", highlight=False)
    unregistered = [name for name in specs if name not in registry.services]
    if unregistered:
        console.print(f"[yellow]not included[/yellow] (not in {apps.REGISTRY_FILE} yet): "
                      f"{', '.join(unregistered)}; run `hivematrix update-config` and install "
                      "again", highlight=False)
    for path in systemd.stale_units(output, texts):
        console.print(f"[yellow]stale[/yellow] {path} is for a service no longer enabled; "
                      f"`systemctl disable --now {path.name}` and remove it", highlight=False)
    if user is None:
        console.print("[yellow]note:[/yellow] the services will run as root; pass --user to "
                      "run them as the owner of $HIVEMATRIX_HOME", highlight=False)
    console.print("next: systemctl daemon-reload && systemctl enable --now "
                  f"{systemd.TARGET}", highlight=False)


def register(main: click.Group) -> None:
    """Add these commands to the ``hivematrix`` group."""
    main.add_command(update_config_command)
    main.add_command(list_command)
    main.add_command(systemd_group)
