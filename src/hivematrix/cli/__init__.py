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
from hivematrix.common.config import hivematrix_home, load_settings
from hivematrix.common.registry import ServiceSpec, discover_services, read_services
from hivematrix.helm import embedded, lifecycle

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
@click.option("--workers", type=int, default=1, show_default=True, help="Worker processes.")
@click.option("--threads", type=int, default=8, show_default=True, help="Threads per worker.")
@click.option("--migrate/--no-migrate", default=True, show_default=True,
              help="Apply database migrations before serving.")
def run_command(service: str, port: int | None, workers: int, threads: int, migrate: bool) -> None:
    """Run one service in the foreground, bound to 127.0.0.1 (Nexus: its configured address).

    Services run under gunicorn; Nexus, which carries every browser request, under granian,
    whose HTTP handling in Rust saves about 0.25 ms of CPU per proxied request.
    """
    if service in embedded.NAMES:  # an embedded dependency: its own server, not gunicorn
        from hivematrix.helm.configs import ConfigError

        try:
            embedded.exec_server(_home(), service, discover_services())
        except (embedded.EmbeddedError, ConfigError, OSError) as exc:
            raise click.ClickException(str(exc)) from exc
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
    if service == "nexus":
        host, tls_args = _nexus_serving(port or configured_port)
        argv = [
            sys.executable, "-m", "granian", "--interface", "wsgi", "--factory", spec.factory,
            "--host", host, "--port", str(port or configured_port), "--workers", str(workers),
            "--blocking-threads", str(threads), "--no-ws", "--log-level", "warning",
            "--respawn-failed-workers", *tls_args,
        ]
    else:
        argv = [
            sys.executable, "-m", "gunicorn", f"{spec.factory}()",
            "--config", "python:hivematrix.cli.gunicorn_config",
            "--bind", f"127.0.0.1:{port or configured_port}",
            "--workers", str(workers), "--threads", str(threads), "--worker-class", "gthread",
            "--name", f"hivematrix-{service}",
        ]
    os.execve(sys.executable, argv, env)  # noqa: S606 - replaces this process with the server


def _nexus_serving(https_port: int) -> tuple[str, list[str]]:
    """Nexus alone faces the network: its address, TLS, and the plain-HTTP redirect."""
    from urllib.parse import urlsplit

    from hivematrix.nexus import DEFAULTS
    from hivematrix.nexus.serving import prepare

    config = load_settings("nexus", defaults=DEFAULTS)
    serving = prepare(_home(), config)
    if serving.redirect_port:
        public_host = urlsplit(config["NEXUS_PUBLIC_URL"] or "").hostname or ""
        # Same process group as the server, so stopping Nexus stops the redirect too.
        subprocess.Popen([sys.executable, "-m", "hivematrix.nexus.redirect", serving.host,  # noqa: S603
                          str(serving.redirect_port), str(https_port), public_host])
    return serving.host, serving.server_args


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


@db_group.command("create")
@click.argument("service")
@click.option("--admin-password", envvar="PGPASSWORD", default=None,
              help="The PostgreSQL administrator's password [env PGPASSWORD].")
def db_create(service: str, admin_password: str | None) -> None:
    """Create a service's PostgreSQL role and database (after `config set
    apps.<svc>.database postgresql`); safe to run again."""
    import psycopg

    from hivematrix.helm import configs

    _spec(service)
    try:
        name = configs.create_database(_home(), service, admin_password=admin_password)
    except configs.ConfigError as exc:
        raise click.ClickException(str(exc)) from exc
    except psycopg.Error as exc:
        raise click.ClickException(f"PostgreSQL refused: {exc}") from exc
    console.print(f"[green]{service}:[/green] database {name} ready; next: "
                  f"`hivematrix db upgrade {service}`")


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


def _ordered(names: tuple[str, ...], specs: dict[str, ServiceSpec]) -> list[str]:
    """``names`` (when empty: every installed service the registry enables) in dependency
    order."""
    from hivematrix.helm import apps

    for name in names:
        _spec(name)
    if not names:
        enabled = apps.Registry.load(_home()).active(specs)
        names = tuple(name for name in specs if name in enabled or not enabled)
    return apps.start_order(specs, list(names))


def _start_list(names: tuple[str, ...], specs: dict[str, ServiceSpec],
                dependencies: dict[str, embedded.FalkorDB]) -> list[str]:
    """The configured embedded dependencies (they depend on nothing) first, then the
    services, each in dependency order; ``names`` empty: all of them."""
    asked = [name for name in names if name in embedded.NAMES]
    for name in asked:
        if name not in dependencies:
            raise click.UsageError(f"{name} is not configured to run embedded (set "
                                   "databases.graph.backend to falkordb first)")
    services = tuple(name for name in names if name not in embedded.NAMES)
    first = asked if names else list(dependencies)
    return [*first, *(_ordered(services, specs) if services or not names else [])]


