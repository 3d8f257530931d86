"""Codex's settings (instance/codex.conf; secrets there are written 0600 by Helm).

Maps (status, priority, billing types) are JSON objects in the config file, merged over the
built-in defaults, so an MSP's own PSA status ids need no code change.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

DEFAULTS: dict[str, Any] = {
    # Which connectors run: "freshservice" or "connectwise" for the PSA, "datto" for the RMM;
    # empty means none configured.
    "CODEX_PSA_PROVIDER": "",
    "CODEX_RMM_PROVIDER": "",
    # Hosts connectors may reach although they resolve to non-public addresses.
    "CODEX_OUTBOUND_ALLOWLIST": "",
    "CODEX_BILLING_TYPE_MAP": "{}",
    "CODEX_WRITE_BACK_ACCOUNT_NUMBERS": True,
    "CODEX_HTTP_TIMEOUT_SECONDS": 30.0,
    "CODEX_HTTP_RETRIES": 5,
    # Freshservice
    "FRESHSERVICE_URL": "",
    "FRESHSERVICE_API_KEY": "",
    "FRESHSERVICE_STATUS_MAP": "{}",
    "FRESHSERVICE_PRIORITY_MAP": "{}",
    "FRESHSERVICE_ACCOUNT_NUMBER_FIELD": "account_number",
    "FRESHSERVICE_TICKET_URL": "",
    # ConnectWise Manage
    "CONNECTWISE_URL": "",
    "CONNECTWISE_COMPANY_ID": "",
    "CONNECTWISE_PUBLIC_KEY": "",
    "CONNECTWISE_PRIVATE_KEY": "",
    "CONNECTWISE_CLIENT_ID": "",
    "CONNECTWISE_STATUS_MAP": "{}",
    "CONNECTWISE_PRIORITY_MAP": "{}",
    "CONNECTWISE_ACCOUNT_NUMBER_FIELD": "AccountNumber",
    "CONNECTWISE_TICKET_URL": "",
    # Datto RMM
    "DATTO_URL": "",
    "DATTO_API_KEY": "",
    "DATTO_API_SECRET": "",
    "DATTO_BACKUP_UDF": "udf6",
    "DATTO_ACCOUNT_NUMBER_VARIABLE": "AccountNumber",
}


class BadSetting(ValueError):
    """A Codex setting cannot be used; the message names it."""


def json_mapping(config: Mapping[str, Any], key: str) -> dict[str, Any]:
    """A setting holding a JSON object (or already a dict, in tests)."""
    raw = config.get(key, "{}")
    if isinstance(raw, Mapping):
        return dict(raw)
    try:
        value = json.loads(raw or "{}")
    except json.JSONDecodeError as exc:
        raise BadSetting(f"{key}: not valid JSON ({exc.msg} at position {exc.pos})") from None
    if not isinstance(value, dict):
        raise BadSetting(f"{key}: must be a JSON object")
    return value


def allowlist(config: Mapping[str, Any]) -> list[str]:
    raw = config.get("CODEX_OUTBOUND_ALLOWLIST", "")
    items = raw if isinstance(raw, list | tuple) else str(raw).split(",")
    return [item.strip() for item in items if item.strip()]


def require(config: Mapping[str, Any], *keys: str) -> None:
    missing = [key for key in keys if not str(config.get(key, "")).strip()]
    if missing:
        raise BadSetting(f"missing setting{'s' if len(missing) > 1 else ''}: "
                         f"{', '.join(missing)}")
