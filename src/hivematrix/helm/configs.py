"""``master_config.json`` and the per-service files generated from it.

``configs/master_config.json`` holds the platform-wide choices: ``system`` (environment,
hostname, log level), ``databases.postgresql`` (where the PostgreSQL server is) and
``apps.<svc>`` (which database a service uses). From it come, per service, the generated keys
of ``<svc>/.flaskenv`` (``LOG_LEVEL``, ``ENVIRONMENT``; the service's own secrets are kept)
and the ``[database]`` section of ``<svc>/instance/<svc>.conf``. Every write is validated
first, is atomic, leaves the file readable by its owner only, and keeps the previous version
(the last five).
"""

from __future__ import annotations

import configparser
import copy
import io
import json
import re
import secrets
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from dotenv import dotenv_values
from sqlalchemy.engine import URL

from hivematrix.common.config import master_config_path
from hivematrix.common.files import write_atomic
from hivematrix.common.registry import ServiceSpec

KEEP_VERSIONS = 5
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
ENVIRONMENTS = ("development", "production")
ENGINES = ("sqlite", "postgresql")
_HOSTNAME = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
                       r"(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
#: What ``hivematrix init`` starts with.
DEFAULT = {"system": {"environment": "development", "hostname": "localhost",
                      "log_level": "INFO"}}


class ConfigError(ValueError):
    """A setting is not acceptable; the message names it."""


def load(home: Path) -> dict[str, Any]:
    path = master_config_path(home)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return copy.deepcopy(DEFAULT)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path} is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected an object")
    return data


def validate(config: Mapping[str, Any]) -> None:
    """:raises ConfigError: naming the first unacceptable setting."""
    _validate_system(_section(config, "system"))
    _validate_databases(config)
    from hivematrix.helm.embedded import graph_settings  # databases.graph: its own rules

    graph_settings(config)


def _validate_system(system: Mapping[str, Any]) -> None:
    if system.get("environment", "development") not in ENVIRONMENTS:
        raise ConfigError(f"system.environment must be one of {', '.join(ENVIRONMENTS)}")
    hostname = system.get("hostname", "localhost")
    if not isinstance(hostname, str) or not _HOSTNAME.match(hostname):
        raise ConfigError(f"system.hostname: {hostname!r} is not a host name")
    if str(system.get("log_level", "INFO")).upper() not in LEVELS:
        raise ConfigError(f"system.log_level must be one of {', '.join(LEVELS)}")


def _validate_databases(config: Mapping[str, Any]) -> None:
    postgresql = _section(_section(config, "databases"), "postgresql", "databases.")
    port = postgresql.get("port", 5432)
    if not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536:
        raise ConfigError("databases.postgresql.port must be a port number")
    for key in ("host", "admin_user"):
        if key in postgresql and not (isinstance(postgresql[key], str) and postgresql[key]):
            raise ConfigError(f"databases.postgresql.{key} must be a non-empty string")
    for name, app in _section(config, "apps").items():
        if not isinstance(app, dict):
            raise ConfigError(f"apps.{name} must be an object")
        if app.get("database", "sqlite") not in ENGINES:
            raise ConfigError(f"apps.{name}.database must be one of {', '.join(ENGINES)}")
        for key in ("db_name", "db_user"):
            if key in app and not (isinstance(app[key], str) and _NAME.match(app[key])):
                raise ConfigError(f"apps.{name}.{key}: {app[key]!r} is not a PostgreSQL name")
        if app.get("db_password") == "password":
            raise ConfigError(f"apps.{name}.db_password: not the literal 'password'")


def _section(config: Mapping[str, Any], name: str, prefix: str = "") -> dict[str, Any]:
    found = config.get(name, {})
    if not isinstance(found, dict):
        raise ConfigError(f"{prefix}{name} must be an object")
    return found


