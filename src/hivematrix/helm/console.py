"""Helm's operator pages: the security audit (with firewall scripts), platform settings with
"restart all", resource metrics and backups.

Thin views over :mod:`hivematrix.helm.audit`, :mod:`hivematrix.helm.configs`,
:mod:`hivematrix.helm.metrics` and :mod:`hivematrix.helm.backup_runs`; admins only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from apiflask import APIBlueprint
from flask import current_app, g, redirect, render_template, request, send_file, url_for
from werkzeug.wrappers import Response

from hivematrix.common.auth import admin_required
from hivematrix.common.db import get_session
from hivematrix.common.errors import problem
from hivematrix.common.logging import quiet
from hivematrix.common.registry import discover_services, read_services
from hivematrix.helm import audit, backup, backup_runs, configs, lifecycle, metrics

console = APIBlueprint("helm_console", __name__, tag="Helm")
SCRIPTS = {"ufw": audit.ufw_script, "iptables": audit.iptables_script}


def _home() -> Path:
    return Path(current_app.config["HIVEMATRIX_HOME"])


@console.get("/security")
@console.doc(hide=True)
@admin_required
def security() -> str:
    """Who listens where, whether a firewall is up, and the scripts to fix it."""
    report = audit.audit(read_services(current_app.config["SERVICES_FILE"]), audit.listeners(),
                         audit.firewall_status())
    order = {severity: index for index, severity in enumerate(reversed(audit.SEVERITY_ORDER))}
    findings = sorted(report.findings, key=lambda finding: order[finding.severity])
    return render_template("helm/security.html", report=report, findings=findings)


@console.get("/security/firewall.sh")
@console.doc(hide=True)
@admin_required
def firewall_script() -> Response:
    kind = request.args.get("kind", "ufw")
    if kind not in SCRIPTS:
        return problem(400, "kind: must be 'ufw' or 'iptables'", title="Bad request")
    text = SCRIPTS[kind](read_services(current_app.config["SERVICES_FILE"]))
    return Response(text, mimetype="text/x-shellscript", headers={
        "Content-Disposition": f'attachment; filename="hivematrix-{kind}.sh"'})


FIELDS = {"environment": "system.environment", "hostname": "system.hostname",
          "log_level": "system.log_level"}


def _current(config: dict[str, Any]) -> dict[str, str]:
    system = config.get("system", {})
    return {"environment": str(system.get("environment", "development")),
            "hostname": str(system.get("hostname", "localhost")),
            "log_level": str(system.get("log_level", "INFO")).upper()}


def _services() -> dict[str, Any]:
    return read_services(current_app.config["SERVICES_FILE"])


def _restart_report() -> dict[str, list[str]] | None:
    """What the last "restart all" did, from the redirect's query (known names only)."""
    if "restarted" not in request.args and "not_running" not in request.args:
        return None
    known = _services()
    return {key: [name for name in request.args.getlist(key) if name in known]
            for key in ("restarted", "not_running")}


@console.get("/settings")
@console.doc(hide=True)
@admin_required
def settings() -> str:
    return render_template("helm/settings.html", values=_current(configs.load(_home())),
                           error=None, saved=request.args.get("saved") == "1",
                           environments=configs.ENVIRONMENTS, levels=configs.LEVELS,
                           restart_report=_restart_report())


@console.post("/settings/restart-all")
@console.doc(hide=True)
@admin_required
def restart_all() -> Response:
    """Ask every supervised service but Helm to restart (its supervisor restarts it); Helm
    itself restarts from the command line, as its own restart would cut this request off."""
    restarted: list[str] = []
    not_running: list[str] = []
    for name in sorted(_services()):
        if name == "helm":
            continue
        (restarted if lifecycle.restart_now(_home(), name) else not_running).append(name)
    current_app.logger.warning("restart of all services requested by an admin",
                               extra={"restarted": restarted, "not_running": not_running})
    return redirect(url_for("helm_console.settings", restarted=restarted,
                            not_running=not_running) + "#restart-all", 303)


