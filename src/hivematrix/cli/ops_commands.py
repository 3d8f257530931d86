"""``hivematrix security audit`` and ``hivematrix token create``."""

from __future__ import annotations

import json
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from hivematrix.common.config import master_config_path
from hivematrix.common.registry import read_services
from hivematrix.helm import audit

console = Console(stderr=True)
COLOURS = {"none": "green", "low": "cyan", "medium": "yellow", "high": "bold red"}


def _home() -> Path:
    from hivematrix.cli import _home as home

    return home()


def _master_config(home: Path) -> dict[str, object]:
    try:
        data = json.loads(master_config_path(home).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    return data if isinstance(data, dict) else {}


def _environment(home: Path) -> str:
    system = _master_config(home).get("system")
    return str(system.get("environment", "development")) if isinstance(system, dict) \
        else "development"


def _extra_public_ports(home: Path) -> list[int]:
    """Nexus's plain-HTTP redirect port, when it has one, is public too."""
    from hivematrix.common.config import load_settings
    from hivematrix.nexus import DEFAULTS

    try:
        port = int(load_settings("nexus", defaults=DEFAULTS)["NEXUS_HTTP_REDIRECT_PORT"] or 0)
    except (KeyError, ValueError, OSError):
        return []
    return [port] if port else []


def run_audit(home: Path) -> audit.Report:
    return audit.audit(read_services(home / "services.json"), audit.listeners(),
                       audit.firewall_status())


def warn_if_exposed(home: Path) -> None:
    """After ``start``: say loudly when a service faces the network that should not."""
    report = run_audit(home)
    for finding in report.at_least("medium"):
        console.print(f"[{COLOURS[finding.severity]}]SECURITY ({finding.severity}):"
                      f"[/{COLOURS[finding.severity]}] {finding.message}")


@click.group("security")
def security_group() -> None:
    """Security checks of this machine's HiveMatrix."""


@security_group.command("audit")
@click.option("--generate-firewall", "ufw_out", type=click.Path(dir_okay=False, path_type=Path),
              help="Write a ufw script allowing only SSH and Nexus ('-' for stdout).")
@click.option("--generate-iptables", "iptables_out",
              type=click.Path(dir_okay=False, path_type=Path),
              help="Write an iptables script allowing only SSH and Nexus ('-' for stdout).")
def audit_command(ufw_out: Path | None, iptables_out: Path | None) -> None:
    """Which services listen on which addresses (only Nexus may go beyond 127.0.0.1), and
    whether a firewall is up. Exits 2 when something is exposed that must not be."""
    home = _home()
    services = read_services(home / "services.json")
    report = run_audit(home)
    table = Table("severity", "service", "finding", title=f"firewall: {report.firewall}")
    for finding in sorted(report.findings, key=lambda f: -audit.SEVERITY_ORDER.index(f.severity)):
        colour = COLOURS[finding.severity]
        table.add_row(f"[{colour}]{finding.severity}[/{colour}]", finding.service or "-",
                      finding.message)
    Console().print(table)
    extra = _extra_public_ports(home)
    for target, script in ((ufw_out, audit.ufw_script), (iptables_out, audit.iptables_script)):
        if target is None:
            continue
        text = script(services, extra)
        if str(target) == "-":
            click.echo(text, nl=False)
        else:
            target.write_text(text, encoding="utf-8")
            target.chmod(0o700)
            console.print(f"wrote {target}; review it, then run it as root")
    console.print(f"overall: [{COLOURS[report.severity]}]{report.severity}[/]")
    if report.severity == "high":
        raise SystemExit(2)


@click.group("token")
def token_group() -> None:
    """Test tokens."""


@token_group.command("create")
@click.option("--level", type=click.Choice(["admin", "technician", "billing", "client"]),
              default="technician", show_default=True)
@click.option("--ttl", default="1h", show_default=True, help="Lifetime: 30m, 1h ... at most 24h.")
@click.option("--user", "username", default="test-user", show_default=True)
@click.option("--force", is_flag=True, help="Allow it where the environment is production.")
def token_create(level: str, ttl: str, username: str, force: bool) -> None:
    """Print a JWT signed with Core's key, to call an endpoint by hand:

    curl -H "Authorization: Bearer $(hivematrix token create)" http://127.0.0.1:5040/api/data
    """
    from hivematrix.core.keyring import KeyRingError
    from hivematrix.helm import tokens

    home = _home()
    if _environment(home) == "production" and not force:
        raise click.ClickException("this is a production installation: test tokens are "
                                   "refused unless --force is given")
    try:
        lifetime = tokens.parse_ttl(ttl)
        token = tokens.create_test_token(home, level=level, ttl=lifetime, username=username)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--ttl") from exc
    except KeyRingError as exc:
        raise click.ClickException(f"{exc} (start Core once, or run `hivematrix init`)") from exc
    console.print(f"[yellow]test token[/yellow] for {username} ({level}), valid "
                  f"{int(lifetime.total_seconds())} s")
    click.echo(token)


def register(main: click.Group) -> None:
    main.add_command(security_group)
    main.add_command(token_group)
