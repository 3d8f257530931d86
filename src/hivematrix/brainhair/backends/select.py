"""Choosing the model backend from ``BRAINHAIR_BACKEND``."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from hivematrix.brainhair.backends.base import Backend
from hivematrix.brainhair.backends.none import NoneBackend

log = logging.getLogger("hivematrix.brainhair.backends")

CHOICES = ("none", "claude-cli", "anthropic-api")


def make_backend(config: Mapping[str, Any]) -> Backend:
    """The configured backend; ``none`` (or a backend that cannot load) says so in the chat."""
    choice = str(config.get("BRAINHAIR_BACKEND") or "none").strip().lower()
    if choice == "none":
        return NoneBackend()
    try:
        if choice == "claude-cli":
            from hivematrix.brainhair.backends.claude_cli import ClaudeCliBackend

            backend: Backend = ClaudeCliBackend.from_config(config)
            return backend
        if choice == "anthropic-api":
            from hivematrix.brainhair.backends.anthropic_api import AnthropicBackend

            backend = AnthropicBackend.from_config(config)
            return backend
    except Exception:  # a broken backend must not break the chat: it says so instead
        log.exception("backend %s cannot be loaded", choice)
        return NoneBackend(f"The AI backend {choice!r} cannot start on this server; an "
                           "administrator should check Brainhair's log and settings.")
    return NoneBackend(f"BRAINHAIR_BACKEND is set to {choice!r}, which is not one of "
                       f"{', '.join(CHOICES)}; an administrator should correct it.")
