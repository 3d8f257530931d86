"""Brainhair's model backends: Claude Code CLI, Anthropic API, or none."""
