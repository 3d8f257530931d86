"""The template service: the skeleton new services are copied from.

It shows every pattern once: an app factory, a model with a migration, a page showing the
signed-in user, a JSON API that answers users and services differently, and an admin page.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from apiflask import APIFlask

from hivematrix.common import create_service_app
from hivematrix.common.registry import ServiceSpec

SERVICE = ServiceSpec(
    name="template",
    factory="hivematrix.template:create_app",
    port=5040,
    title="Template",
    description="Example service new services are copied from",
    migrations="hivematrix.template",
    depends_on=("core",),
)


def create_app(settings: Mapping[str, Any] | None = None) -> APIFlask:
    """Build the template app; ``settings`` override files and environment (tests)."""
    from hivematrix.template.views import bp

    return create_service_app(SERVICE.name, settings, title="HiveMatrix Template", blueprints=[bp])
