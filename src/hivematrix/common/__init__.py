"""The shared kit: building blocks every HiveMatrix service uses, and no business logic."""

from hivematrix.common.app import create_service_app

__all__ = ["create_service_app"]
