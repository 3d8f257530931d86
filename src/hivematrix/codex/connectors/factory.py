"""The configured connectors, built from Codex's settings."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hivematrix.codex.connectors.base import PSAConnector, RMMConnector
from hivematrix.codex.settings import BadSetting

PSA_PROVIDERS = ("freshservice", "connectwise")
RMM_PROVIDERS = ("datto",)


class NotConfigured(BadSetting):
    """No connector of this kind is configured."""


def psa(config: Mapping[str, Any]) -> PSAConnector:
    provider = str(config.get("CODEX_PSA_PROVIDER", "")).strip().lower()
    if provider == "freshservice":
        from hivematrix.codex.connectors import freshservice

        return freshservice.from_settings(config)
    if provider == "connectwise":
        from hivematrix.codex.connectors import connectwise

        return connectwise.from_settings(config)
    if not provider:
        raise NotConfigured("no PSA is configured (set CODEX_PSA_PROVIDER to "
                            f"{' or '.join(PSA_PROVIDERS)})")
    raise BadSetting(f"CODEX_PSA_PROVIDER: unknown provider {provider!r}; expected "
                     f"{' or '.join(PSA_PROVIDERS)}")


def rmm(config: Mapping[str, Any]) -> RMMConnector:
    provider = str(config.get("CODEX_RMM_PROVIDER", "")).strip().lower()
    if provider == "datto":
        from hivematrix.codex.connectors import datto

        return datto.from_settings(config)
    if not provider:
        raise NotConfigured("no RMM is configured (set CODEX_RMM_PROVIDER to datto)")
    raise BadSetting(f"CODEX_RMM_PROVIDER: unknown provider {provider!r}; expected datto")
