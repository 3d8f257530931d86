"""The security audit: who listens where, whether a firewall is up, and firewall scripts.

Only Nexus may face the network; every other service must listen on the loopback interface
alone. The audit reads the machine's listening TCP sockets (psutil), matches them with the
ports in ``services.json`` and grades what it finds.
"""

from __future__ import annotations

import contextlib
import ipaddress
import shutil
import subprocess
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import psutil

GATEWAY = "nexus"
SSH_PORT = 22
SEVERITY_ORDER = ("none", "low", "medium", "high")


@dataclass(frozen=True)
class Listener:
    address: str
    port: int
    pid: int | None = None
    program: str | None = None

    @property
    def loopback(self) -> bool:
        with contextlib.suppress(ValueError):
            return ipaddress.ip_address(self.address.split("%")[0]).is_loopback
        return False


@dataclass(frozen=True)
class Finding:
    severity: str  # none | low | medium | high
    service: str | None
    message: str


@dataclass
class Report:
    findings: list[Finding] = field(default_factory=list)
    firewall: str = "unknown"

    @property
    def severity(self) -> str:
        worst = max((SEVERITY_ORDER.index(f.severity) for f in self.findings), default=0)
        return SEVERITY_ORDER[worst]

    def at_least(self, severity: str) -> list[Finding]:
        floor = SEVERITY_ORDER.index(severity)
        return [f for f in self.findings if SEVERITY_ORDER.index(f.severity) >= floor]


def listeners() -> list[Listener]:
    """This machine's listening TCP sockets (programs named where the system lets us see)."""
    found = []
    for connection in psutil.net_connections(kind="inet"):
        if connection.status != psutil.CONN_LISTEN or not connection.laddr:
            continue
        program = None
        if connection.pid:
            with contextlib.suppress(psutil.Error):
                program = psutil.Process(connection.pid).name()
        found.append(Listener(connection.laddr.ip, connection.laddr.port, connection.pid,
                              program))
    return found


def firewall_status() -> str:
    """``active``, ``inactive`` or ``unknown`` (no ufw/iptables, or no permission to ask)."""
    if shutil.which("ufw"):
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            result = subprocess.run(["ufw", "status"], capture_output=True, text=True,  # noqa: S607
                                    timeout=10, check=False)
            if result.returncode == 0:
                return "active" if "Status: active" in result.stdout else "inactive"
    if shutil.which("iptables"):
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            result = subprocess.run(["iptables", "-S", "INPUT"], capture_output=True,  # noqa: S607
                                    text=True, timeout=10, check=False)
            if result.returncode == 0:
                lines = result.stdout.splitlines()
                dropping = any(line in ("-P INPUT DROP", "-P INPUT REJECT") for line in lines)
                return "active" if dropping or len(lines) > 1 else "inactive"
    return "unknown"


def audit(services: Mapping[str, Mapping[str, Any]], found: Iterable[Listener],
          firewall: str) -> Report:
    """Grade ``found`` listeners against the platform's ``services`` (``services.json``)."""
    by_port = {int(entry["port"]): name for name, entry in services.items() if "port" in entry}
    report = Report(firewall=firewall)
    seen: set[str] = set()
    for listener in sorted(found, key=lambda item: (item.port, item.address)):
        name = by_port.get(listener.port)
        where = f"{listener.address}:{listener.port}"
        if name is None:
            if not listener.loopback and listener.port != SSH_PORT:
                who = f" ({listener.program})" if listener.program else ""
                report.findings.append(Finding(
                    "low", None, f"{where}{who} is not part of HiveMatrix and listens beyond "
                                 "this machine; make sure that is intended"))
            continue
        seen.add(name)
        if listener.loopback:
            report.findings.append(Finding("none", name, f"{name} listens on {where} only"))
        elif name == GATEWAY:
            report.findings.append(Finding("none", name, f"{name} faces the network on {where}, "
                                                         "as the gateway should"))
        else:
            severity = "medium" if firewall == "active" else "high"
            report.findings.append(Finding(
                severity, name, f"{name} listens on {where}: it must listen on 127.0.0.1 only "
                                "(reach it through Nexus)" + (
                                    "; the firewall may be blocking it" if firewall == "active"
                                    else "")))
    for name in services:
        if name not in seen:
            report.findings.append(Finding("none", name, f"{name} is not running"))
    gateway_public = any(f.service == GATEWAY and "faces the network" in f.message
                         for f in report.findings)
    if gateway_public and firewall != "active":
        report.findings.append(Finding(
            "medium", None, f"the firewall is {firewall}: allow only SSH and Nexus's port "
                            "(`hivematrix security audit --generate-firewall`)"))
    return report


def _public_ports(services: Mapping[str, Mapping[str, Any]],
                  extra_public: Iterable[int]) -> list[int]:
    ports = {int(services[GATEWAY]["port"])} if GATEWAY in services else set()
    return sorted(ports | set(extra_public))


def _internal_ports(services: Mapping[str, Mapping[str, Any]]) -> list[int]:
    return sorted(int(entry["port"]) for name, entry in services.items()
                  if name != GATEWAY and "port" in entry)


def ufw_script(services: Mapping[str, Mapping[str, Any]],
               extra_public: Iterable[int] = ()) -> str:
    """A ufw script: deny incoming, allow SSH and Nexus, deny each internal port by name."""
    lines = ["#!/bin/sh", "# Generated by `hivematrix security audit --generate-firewall`.",
             "# Review before running as root: it resets ufw's rules.", "set -e",
             "ufw --force reset", "ufw default deny incoming", "ufw default allow outgoing",
             f"ufw allow {SSH_PORT}/tcp comment 'SSH'"]
    lines += [f"ufw allow {port}/tcp comment 'HiveMatrix Nexus'"
              for port in _public_ports(services, extra_public)]
    by_port = {int(entry["port"]): name for name, entry in services.items() if "port" in entry}
    lines += [f"ufw deny {port}/tcp comment 'HiveMatrix {by_port[port]} (internal)'"
              for port in _internal_ports(services)]
    lines += ["ufw --force enable", "ufw status verbose", ""]
    return "\n".join(lines)


def iptables_script(services: Mapping[str, Mapping[str, Any]],
                    extra_public: Iterable[int] = ()) -> str:
    """An iptables script: drop incoming except loopback, replies, SSH and Nexus."""
    lines = ["#!/bin/sh", "# Generated by `hivematrix security audit --generate-iptables`.",
             "# Review before running as root: it replaces the INPUT chain.", "set -e"]
    for tool in ("iptables", "ip6tables"):
        lines += [f"{tool} -F INPUT", f"{tool} -A INPUT -i lo -j ACCEPT",
                  f"{tool} -A INPUT -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT",
                  f"{tool} -A INPUT -p tcp --dport {SSH_PORT} -j ACCEPT"]
        lines += [f"{tool} -A INPUT -p tcp --dport {port} -j ACCEPT"
                  for port in _public_ports(services, extra_public)]
        lines += [f"{tool} -P INPUT DROP"]
    lines += ["# Keep the rules across reboots (Debian: apt install iptables-persistent):",
              "# iptables-save > /etc/iptables/rules.v4; ip6tables-save > /etc/iptables/rules.v6",
              ""]
    return "\n".join(lines)
