"""The ``hivematrix`` command."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from hivematrix.cli import home as home_files
from hivematrix.cli import processes
from hivematrix.common.config import hivematrix_home, load_settings
from hivematrix.common.registry import ServiceSpec, discover_services, read_services

console = Console(stderr=True)


def _home() -> Path:
    return hivematrix_home()


def _spec(name: str) -> ServiceSpec:
    specs = discover_services()
    if name not in specs:
        raise click.BadParameter(f"unknown service {name!r}; installed: {', '.join(specs)}",
                                 param_hint="SERVICE")
    return specs[name]


def _address(name: str, spec: ServiceSpec) -> tuple[str, int]:
    """Where a service listens: ``services.json`` first, the spec's default port otherwise."""
    entry = read_services(_home() / "services.json").get(name, {})
    port = int(entry.get("port", spec.port))
    return entry.get("url", f"http://127.0.0.1:{port}"), port


@click.group(help="HiveMatrix: run and manage the platform's services.")
@click.version_option(package_name="hivematrix")
def main() -> None:
    """The command group; see ``hivematrix --help``."""


@main.command("init")
def init_command() -> None:
    """Create $HIVEMATRIX_HOME with default settings, secrets and the service registry."""
    home = _home()
    written = home_files.initialise_home(home, discover_services())
    console.print(f"[green]HIVEMATRIX_HOME ready:[/green] {home} ({len(written)} files checked)")


@main.command("run")
@click.argument("service")
@click.option("--port", type=int, help="Override the port from services.json.")
@click.option("--workers", type=int, default=1, show_default=True, help="gunicorn workers.")
@click.option("--threads", type=int, default=8, show_default=True, help="Threads per worker.")
@click.option("--migrate/--no-migrate", default=True, show_default=True,
              help="Apply database migrations before serving.")
