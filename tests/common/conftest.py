"""Helpers for testing the shared kit with small throwaway apps."""

from collections.abc import Callable
from typing import Any

import pytest
from apiflask import APIFlask
from flask import Blueprint

from hivematrix.common import create_service_app

BuildApp = Callable[..., APIFlask]


@pytest.fixture
def build_app(service_settings: dict[str, Any]) -> BuildApp:
    """``build_app(bp, name="svc", **settings)``: a kit app without a database, wired to fake Core.

    The disk check's thresholds are pushed to 100 % so a nearly full build machine does not
    turn every health answer into "degraded"; tests about disk thresholds set their own.
    """

    def build(*blueprints: Blueprint, name: str = "svc", **settings: Any) -> APIFlask:
        merged = {"DISK_DEGRADED_PERCENT": 100.0, "DISK_UNHEALTHY_PERCENT": 100.0,
                  **service_settings, **settings}
        return create_service_app(name, merged, blueprints=blueprints, database=False)

    return build
