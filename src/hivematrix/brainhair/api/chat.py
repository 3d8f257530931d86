"""Brainhair's chat API (being built)."""

from __future__ import annotations

from apiflask import APIBlueprint

bp = APIBlueprint("chat", __name__)
