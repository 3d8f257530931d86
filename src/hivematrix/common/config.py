"""Settings for one service, merged from four layers.

Precedence, highest first: explicit overrides (tests, ``create_app(settings=...)``), the
environment (``<SVC>_<KEY>`` before ``<KEY>``), ``$HIVEMATRIX_HOME/<svc>/.flaskenv``,
``$HIVEMATRIX_HOME/<svc>/instance/<svc>.conf`` and finally the embedded defaults.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from configparser import RawConfigParser
from pathlib import Path
from typing import Any

from dotenv import dotenv_values

#: Settings every service understands. A value's type decides how strings from files and the
#: environment are parsed; ``None`` means "a string, unset by default".
COMMON_DEFAULTS: dict[str, Any] = {
    "CORE_SERVICE_URL": "http://127.0.0.1:5000",
    "SECRET_KEY": None,
    "SERVICE_SECRET": None,
    "LOG_LEVEL": "INFO",
    "LOG_JSON": True,
    # Push log records to Helm: auto (when Helm is in services.json), true or false.
    "LOG_SHIPPING": "auto",
    "LOG_SHIPPING_QUEUE_SIZE": 10_000,
    "LOG_SHIPPING_BATCH_SIZE": 500,
    "LOG_SHIPPING_INTERVAL_SECONDS": 1.0,
    "JWT_ISSUER": "hivematrix-core",
    "JWT_LEEWAY": 30,
    "JWKS_CACHE_SECONDS": 300,
    "HTTP_TIMEOUT": 10.0,
    "RATELIMIT_DEFAULT": "600 per minute",
    "RATELIMIT_STORAGE_URI": "memory://",
    "MAX_CONTENT_LENGTH": 16 * 1024 * 1024,
    "SESSION_COOKIE_SECURE": False,
    "DISK_DEGRADED_PERCENT": 85.0,
    "DISK_UNHEALTHY_PERCENT": 95.0,
}

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


class SettingsError(ValueError):
    """A setting has a value that cannot be used; the message names the setting and its source."""


def hivematrix_home(environ: Mapping[str, str] | None = None) -> Path:
    """Return ``$HIVEMATRIX_HOME`` (default ``./var``) as an absolute path."""
    env = os.environ if environ is None else environ
    return Path(env.get("HIVEMATRIX_HOME") or "var").resolve()


def master_config_path(home: Path) -> Path:
    """``configs/master_config.json``: platform-wide settings (the identity provider's client)."""
    return home / "configs" / "master_config.json"


def service_dir(service: str, environ: Mapping[str, str] | None = None) -> Path:
    """Return the folder that holds one service's runtime files."""
    return hivematrix_home(environ) / service


def read_instance_conf(path: Path) -> dict[str, str]:
    """Read ``instance/<svc>.conf`` into flat settings.

    ``[database] connection_string`` becomes ``DATABASE_URL``; every other ``[section] key``
    becomes ``SECTION_KEY``. ``RawConfigParser`` because passwords may contain ``%``.
    """
    parser = RawConfigParser()
    parser.read(path, encoding="utf-8")
    flat: dict[str, str] = {}
    for section in parser.sections():
        for key, value in parser.items(section):
            if section == "database" and key == "connection_string":
                flat["DATABASE_URL"] = value
            else:
                flat[f"{section}_{key}".upper()] = value
    return flat


def coerce(name: str, raw: Any, default: Any, source: str | None = None) -> Any:
    """Parse ``raw`` into the type of ``default``; ``source`` says where ``raw`` was read.

    :raises SettingsError: the value is not a valid boolean or number.
    """
    if not isinstance(raw, str) or default is None or isinstance(default, str):
        return raw
    text = raw.strip()
    try:
        if isinstance(default, bool):
            if text.lower() in _TRUE:
                return True
            if text.lower() in _FALSE:
                return False
            raise ValueError(text)
        if isinstance(default, int):
            return int(text)
        if isinstance(default, float):
            return float(text)
    except ValueError:
        kind = type(default).__name__
        origin = f" (from {source})" if source else ""
        raise SettingsError(f"setting {name}{origin}: {raw!r} is not a valid {kind}") from None
    return raw


def load_settings(
    service: str,
    overrides: Mapping[str, Any] | None = None,
    *,
    defaults: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Merge a service's settings from all layers (see the module docstring).

    :param service: the service name, e.g. ``"template"``.
    :param overrides: values that win over everything (already typed).
    :param defaults: the service's own defaults, added to :data:`COMMON_DEFAULTS`.
    :param environ: the environment to read; ``os.environ`` when omitted.
    :raises SettingsError: a value cannot be parsed.
    """
    env = dict(os.environ if environ is None else environ)
    if overrides and "HIVEMATRIX_HOME" in overrides:
        env["HIVEMATRIX_HOME"] = str(overrides["HIVEMATRIX_HOME"])
    home = hivematrix_home(env)
    folder = home / service
    base: dict[str, Any] = {
        **COMMON_DEFAULTS,
        "SERVICE_NAME": service,
        "HIVEMATRIX_HOME": str(home),
        "SERVICES_FILE": str(home / "services.json"),
        "DATABASE_URL": f"sqlite:///{folder / f'{service}.db'}",
        **(defaults or {}),
    }
    conf_path = folder / "instance" / f"{service}.conf"
    flaskenv_path = folder / ".flaskenv"
    conf = read_instance_conf(conf_path)
    flaskenv = {k: v for k, v in dotenv_values(flaskenv_path).items() if v is not None}
    layered: dict[str, Any] = {**conf, **flaskenv}
    # Where each value came from, so an unusable one can be found and fixed.
    sources = {**dict.fromkeys(conf, str(conf_path)), **dict.fromkeys(flaskenv, str(flaskenv_path))}
    prefix = f"{service.upper()}_"
    for key in set(base) | set(layered):
        for variable in (f"{prefix}{key}", key):
            if variable in env:
                layered[key] = env[variable]
                sources[key] = f"environment variable {variable}"
                break
    settings = dict(base)
    for key, raw in layered.items():
        settings[key] = coerce(key, raw, base.get(key), sources.get(key))
    settings.update(overrides or {})
    settings["SERVICE_NAME"] = service
    return settings
