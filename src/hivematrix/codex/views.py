"""Codex's blueprints, in the order they are registered."""

from __future__ import annotations

from flask import Blueprint


def blueprints() -> list[Blueprint]:
    from hivematrix.codex.api import companies

    return [companies.bp]
