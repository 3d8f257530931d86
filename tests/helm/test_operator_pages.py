"""Helm's security audit page and settings page."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

from click.testing import CliRunner
from dotenv import dotenv_values
from flask.testing import FlaskClient

from hivematrix.cli import main

HTML = {"Accept": "text/html"}


def csrf(page: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert found, page
    return found.group(1)


def test_the_security_page_lists_findings_and_offers_scripts(
        hm_home: Path, helm_client: FlaskClient, as_user: Callable[..., dict[str, str]]) -> None:
    (hm_home / "services.json").write_text(json.dumps({
        "nexus": {"url": "http://127.0.0.1:8000", "port": 8000},
        "codex": {"url": "http://127.0.0.1:5010", "port": 5010}}))
    admin = as_user("admin")
    page = helm_client.get("/security", headers={**admin, **HTML})
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert "codex is not running" in text and "Overall:" in text
    script = helm_client.get("/security/firewall.sh?kind=iptables", headers=admin)
    assert script.status_code == 200
    assert script.headers["Content-Disposition"] == 'attachment; filename="hivematrix-iptables.sh"'
    assert "--dport 8000 -j ACCEPT" in script.get_data(as_text=True)
    assert "ufw deny 5010/tcp" in helm_client.get("/security/firewall.sh",
                                                   headers=admin).get_data(as_text=True)
    bad = helm_client.get("/security/firewall.sh?kind=pf", headers=admin)
    assert bad.status_code == 400 and "kind" in bad.get_json()["detail"]


def test_settings_really_change_the_services_log_level(
        hm_home: Path, helm_client: FlaskClient, as_user: Callable[..., dict[str, str]]) -> None:
    assert CliRunner().invoke(main, ["init"], env={"HIVEMATRIX_HOME": str(hm_home)}).exit_code == 0
    admin = {**as_user("admin"), **HTML}
    page = helm_client.get("/settings", headers=admin).get_data(as_text=True)
    assert 'option value="INFO" selected' in page
    token = csrf(page)
    master = hm_home / "configs" / "master_config.json"

    refused = helm_client.post("/settings", headers=admin, data={
        "csrf_token": token, "environment": "production", "hostname": "not a host",
        "log_level": "DEBUG"})
    assert refused.status_code == 400 and "system.hostname" in refused.get_data(as_text=True)
    assert json.loads(master.read_text())["system"]["log_level"] == "INFO"  # nothing written

    without_token = helm_client.post("/settings", headers=admin, data={
        "environment": "production", "hostname": "hm.example.com", "log_level": "DEBUG"})
    assert without_token.status_code == 400

    saved = helm_client.post("/settings", headers=admin, data={
        "csrf_token": token, "environment": "production", "hostname": "hm.example.com",
        "log_level": "debug"})
    assert saved.status_code == 303 and saved.headers["Location"].endswith("/settings?saved=1")
    system = json.loads(master.read_text())["system"]
    assert system == {**system, "environment": "production", "hostname": "hm.example.com",
                      "log_level": "DEBUG"}
    for service in ("core", "template", "nexus"):
        values = dotenv_values(hm_home / service / ".flaskenv")
        assert values["LOG_LEVEL"] == "DEBUG" and values["ENVIRONMENT"] == "production"
    assert "Saved" in helm_client.get("/settings?saved=1", headers=admin).get_data(as_text=True)
