"""How Codex's pages show things: sizes, badges, page numbers, sort links, the uplink tree.

Plain functions of plain values (no Flask, no database), so every rule is tested alone.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from hivematrix.codex.feed import EXCLUDED, PRIORITY_TEXT, status_text

_UNITS = ("KiB", "MiB", "GiB", "TiB", "PiB", "EiB")


def human_bytes(count: int | None) -> str:
    """``1536`` → ``"1.5 KiB"``; ``None`` → ``""`` (unknown, not zero)."""
    if count is None:
        return ""
    if count < 1024:
        return f"{count} B"
    value = float(count)
    step = 0
    while True:
        value /= 1024
        if value < 1024 or step == len(_UNITS) - 1:
            break
        step += 1
    unit = _UNITS[step]
    return f"{value:.1f} {unit}" if value < 100 else f"{value:.0f} {unit}"


#: Badge modifiers: colour is never the only signal, the word is always written too.
WARRANTY_BADGES = {"expired": ("badge--danger", "Warranty expired"),
                   "expiring": ("badge--warning", "Warranty expiring"),
                   "ok": ("badge--success", "Under warranty"),
                   "unknown": ("", "Warranty unknown")}
PRIORITY_BADGES = {"urgent": "badge--danger", "high": "badge--warning", "medium": "badge--info",
                   "low": ""}
JOB_BADGES = {"running": "badge--info", "succeeded": "badge--success",
              "partial": "badge--warning", "failed": "badge--danger"}
_WAITING = ("pending", "waiting", "on_hold")


def ticket_status(status: str) -> tuple[str, str]:
    """(badge modifier, words) for a normalised ticket status."""
    if status in EXCLUDED:
        tone = "badge--success" if status in ("resolved", "closed", "job_complete_bill",
                                              "billing_complete") else ""
    elif status == "open":
        tone = "badge--info"
    elif status == "customer_replied" or status.startswith(_WAITING):
        tone = "badge--warning"
    else:
        tone = ""
    return tone, status_text(status)


def ticket_priority(priority: str) -> tuple[str, str]:
    return (PRIORITY_BADGES.get(priority, ""),
            PRIORITY_TEXT.get(priority, priority.replace("_", " ").title()))


# -- pages and sorting -------------------------------------------------------------------


@dataclass(frozen=True)
class SortHeader:
    key: str
    #: the ``sort`` value the header's link asks for
    target: str
    #: ``aria-sort`` for the header: "ascending", "descending" or None
    state: str | None


def sort_headers(keys: Sequence[str], current: str) -> dict[str, SortHeader]:
    """For each sortable column: its link target (the reverse of the current order when it
    is the sorted column, else ascending) and its ``aria-sort``."""
    descending = current.startswith("-")
    active = current.lstrip("-")
    headers = {}
    for key in keys:
        if key == active:
            headers[key] = SortHeader(key, key if descending else f"-{key}",
                                      "descending" if descending else "ascending")
        else:
            headers[key] = SortHeader(key, key, None)
    return headers


# -- network topology --------------------------------------------------------------------


@dataclass
class TreeNode:
    """One device in the uplink tree, with the devices cabled below it."""

    device: Mapping[str, Any]
    #: the cable to the parent: (this device's port, the parent's port)
    ports: tuple[str, str] = ("", "")
    children: list[TreeNode] = field(default_factory=list)
    #: further uplinks (redundant paths): (device name, this port, their port)
    also_uplinked_to: list[tuple[str, str, str]] = field(default_factory=list)


@dataclass(frozen=True)
class Cable:
    from_name: str
    from_port: str
    to_name: str
    to_port: str


@dataclass(frozen=True)
class Topology:
    roots: list[TreeNode]
    #: cables that are not uplinks (patch links between ports)
    other_cables: list[Cable]


def uplink_tree(topology: Mapping[str, Any]) -> Topology:
    """The devices of :func:`hivematrix.codex.network.topology` as a tree by uplink.

    A device's first uplink (lowest link id) places it under the upstream device; any further
    uplinks are listed on it. Devices without an uplink are roots. A loop of uplinks (a
    mistake, but possible) cannot hide devices: what no root reaches becomes a root too, and
    nothing is placed twice.
    """
    nodes = {node["id"]: node for node in topology["nodes"]}
    edges = sorted(topology["edges"], key=lambda edge: edge["id"])
    parent_of: dict[int, dict[str, Any]] = {}
    extra: dict[int, list[dict[str, Any]]] = {}
    others: list[Cable] = []
    for edge in edges:
        if edge["from"] not in nodes or edge["to"] not in nodes:
            continue
        if edge["kind"] != "uplink":
            others.append(Cable(nodes[edge["from"]]["name"], edge["from_port"],
                                nodes[edge["to"]]["name"], edge["to_port"]))
        elif edge["from"] in parent_of:
            extra.setdefault(edge["from"], []).append(edge)
        else:
            parent_of[edge["from"]] = edge
    below: dict[int, list[int]] = {}
    for child, edge in parent_of.items():
        below.setdefault(edge["to"], []).append(child)

    def name_order(device_id: int) -> tuple[str, int]:
        return (str(nodes[device_id]["name"]).lower(), device_id)

    placed: set[int] = set()

    def build(device_id: int, via: Mapping[str, Any] | None) -> TreeNode:
        placed.add(device_id)
        uplinks = [parent_of[device_id]] if via is None and device_id in parent_of else []
        uplinks += extra.get(device_id, [])
        node = TreeNode(nodes[device_id],
                        ports=(via["from_port"], via["to_port"]) if via else ("", ""),
                        also_uplinked_to=[(nodes[edge["to"]]["name"], edge["from_port"],
                                           edge["to_port"]) for edge in uplinks])
        # The depth is bounded by the device count, and ``placed`` stops any loop.
        for child in sorted(below.get(device_id, []), key=name_order):
            if child not in placed:
                node.children.append(build(child, parent_of[child]))
        return node

    roots = [build(device_id, None) for device_id in sorted(nodes, key=name_order)
             if device_id not in parent_of]
    for device_id in sorted(nodes, key=name_order):
        if device_id not in placed:
            roots.append(build(device_id, None))  # a loop's first member, by name
    return Topology(roots=roots, other_cables=others)
