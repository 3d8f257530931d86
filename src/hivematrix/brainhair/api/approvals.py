"""Brainhair's approvals API (being built)."""

from __future__ import annotations

from apiflask import APIBlueprint

bp = APIBlueprint("approvals", __name__)
