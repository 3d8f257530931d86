"""Helm's operator pages: the security audit (with firewall scripts) and platform settings.

Thin views over :mod:`hivematrix.helm.audit` and :mod:`hivematrix.helm.configs`; admins only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from apiflask import APIBlueprint
from flask import current_app, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from hivematrix.common.auth import admin_required
from hivematrix.common.errors import problem
from hivematrix.common.registry import discover_services, read_services
from hivematrix.helm import audit, configs

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


@console.get("/settings")
@console.doc(hide=True)
@admin_required
def settings() -> str:
    return render_template("helm/settings.html", values=_current(configs.load(_home())),
                           error=None, saved=request.args.get("saved") == "1",
                           environments=configs.ENVIRONMENTS, levels=configs.LEVELS)


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
                               levels=configs.LEVELS)
        return page, 400
    current_app.logger.warning("platform settings changed by an admin",
                               extra={"settings": submitted})
    return redirect(url_for("helm_console.settings", saved="1"), 303)
