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
    # Database connections that build the bulk read's slices at once (PostgreSQL); 1 = one
    # query. More than the database server's cores gains nothing.
    "CODEX_BULK_WORKERS": 2,
    # Scheduled syncs (minutes between runs; 0 = off); run once per deployment, see scheduler.py.
    "CODEX_SCHEDULER": True,
    "CODEX_SCHEDULE_TICKETS_MINUTES": 5,
    "CODEX_SCHEDULE_PSA_MINUTES": 1440,
    "CODEX_SCHEDULE_RMM_MINUTES": 60,
    "CODEX_SCHEDULE_AGENTS_MINUTES": 1440,
    # Schedules finer than a minute (tests); a value above 0 wins over the minutes.
    "CODEX_SCHEDULE_TICKETS_SECONDS": 0.0,
    "CODEX_SCHEDULE_PSA_SECONDS": 0.0,
    "CODEX_SCHEDULE_RMM_SECONDS": 0.0,
    "CODEX_SCHEDULE_AGENTS_SECONDS": 0.0,
    # How often each process looks for a due slot.
    "CODEX_SCHEDULER_TICK_SECONDS": 30.0,
    "CODEX_SYNC_AGENTS": True,
    # Where the staff list comes from: "identity" (built-in) or "keycloak" (its admin API, with
    # a service-account client allowed to view users).
    "CODEX_AGENTS_SOURCE": "identity",
    "CODEX_KEYCLOAK_URL": "",
    "CODEX_KEYCLOAK_REALM": "hivematrix",
    "CODEX_KEYCLOAK_CLIENT_ID": "",
    "CODEX_KEYCLOAK_CLIENT_SECRET": "",
    "CODEX_KEYCLOAK_VERIFY_TLS": True,
    # Freshservice
    "FRESHSERVICE_URL": "",
    "FRESHSERVICE_API_KEY": "",
    "FRESHSERVICE_STATUS_MAP": "{}",
    "FRESHSERVICE_PRIORITY_MAP": "{}",
    "FRESHSERVICE_ACCOUNT_NUMBER_FIELD": "account_number",
    "FRESHSERVICE_TICKET_URL": "",
    # Department custom fields (internal names) holding a company's contract details; an
    # empty name means the PSA does not carry that detail.
    "FRESHSERVICE_PLAN_FIELD": "plan_selected",
    "FRESHSERVICE_CONTRACT_TERM_FIELD": "contract_term",
    "FRESHSERVICE_CONTRACT_START_FIELD": "contract_start_date",
    "FRESHSERVICE_MAIN_PHONE_FIELD": "company_main_number",
    "FRESHSERVICE_ADDRESS_FIELD": "address",
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
    # Company custom fields (captions) holding contract details; empty: not in the PSA.
    "CONNECTWISE_PLAN_FIELD": "Billing Plan",
    "CONNECTWISE_CONTRACT_TERM_FIELD": "Contract Term",
    "CONNECTWISE_CONTRACT_START_FIELD": "Contract Start Date",
    "CONNECTWISE_SUPPORT_LEVEL_FIELD": "",
    # `conditions` narrowing what is synced, e.g. board/name="Help Desk" for tickets.
    "CONNECTWISE_COMPANY_CONDITIONS": "deletedFlag=false",
    "CONNECTWISE_TICKET_CONDITIONS": "",
    "CONNECTWISE_PAGE_SIZE": 1000,
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
