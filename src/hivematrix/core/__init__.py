"""Core: the JWT authority — signing keys, token exchange, sessions and service tokens."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from apiflask import APIFlask

from hivematrix.common import create_service_app
from hivematrix.common.registry import ServiceSpec

SERVICE = ServiceSpec(
    name="core",
    factory="hivematrix.core:create_app",
    port=5000,
    title="Core",
    description="JWT authority: token exchange, sessions, service tokens, JWKS",
    visible=False,
    migrations=None,
)


def create_app(settings: Mapping[str, Any] | None = None) -> APIFlask:
    """Build the Core app."""
    return create_service_app(SERVICE.name, settings, title="HiveMatrix Core", database=False)
