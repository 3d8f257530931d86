"""Helm: the operator's side of the platform — which services exist, starting, stopping and
watching them, their configuration, logs and backups.

The parts are plain modules the ``hivematrix`` command uses directly, so the platform can be
run and repaired from a shell even when no service is up. The Helm *service* (port 5004,
admins only) adds the central log — records pushed by every service and read back from their
log files, stored once — with a log viewer, a dashboard and resource samples.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from apiflask import APIFlask

from hivematrix.common import create_service_app
from hivematrix.common.registry import ServiceSpec

SERVICE = ServiceSpec(
    name="helm",
    factory="hivematrix.helm:create_app",
    port=5004,
    title="Helm",
    description="Service status, central logs and operations for administrators",
    visible=True,
    admin_only=True,
    migrations="hivematrix.helm",
    depends_on=("core",),
)

#: Helm's own settings (see docs/helm.md).
DEFAULTS: dict[str, Any] = {
    "HELM_LOG_RETENTION_DAYS": 30,
    "HELM_RETENTION_INTERVAL_SECONDS": 3600.0,
    "HELM_TAIL_LOGS": True,
    "HELM_TAIL_INTERVAL_SECONDS": 1.0,
    "HELM_METRICS_INTERVAL_SECONDS": 30.0,
    "HELM_METRICS_RETENTION_HOURS": 72.0,
    # true or false; unset: on, except in apps created with TESTING (unit tests call the
    # jobs' steps themselves).
    "HELM_BACKGROUND_JOBS": None,
    # The users page: auto (Keycloak when `hivematrix keycloak configure` set it up), identity
    # or keycloak; Keycloak's address and realm default to master_config.json's.
    "HELM_IDENTITY_PROVIDER": "auto",
    "HELM_KEYCLOAK_URL": None,
    "HELM_KEYCLOAK_REALM": None,
    "HELM_KEYCLOAK_ADMIN_USER": "admin",
    "HELM_KEYCLOAK_ADMIN_PASSWORD": None,
    "HELM_KEYCLOAK_ADMIN_REALM": "master",
    "HELM_KEYCLOAK_VERIFY_TLS": True,
}


def _jobs_wanted(config: Mapping[str, Any]) -> bool:
    from hivematrix.common.config import SettingsError

    raw = config.get("HELM_BACKGROUND_JOBS")
    if raw is None:
        return not config.get("TESTING")
    if isinstance(raw, bool):
        return raw
    text = str(raw).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise SettingsError(f"setting HELM_BACKGROUND_JOBS: {raw!r} is not true or false")


def create_app(settings: Mapping[str, Any] | None = None) -> APIFlask:
    """Build the Helm app; ``settings`` override files and environment (tests).

    Unless ``HELM_BACKGROUND_JOBS`` says otherwise (or the app is created for tests), the
    log tailer, retention and metrics jobs start, each in one worker process only (see
    :mod:`hivematrix.helm.jobs`).
    """
    from hivematrix.common.auth import admin_required
    from hivematrix.helm.console import console
    from hivematrix.helm.users import users
    from hivematrix.helm.views import bp

    app = create_service_app(SERVICE.name, settings, title="HiveMatrix Helm",
                             blueprints=[bp, console, users], defaults=DEFAULTS)
    # Even the viewer's script is for admins only: every Helm route is.
    views: dict[str, Any] = app.view_functions
    views["static"] = admin_required(views["static"])
    if _jobs_wanted(app.config):
        from hivematrix.helm import jobs

        app.extensions["helm.jobs"] = jobs.start_jobs(app.config,
                                                      app.extensions["hivematrix.db"])
    return app
