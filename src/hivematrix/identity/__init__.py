"""The built-in OpenID Connect provider, used when no Keycloak is configured.

It answers on Keycloak's URL layout (``/realms/<realm>/protocol/openid-connect/...``) so Core
and Nexus treat it exactly like Keycloak.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from apiflask import APIFlask

from hivematrix.common import create_service_app
from hivematrix.common.registry import ServiceSpec

SERVICE = ServiceSpec(
    name="identity",
    factory="hivematrix.identity:create_app",
    port=8080,
    title="Identity",
    description="Built-in OpenID Connect provider (Keycloak-compatible URLs)",
    visible=False,
    migrations=None,
)


def create_app(settings: Mapping[str, Any] | None = None) -> APIFlask:
    """Build the identity provider app."""
    return create_service_app(SERVICE.name, settings, title="HiveMatrix Identity",
                              database=False)
