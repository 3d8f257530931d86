"""Brainhair's HTTP API and pages, one blueprint per area."""

from __future__ import annotations

from flask import Blueprint


def blueprints() -> list[Blueprint]:
    from hivematrix.brainhair.api.approvals import bp as approvals
    from hivematrix.brainhair.api.chat import bp as chat

    return [chat, approvals]