def run_command(service: str, port: int | None, workers: int, threads: int, migrate: bool) -> None:
    """Run one service in the foreground with gunicorn, bound to 127.0.0.1."""
    spec = _spec(service)
    _url, configured_port = _address(service, spec)
    if migrate and spec.migrations:
        _upgrade(spec)
    env = dict(os.environ)
    if workers > 1:
        # Sum /metrics over all workers.
        metrics_dir = _home() / "run" / "prometheus" / service
        shutil.rmtree(metrics_dir, ignore_errors=True)
        metrics_dir.mkdir(parents=True)
        env["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
    host, extra = "127.0.0.1", []
    if service == "nexus":
        host, extra = _nexus_serving(port or configured_port)
    argv = [
        sys.executable, "-m", "gunicorn", f"{spec.factory}()",
        "--config", "python:hivematrix.cli.gunicorn_config",
        "--bind", f"{host}:{port or configured_port}",
        "--workers", str(workers), "--threads", str(threads), "--worker-class", "gthread",
        "--name", f"hivematrix-{service}", *extra,
    ]
    os.execve(sys.executable, argv, env)  # noqa: S606 - replaces this process with gunicorn


def _nexus_serving(https_port: int) -> tuple[str, list[str]]:
    """Nexus alone faces the network: its address, TLS, and the plain-HTTP redirect."""
    from urllib.parse import urlsplit

    from hivematrix.nexus import DEFAULTS
    from hivematrix.nexus.serving import prepare

    config = load_settings("nexus", defaults=DEFAULTS)
    serving = prepare(_home(), config)
    if serving.redirect_port:
        public_host = urlsplit(config["NEXUS_PUBLIC_URL"] or "").hostname or ""
        # Same process group as gunicorn, so stopping Nexus stops the redirect too.
        subprocess.Popen([sys.executable, "-m", "hivematrix.nexus.redirect", serving.host,  # noqa: S603
                          str(serving.redirect_port), str(https_port), public_host])
    return serving.host, serving.gunicorn_args


def _upgrade(spec: ServiceSpec) -> None:
    from hivematrix.common import db

    assert spec.migrations is not None
    url = load_settings(spec.name)["DATABASE_URL"]
    db.upgrade(spec.migrations, url)


@main.group("db")
def db_group() -> None:
    """Database migrations."""


@db_group.command("upgrade")
@click.argument("service")
def db_upgrade(service: str) -> None:
    """Apply a service's pending migrations."""
    spec = _spec(service)
    if not spec.migrations:
        raise click.UsageError(f"service {service!r} has no database")
    _upgrade(spec)
    console.print(f"[green]{service}:[/green] database is up to date")


@main.command("service-secret")
@click.argument("service")
def service_secret_command(service: str) -> None:
    """Give a service a new secret for obtaining service tokens (restart it afterwards)."""
    _spec(service)
    path = home_files.set_service_secret(_home(), service)
    console.print(f"[green]{service}:[/green] new SERVICE_SECRET written to {path}")


@main.group("keys")
def keys_group() -> None:
    """Core's signing keys."""


@keys_group.command("rotate")
def keys_rotate() -> None:
    """Sign new tokens with a fresh key; the old one stays published until its tokens expire."""
    from hivematrix.core import tokens
    from hivematrix.core.keyring import KeyRing

    settings = load_settings("core")
    publish_for = tokens.USER_TOKEN_LIFETIME + timedelta(seconds=settings["JWT_LEEWAY"])
    ring = KeyRing.open(_home() / "keys", publish_for=publish_for)
    old = ring.current.kid
    new = ring.rotate()
    console.print(f"new signing key [green]{new.kid}[/green]; {old} stays published for "
                  f"{int(publish_for.total_seconds())} s")


@main.command("start")
@click.argument("services", nargs=-1)
@click.option("--timeout", default=60.0, show_default=True, help="Seconds to wait for health.")
def start_command(services: tuple[str, ...], timeout: float) -> None:
    """Start services in the background (all installed ones by default) and wait for health."""
    home = _home()
    specs = discover_services()
    home_files.initialise_home(home, specs)
    failed = []
    for name in services or tuple(specs):
        spec = _spec(name)
        url, _port = _address(name, spec)
        pid = processes.read_pid(home, name)
        if pid is not None and processes.is_healthy(url):
            console.print(f"{name}: already running at {url}")
            continue
        if pid is not None:
            processes.stop(home, name)
        with console.status(f"starting {name}..."):
            pid = processes.spawn(home, name)
            ok = processes.wait_healthy(url, pid, timeout)
        if ok:
            console.print(f"[green]{name}[/green]: healthy at {url}")
        else:
            failed.append(name)
            console.print(f"[red]{name}[/red]: did not become healthy; see "
                          f"{home / 'logs' / f'{name}.log'}")
    if failed:
        raise SystemExit(1)
    if "nexus" in specs:
        url, _port = _address("nexus", specs["nexus"])
        console.print(f"Open [bold]{url}/[/bold] in a browser.")
        password_file = home / "initial-admin-password"
        if password_file.exists():
            console.print(f"First sign-in: user [bold]admin[/bold], password in {password_file} "
                          "(you will be asked to change it).")


@main.command("stop")
@click.argument("services", nargs=-1)
def stop_command(services: tuple[str, ...]) -> None:
    """Stop services started by `hivematrix start` (all by default)."""
    home = _home()
    for name in services or tuple(discover_services()):
        if processes.stop(home, name):
            console.print(f"{name}: stopped")


@main.command("status")
def status_command() -> None:
    """Show which services run and whether they are healthy."""
    home = _home()
    table = Table("service", "pid", "url", "health")
    for name, spec in discover_services().items():
        url, _port = _address(name, spec)
        pid = processes.read_pid(home, name)
        health = "healthy" if pid and processes.is_healthy(url) else "-"
        table.add_row(name, str(pid or "-"), url, health)
    Console().print(table)


@main.group("keycloak")
def keycloak_group() -> None:
    """Use a Keycloak server as the identity provider."""


@keycloak_group.command("configure")
@click.option("--server-url", default="http://127.0.0.1:8080", show_default=True,
              help="Keycloak's base URL (no /auth suffix since Keycloak 17).")
@click.option("--admin-user", envvar="KEYCLOAK_ADMIN", default="admin", show_default=True,
              help="Keycloak administrator in the master realm [env KEYCLOAK_ADMIN].")
@click.option("--admin-password", envvar="KEYCLOAK_ADMIN_PASSWORD", prompt=True,
              hide_input=True, help="Their password [env KEYCLOAK_ADMIN_PASSWORD; else asked].")
@click.option("--realm", default="hivematrix", show_default=True, help="Realm to configure.")
@click.option("--redirect-uri", "redirect_uris", multiple=True,
              default=["https://localhost/keycloak-callback", "http://127.0.0.1:8000/keycloak-callback"],
              show_default=True, help="Login redirect URI of core-client (repeatable).")
@click.option("--post-logout-redirect-uri", "logout_uris", multiple=True,
              help="Post-logout redirect URI (repeatable) [default: each redirect URI's "
                   "origin + /*].")
@click.option("--realm-admin", default="admin", show_default=True,
              help="HiveMatrix administrator created in the realm (group admins).")
@click.option("--verify/--no-verify", default=True, show_default=True,
              help="Check Keycloak's TLS certificate.")
def keycloak_configure(server_url: str, admin_user: str, admin_password: str, realm: str,
                       redirect_uris: tuple[str, ...], logout_uris: tuple[str, ...],
                       realm_admin: str, verify: bool) -> None:
    """Create (or complete) the realm, core-client, groups, mappers and first administrator.

    Safe to run again: only what is missing is created. The client secret goes into
    $HIVEMATRIX_HOME/configs/master_config.json.
    """
    import warnings

    from hivematrix.cli import keycloak

    if not verify:
        console.print("[yellow]warning:[/yellow] Keycloak's TLS certificate is not checked")
    settings = keycloak.KeycloakSettings(
        server_url=server_url, realm=realm, redirect_uris=redirect_uris,
        post_logout_redirect_uris=logout_uris, admin_username=realm_admin)
    try:
        with (console.status(f"configuring Keycloak at {server_url}..."),
              warnings.catch_warnings()):
            # Said once above instead of once per request.
            warnings.filterwarnings("ignore", message="Unverified HTTPS request")
            admin = keycloak.connect(server_url, admin_user, admin_password, realm=realm,
                                     verify=verify)
            result = keycloak.configure(admin, settings)
    except keycloak.KeycloakSetupError as exc:
        raise click.ClickException(str(exc)) from exc
    for item in result.created:
        console.print(f"[green]created[/green] {item}")
    for item in result.updated:
        console.print(f"[yellow]updated[/yellow] {item}")
    try:
        path = keycloak.write_master_config(_home(), result)
    except keycloak.KeycloakSetupError as exc:
        if result.password_notice:  # the only chance to see it
            console.print(result.password_notice, markup=False, highlight=False)
        raise click.ClickException(str(exc)) from exc
    table = Table("setting", "value", title="Keycloak for HiveMatrix")
    table.add_row("realm URL", result.realm_url)
    table.add_row("client", result.client_id)
    table.add_row("client secret", f"written to {path}")
    table.add_row("administrator", f"{result.admin_username} (group admins)")
    console.print(table)
    if result.password_notice:
        console.print(result.password_notice, markup=False, highlight=False)
    if not result.created and not result.updated:
        console.print("nothing to change: Keycloak was already configured")


@main.group("tls")
def tls_group() -> None:
    """Nexus's HTTPS certificate."""


def _describe(info: object) -> str:
    from hivematrix.nexus.tls import CertificateInfo

    assert isinstance(info, CertificateInfo)
    kind = "self-signed" if info.self_signed else "issued"
    return (f"{info.subject} ({kind}) for {', '.join(info.names) or 'no names'}, "
            f"valid until {info.not_after:%Y-%m-%d}")


@tls_group.command("install")
@click.argument("cert", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("key", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def tls_install_command(cert: Path, key: Path) -> None:
    """Install CERT (PEM, with its chain) and KEY for Nexus, e.g. from certbot."""
    from hivematrix.nexus import tls

    try:
        info = tls.install(_home(), cert.read_bytes(), key.read_bytes())
    except tls.CertificateError as exc:
        raise click.ClickException(str(exc)) from exc
    console.print(f"[green]installed[/green] {_describe(info)}; restart Nexus to use it "
                  "(`hivematrix stop nexus && hivematrix start nexus`).")


@tls_group.command("self-signed")
@click.option("--hostname", required=True, help="The name browsers use for Nexus.")
@click.option("--name", "names", multiple=True, help="More DNS names or IP addresses.")
def tls_self_signed_command(hostname: str, names: tuple[str, ...]) -> None:
    """Make and install a self-signed certificate (browsers will warn until replaced)."""
    from hivematrix.nexus import tls

    cert, key = tls.self_signed(hostname, [hostname, *names])
    console.print(f"[green]installed[/green] {_describe(tls.install(_home(), cert, key))}")


@tls_group.command("show")
def tls_show_command() -> None:
    """Describe the installed certificate."""
    from hivematrix.nexus import tls

    try:
        info = tls.installed(_home())
    except tls.CertificateError as exc:
        raise click.ClickException(f"the installed certificate is unusable: {exc}") from exc
    console.print(_describe(info) if info else "no certificate installed")