@console.post("/settings")
@console.doc(hide=True)
@admin_required
def save_settings() -> Any:
    """Validate all three, then write master_config.json and regenerate every service's files
    (restart services to apply)."""
    config = configs.load(_home())
    system = config.setdefault("system", {})
    submitted = {name: request.form.get(name, "").strip() for name in FIELDS}
    system.update({"environment": submitted["environment"], "hostname": submitted["hostname"],
                   "log_level": submitted["log_level"].upper()})
    try:
        configs.save(_home(), config)
        configs.sync_all(_home(), discover_services())
    except configs.ConfigError as exc:
        page = render_template("helm/settings.html", values=submitted, error=str(exc),
                               saved=False, environments=configs.ENVIRONMENTS,
                               levels=configs.LEVELS, restart_report=None)
        return page, 400
    current_app.logger.warning("platform settings changed by an admin",
                               extra={"settings": submitted})
    return redirect(url_for("helm_console.settings", saved="1"), 303)


# --- metrics ---------------------------------------------------------------------------------

@console.get("/resources")
@console.doc(hide=True)
@admin_required
def metrics_page() -> Any:
    """CPU and memory over the chosen range, one card per service."""
    chosen = (request.args.get("range") or metrics.DEFAULT_RANGE).strip()
    try:
        start, end = metrics.window(chosen)
    except metrics.UnknownRange as exc:
        return problem(400, f"range: {exc}", errors={"query": {"range": [str(exc)]}})
    session = get_session()
    names = sorted(set(_services()) | set(metrics.sampled_services(session, start)))
    return render_template("helm/metrics.html",
                           charts=metrics.service_charts(session, names, start=start, end=end),
                           ranges=metrics.RANGES, range_labels=metrics.RANGE_LABELS,
                           chosen=chosen, start=start, end=end)


# --- backups ---------------------------------------------------------------------------------

def _archive_or_problem(name: str) -> Path | Response:
    try:
        return backup_runs.archive_path(_home(), name)
    except backup_runs.BadArchiveName as exc:
        return problem(400, f"name: {exc}", errors={"path": {"name": [str(exc)]}})
    except FileNotFoundError:
        return problem(404, f"There is no backup called '{name}'.", title="Unknown backup")


@console.get("/backups")
@console.doc(hide=True)
@admin_required
def backups_page() -> str:
    """The archives in backups/, the latest backup started here and a button for a new one."""
    deleted = request.args.get("deleted")
    return render_template(
        "helm/backups.html", archives=backup_runs.list_archives(_home()),
        run=backup_runs.read_run(_home()), human_size=backup_runs.human_size,
        key_path=backup.backup_key_path(_home()),
        deleted=deleted if deleted and backup_runs.ARCHIVE_NAME.fullmatch(deleted) else None)


@console.post("/backups")
@console.doc(hide=True)
@admin_required
def create_backup() -> Response:
    """Start a backup in the background; the page shows its progress."""
    user = g.get("user") or {}
    try:
        started = backup_runs.start_backup(_home(), requested_by=user.get("preferred_username"))
    except backup_runs.AlreadyRunning as exc:
        return problem(409, f"{exc}.", title="A backup is running")
    current_app.logger.warning("backup started by an admin",
                               extra={"archive": started.run.archive})
    return redirect(url_for("helm_console.backups_page"), 303)


@console.get("/api/backups/latest")
@console.doc(summary="The latest backup started from Helm",
             description="Admins only. Its state (running, succeeded, failed, interrupted), "
                         "phase and progress; `{\"state\": null}` when there was none.")
@quiet  # the backups page polls it while a backup runs
@admin_required
def api_latest_backup() -> Any:
    run = backup_runs.read_run(_home())
    return run.to_json() if run else {"state": None}


@console.get("/backups/<name>")
@console.doc(hide=True)
@admin_required
def download_backup(name: str) -> Response:
    """The archive as a download (sent from the file in pieces, never read whole)."""
    found = _archive_or_problem(name)
    if isinstance(found, Response):
        return found
    response = send_file(found, mimetype="application/octet-stream", as_attachment=True,
                         download_name=found.name, conditional=True, max_age=0)
    response.headers["Cache-Control"] = "no-store"
    current_app.logger.warning("backup downloaded by an admin", extra={"archive": found.name})
    return response


@console.post("/backups/<name>/delete")
@console.doc(hide=True)
@admin_required
def delete_backup(name: str) -> Response:
    found = _archive_or_problem(name)
    if isinstance(found, Response):
        return found
    if request.form.get("confirm") != "yes":
        return problem(400, "confirm: tick the box to confirm the deletion",
                       errors={"form": {"confirm": ["Confirm the deletion."]}})
    found.unlink(missing_ok=True)
    current_app.logger.warning("backup deleted by an admin", extra={"archive": found.name})
    return redirect(url_for("helm_console.backups_page", deleted=found.name), 303)
