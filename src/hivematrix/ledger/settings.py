"""Ledger's own settings and their defaults (files and environment override them)."""

from __future__ import annotations

from typing import Any

DEFAULTS: dict[str, Any] = {
    # Days from the invoice date (the period's last day) to the due date.
    "LEDGER_TERMS_DAYS": 30,
    # Run the snapshot scheduler loop in this process (never in tests).
    "LEDGER_SCHEDULER": True,
    "LEDGER_SCHEDULER_TICK_SECONDS": 60.0,
}
