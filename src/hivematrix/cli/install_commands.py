"""``hivematrix install`` and ``hivematrix uninstall``: third-party services."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from hivematrix.helm import installer

console = Console(stderr=True)


def _home() -> Path:
    from hivematrix.cli import _home as home

    return home()


class _RichReporter(installer.Reporter):
    """Each step printed as a line; the current one and pip's latest line under a spinner."""

    def __init__(self, status: Any) -> None:
        self.status = status
        self.current = ""

    def step(self, message: str) -> None:
        self.current = message
        console.print(f"[dim]•[/dim] {escape(message)}", highlight=False)
        self.status.update(escape(message))

    def detail(self, line: str) -> None:
        if line.strip():
            self.status.update(f"{escape(self.current)} [dim]{escape(line.strip()[:100])}[/dim]")


@click.command("install")
@click.argument("package")
@click.option("--no-start", is_flag=True, help="Register and set it up, but do not start it.")
@click.option("--timeout", default=60.0, show_default=True,
              help="Seconds to wait for the new service to become healthy.")
@click.option("--admin-password", envvar="PGPASSWORD", default=None,
              help="The PostgreSQL administrator's password, when the service is set to "
                   "PostgreSQL [env PGPASSWORD].")
def install_command(package: str, no_start: bool, timeout: float,
                    admin_password: str | None) -> None:
    """Install a third-party service: PACKAGE is a pip requirement, a git URL or a path.

    The package is installed into the platform's virtualenv; each service it registers under
    the `hivematrix.services` entry points is added to apps_registry.json on a free port, gets
    its configuration files and database, and is started. A failed step undoes the others.
    """
    home = _home()
    try:
        with console.status(f"installing {escape(package)}...") as status:
            installed = installer.install(home, package, start=not no_start, timeout=timeout,
                                          admin_password=admin_password,
                                          reporter=_RichReporter(status))
    except installer.InstallError as exc:
        raise click.ClickException(str(exc)) from exc
    table = Table("service", "port", "url", "package", "source", "state",
                  title="installed")
    for item in installed:
        table.add_row(item.name, str(item.port), item.url, item.distribution,
                      escape(item.source), "[green]running[/green]" if item.started
                      else "not started")
    Console().print(table)
    if no_start:
        names = " ".join(item.name for item in installed)
        console.print(f"start with `hivematrix start {names}`", highlight=False)


@click.command("uninstall")
@click.argument("service")
@click.option("--purge", is_flag=True,
              help="Also delete its data: database (if Helm created it), instance files, logs.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--admin-password", envvar="PGPASSWORD", default=None,
              help="The PostgreSQL administrator's password, to drop its database with "
                   "--purge [env PGPASSWORD].")
def uninstall_command(service: str, purge: bool, yes: bool, admin_password: str | None) -> None:
    """Stop a third-party service, remove it from the registry and uninstall its package.

    Its data (database, instance configuration, logs) is kept unless --purge is given.
    Built-in services cannot be uninstalled.
    """
    home = _home()
    try:
        plan = installer.plan_uninstall(home, service)
    except installer.InstallError as exc:
        raise click.ClickException(str(exc)) from exc
    package = (f"package {plan.distribution}" + (f" {plan.version}" if plan.version else "")
               if plan.distribution else "no package installed")
    console.print(f"[bold]{escape(service)}[/bold] ({escape(package)})", highlight=False)
    if plan.dependents:
        console.print(f"[yellow]warning:[/yellow] {', '.join(plan.dependents)} depend(s) on "
                      f"{escape(service)}", highlight=False)
    if purge and plan.data:
        console.print("[red]will be deleted:[/red]", highlight=False)
        for item in plan.data:
            console.print(f"  {escape(item)}", highlight=False)
    elif plan.data:
        console.print("kept: " + escape("; ".join(plan.data)), highlight=False)
    if not yes:
        click.confirm(f"Uninstall {service}" + (" and delete its data" if purge else "") + "?",
                      abort=True, err=True)
    try:
        with console.status(f"uninstalling {escape(service)}...") as status:
            installer.uninstall(home, service, purge=purge, admin_password=admin_password,
                                reporter=_RichReporter(status))
    except installer.InstallError as exc:
        raise click.ClickException(str(exc)) from exc
    console.print(f"[green]{escape(service)}: uninstalled[/green]"
                  + ("; its data was deleted" if purge else "; its data is kept (remove it "
                     f"with `hivematrix uninstall {escape(service)} --purge`)"), highlight=False)


def register(main: click.Group) -> None:
    """Add these commands to the ``hivematrix`` group."""
    main.add_command(install_command)
    main.add_command(uninstall_command)
