"""``hivematrix config``: master_config.json and the files generated from it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
from rich.console import Console

from hivematrix.common.registry import ServiceSpec, discover_services
from hivematrix.helm import configs

console = Console(stderr=True)


def _home() -> Path:
    from hivematrix.cli import _home as home

    return home()


@click.group("config")
def config_group() -> None:
    """Platform settings (configs/master_config.json) and each service's generated files."""


@config_group.command("get")
@click.argument("key")
def config_get(key: str) -> None:
    """Print a setting, e.g. `system.log_level` (JSON for sections)."""
    try:
        value = configs.get(configs.load(_home()), key)
    except KeyError:
        raise click.ClickException(f"no setting {key!r}") from None
    click.echo(value if isinstance(value, str) else json.dumps(value, indent=2))


@config_group.command("set")
@click.argument("key")
@click.argument("value")
@click.option("--sync/--no-sync", default=True, show_default=True,
              help="Regenerate every service's files afterwards.")
def config_set(key: str, value: str, sync: bool) -> None:
    """Set a setting (VALUE is read as JSON when it parses: 5432, true, {...})."""
    home = _home()
    try:
        stored = configs.set_value(home, key, value)
        if sync:
            configs.sync_all(home, discover_services())
    except configs.ConfigError as exc:
        raise click.ClickException(str(exc)) from exc
    console.print(f"{key} = {json.dumps(stored)}" + ("; services' files regenerated (restart "
                                                     "them to apply)" if sync else ""))


def _one(service: str) -> tuple[ServiceSpec, dict[str, Any]]:
    specs = discover_services()
    if service not in specs:
        raise click.BadParameter(f"unknown service {service!r}", param_hint="SERVICE")
    try:
        config = configs.load(_home())
        configs.validate(config)
    except configs.ConfigError as exc:
        raise click.ClickException(str(exc)) from exc
    return specs[service], config


@config_group.command("write-dotenv")
@click.argument("service")
def write_dotenv(service: str) -> None:
    """Regenerate SERVICE's .flaskenv (its secrets are kept)."""
    spec, config = _one(service)
    console.print(f"wrote {configs.write_dotenv(_home(), spec, config)}")


@config_group.command("write-conf")
@click.argument("service")
def write_conf(service: str) -> None:
    """Regenerate SERVICE's instance/<svc>.conf (its database)."""
    spec, config = _one(service)
    path = configs.write_conf(_home(), spec, config)
    console.print(f"wrote {path}" if path else f"{service} has no database")


@config_group.command("sync-all")
def sync_all() -> None:
    """Regenerate every service's files from master_config.json (also done by `start`)."""
    try:
        written = configs.sync_all(_home(), discover_services())
    except configs.ConfigError as exc:
        raise click.ClickException(str(exc)) from exc
    console.print(f"{len(written)} files checked")


def register(main: click.Group) -> None:
    main.add_command(config_group)