def _write_private(path: Path, text: str, history: Path) -> None:
    """Write atomically (mode 0600), keeping the previous version in ``history``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        if path.read_text(encoding="utf-8") == text:
            return
        history.mkdir(parents=True, exist_ok=True, mode=0o700)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        kept = history / f"{path.name}.{stamp}"
        kept.write_bytes(path.read_bytes())
        kept.chmod(0o600)
        versions = sorted(history.glob(f"{path.name}.*"))
        for old in versions[:-KEEP_VERSIONS]:
            old.unlink()
    write_atomic(path, text, 0o600)


def save(home: Path, config: Mapping[str, Any]) -> None:
    validate(config)
    path = master_config_path(home)
    _write_private(path, json.dumps(config, indent=2, sort_keys=True) + "\n",
                   path.parent / "history")


def get(config: Mapping[str, Any], key: str) -> Any:
    """The value at a dotted ``key`` (``system.log_level``). :raises KeyError:"""
    node: Any = config
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            raise KeyError(key)
        node = node[part]
    return node


def set_value(home: Path, key: str, raw: str) -> Any:
    """Set a dotted ``key`` to ``raw`` (JSON if it parses, else the text); validated, saved."""
    if not key or any(not part for part in key.split(".")):
        raise ConfigError(f"{key!r} is not a dotted setting name")
    try:
        value: Any = json.loads(raw)
    except ValueError:
        value = raw
    config = load(home)
    node = config
    *parents, last = key.split(".")
    for part in parents:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"{part} in {key} is not a section")
        node = child
    node[last] = value
    save(home, config)
    return value


# --- per-service files -------------------------------------------------------------------

def app_database(home: Path, config: dict[str, Any], service: str) -> str:
    """The service's database URL; a PostgreSQL password is generated on first use (and
    saved in master_config.json, which only its owner can read)."""
    app = _section(config, "apps").get(service, {})
    if app.get("database", "sqlite") == "sqlite":
        return f"sqlite:///{home / service / f'{service}.db'}"
    server = _section(_section(config, "databases"), "postgresql")
    if not app.get("db_password"):
        app = {**app, "db_password": secrets.token_urlsafe(24)}
        config.setdefault("apps", {})[service] = app
        save(home, config)
    return URL.create(
        "postgresql+psycopg", username=app.get("db_user", f"hivematrix_{service}"),
        password=app["db_password"], host=server.get("host", "127.0.0.1"),
        port=server.get("port", 5432),
        database=app.get("db_name", f"hivematrix_{service}")).render_as_string(
            hide_password=False)


def _history(home: Path, service: str) -> Path:
    return home / service / "instance" / "backups"


def write_dotenv(home: Path, spec: ServiceSpec, config: Mapping[str, Any]) -> Path:
    """``<svc>/.flaskenv`` with the generated keys set and everything else kept."""
    from hivematrix.cli.home import dotenv_value

    path = home / spec.name / ".flaskenv"
    current = {k: v for k, v in dotenv_values(path, interpolate=False).items() if v is not None}
    system = _section(config, "system")
    generated = {"LOG_LEVEL": str(system.get("log_level", "INFO")).upper(),
                 "ENVIRONMENT": str(system.get("environment", "development"))}
    values = {**current, **generated}
    lines = [f"{key}={dotenv_value(value)}" for key, value in values.items()]
    _write_private(path, "# Generated by `hivematrix config sync-all`; secrets are per service."
                   "\n" + "\n".join(lines) + "\n", _history(home, spec.name))
    return path


def write_conf(home: Path, spec: ServiceSpec, config: dict[str, Any]) -> Path | None:
    """``<svc>/instance/<svc>.conf``: ``[database]`` from master_config, other sections kept."""
    if not spec.migrations:
        return None
    path = home / spec.name / "instance" / f"{spec.name}.conf"
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(path, encoding="utf-8")
    if not parser.has_section("database"):
        parser.add_section("database")
    parser.set("database", "connection_string", app_database(home, config, spec.name))
    text = io.StringIO()
    parser.write(text)
    _write_private(path, text.getvalue(), _history(home, spec.name))
    return path


def sync_all(home: Path, specs: Mapping[str, ServiceSpec]) -> list[Path]:
    """Every service's generated files, after validating the whole configuration."""
    config = load(home)
    validate(config)
    written: list[Path] = []
    for spec in specs.values():
        written.append(write_dotenv(home, spec, config))
        conf = write_conf(home, spec, config)
        if conf is not None:
            written.append(conf)
    return written


def create_database(home: Path, service: str, *, admin_password: str | None = None) -> str:
    """Create the service's PostgreSQL role and database when missing; returns the database.

    Connects as ``databases.postgresql.admin_user`` (password from ``admin_password``, else
    libpq's own sources: PGPASSWORD, ~/.pgpass, or none under peer/trust authentication).
    Names and the password go to the server as identifiers and literals, never pasted text.

    :raises ConfigError: the service is not set to PostgreSQL.
    """
    import psycopg
    from psycopg import sql
    from sqlalchemy.engine import make_url

    config = load(home)
    validate(config)
    app = _section(config, "apps").get(service, {})
    if app.get("database") != "postgresql":
        raise ConfigError(f"apps.{service}.database is not 'postgresql' (set it first)")
    url = make_url(app_database(home, config, service))
    server = _section(_section(config, "databases"), "postgresql")
    with psycopg.connect(host=url.host, port=url.port, dbname="postgres",
                         user=server.get("admin_user", "postgres"), password=admin_password,
                         autocommit=True, connect_timeout=10) as connection:
        role_exists = connection.execute("SELECT 1 FROM pg_roles WHERE rolname = %s",
                                         [url.username]).fetchone()
        statement = "ALTER ROLE {} WITH LOGIN PASSWORD {}" if role_exists \
            else "CREATE ROLE {} WITH LOGIN PASSWORD {}"
        connection.execute(sql.SQL(statement).format(sql.Identifier(str(url.username)),
                                                     sql.Literal(url.password)))
        if not connection.execute("SELECT 1 FROM pg_database WHERE datname = %s",
                                  [url.database]).fetchone():
            connection.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(
                sql.Identifier(str(url.database)), sql.Identifier(str(url.username))))
    return str(url.database)
