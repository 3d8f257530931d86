"""From an RMM's device category to the billing type Ledger prices.

The map is configurable (``CODEX_BILLING_TYPE_MAP``, a JSON object of category → type, merged
over the default) because RMMs name categories differently. A category the map does not know
is billed as a Workstation, the cheapest safe guess, and flagged so someone looks at it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

BILLING_TYPES = ("Workstation", "Server", "VM", "Switch", "Firewall", "Printer")
FALLBACK = "Workstation"

DEFAULT_MAP: dict[str, str] = {
    "workstation": "Workstation",
    "laptop": "Workstation",
    "desktop": "Workstation",
    "server": "Server",
    "esxi host": "Server",
    "virtual machine": "VM",
    "network device": "Switch",
    "switch": "Switch",
    "firewall": "Firewall",
    "printer": "Printer",
}


class BadBillingMap(ValueError):
    """The configured map names a billing type that does not exist."""


@dataclass(frozen=True)
class BillingTypeMap:
    categories: Mapping[str, str]

    @classmethod
    def from_config(cls, configured: Mapping[str, str] | None) -> BillingTypeMap:
        merged = dict(DEFAULT_MAP)
        for category, billing_type in (configured or {}).items():
            if billing_type not in BILLING_TYPES:
                raise BadBillingMap(f"CODEX_BILLING_TYPE_MAP: {category!r} maps to "
                                    f"{billing_type!r}; expected one of {', '.join(BILLING_TYPES)}")
            merged[category.strip().lower()] = billing_type
        return cls(merged)

    def classify(self, category: str | None) -> tuple[str, bool]:
        """The billing type for a category, and whether it was a guess (unknown category)."""
        known = self.categories.get((category or "").strip().lower())
        return (known, False) if known else (FALLBACK, True)


def effective(derived: str, override: str | None) -> str:
    """An asset's billing type: its override when set, else the derived one."""
    return override or derived