@main.command("start")
@click.argument("services", nargs=-1)
@click.option("--timeout", default=60.0, show_default=True, help="Seconds to wait for health.")
def start_command(services: tuple[str, ...], timeout: float) -> None:
    """Start services under their supervisors (all installed ones by default), wait for health.

    Services start in dependency order (the identity provider, Core, then the rest by port);
    each is restarted by its supervisor should it crash.
    """
    from hivematrix.helm import configs

    home = _home()
    specs = discover_services()
    home_files.initialise_home(home, specs)
    try:
        configs.sync_all(home, specs)
    except configs.ConfigError as exc:
        raise click.ClickException(f"{exc} (fix it with `hivematrix config set`)") from exc
    try:
        dependencies = embedded.configured(home, specs)
    except (configs.ConfigError, embedded.EmbeddedError, OSError) as exc:
        raise click.ClickException(str(exc)) from exc
    failed = []
    for name in _start_list(services, specs, dependencies):
        check = dependencies[name].health if name in dependencies else None
        url, port = ((dependencies[name].url, dependencies[name].port) if name in dependencies
                     else _address(name, specs[name]))
        if lifecycle.supervisor_pid(home, name) is not None:
            if lifecycle.wait_healthy(home, name, url, timeout, check=check):
                console.print(f"{name}: already running at {url}")
                continue
            lifecycle.stop(home, name)  # supervised but never healthy: start it afresh
        try:
            with console.status(f"starting {name}..."):
                lifecycle.start(home, name, port)
                ok = lifecycle.wait_healthy(home, name, url, timeout, check=check)
        except lifecycle.PortTaken as exc:
            failed.append(name)
            console.print(f"[red]{name}[/red]: {exc}")
            continue
        if ok:
            console.print(f"[green]{name}[/green]: healthy at {url}")
        else:
            failed.append(name)
            console.print(f"[red]{name}[/red]: did not become healthy within {timeout:.0f} s; "
                          f"see {home / 'logs' / f'{name}.log'}")
    from hivematrix.cli.ops_commands import warn_if_exposed

    warn_if_exposed(home)
    if failed:
        raise SystemExit(1)
    if "nexus" in specs and (not services or "nexus" in services):
        url, _port = _address("nexus", specs["nexus"])
        console.print(f"Open [bold]{url}/[/bold] in a browser.")
        password_file = home / "initial-admin-password"
        if password_file.exists():
            console.print(f"First sign-in: user [bold]admin[/bold], password in {password_file} "
                          "(you will be asked to change it).")


@main.command("stop")
@click.argument("services", nargs=-1)
@click.option("--timeout", default=20.0, show_default=True,
              help="Seconds a service has to exit after SIGTERM before it is killed.")
def stop_command(services: tuple[str, ...], timeout: float) -> None:
    """Stop services (all by default), dependents first, embedded dependencies last."""
    from hivematrix.helm import apps

    home = _home()
    specs = discover_services()
    named = [name for name in services if name not in embedded.NAMES]
    for name in named:
        _spec(name)
    # Disabled services too: one may have been disabled while it ran.
    order = apps.stop_order(specs, named if services else list(specs))
    order += [name for name in embedded.NAMES if not services or name in services]
    for name in order:
        if lifecycle.stop(home, name, timeout):
            console.print(f"{name}: stopped")


@main.command("restart")
@click.argument("services", nargs=-1)
@click.option("--timeout", default=60.0, show_default=True, help="Seconds to wait for health.")
@click.pass_context
def restart_command(ctx: click.Context, services: tuple[str, ...], timeout: float) -> None:
    """Stop, then start services (all by default)."""
    ctx.invoke(stop_command, services=services)
    ctx.invoke(start_command, services=services, timeout=timeout)


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    return (f"{days}d {hours}h" if days else f"{hours}h {minutes}m" if hours
            else f"{minutes}m {secs}s")


@main.command("status")
def status_command() -> None:
    """Show each service's state, health, pid, port, CPU, memory and uptime."""
    home = _home()
    specs = discover_services()
    table = Table("service", "status", "health", "pid", "port", "CPU %", "memory", "uptime",
                  "restarts")
    colours = {"running": "green", "starting": "yellow", "restarting": "red", "stopped": "dim"}
    dependencies = embedded.shown(home, specs)
    listed = [*((name, server.url, server.port) for name, server in dependencies.items()),
              *((name, *_address(name, specs[name])) for name in _ordered((), specs))]
    checks = {name: server.health for name, server in dependencies.items()}
    for item in lifecycle.statuses(home, listed, checks=checks):
        colour = colours.get(item.state, "white")
        table.add_row(
            item.name, f"[{colour}]{item.state}[/{colour}]", item.health, str(item.pid or "-"),
            str(item.port), "-" if item.cpu_percent is None else f"{item.cpu_percent:.1f}",
            "-" if item.memory_mb is None else f"{item.memory_mb:.0f} MB",
            _duration(item.uptime_seconds), str(item.restarts))
    Console().print(table)


@main.command("supervise", hidden=True)
@click.argument("service")
@click.option("--stop-timeout", default=20.0, show_default=True)
def supervise_command(service: str, stop_timeout: float) -> None:
    """Run SERVICE and restart it when it exits (what `start` launches per service)."""
    from hivematrix.helm import supervisor

    if service not in embedded.NAMES:
        _spec(service)
    supervisor.main(_home(), service, stop_timeout)


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

from hivematrix.cli.ops_commands import register as _register_ops  # noqa: E402

_register_ops(main)

from hivematrix.cli.apps_commands import register as _register_apps  # noqa: E402

_register_apps(main)

from hivematrix.cli.backup_commands import register as _register_backup  # noqa: E402

_register_backup(main)

from hivematrix.cli.logs_commands import register as _register_logs  # noqa: E402

_register_logs(main)

from hivematrix.cli.config_commands import register as _register_config  # noqa: E402

_register_config(main)

from hivematrix.cli.install_commands import register as _register_install  # noqa: E402

_register_install(main)

from hivematrix.cli.codex_commands import register as _register_codex  # noqa: E402

_register_codex(main)

from hivematrix.cli.knowledgetree_commands import register as _register_knowledgetree  # noqa: E402

_register_knowledgetree(main)

from hivematrix.cli.brainhair_commands import register as _register_brainhair  # noqa: E402

_register_brainhair(main)
