"""Brainhair's own settings and their defaults (files and environment override them)."""

from __future__ import annotations

from typing import Any

DEFAULTS: dict[str, Any] = {
    # Which model answers: "none" (the chat says so; tools, filtering and approvals still
    # work), "claude-cli" (the Claude Code CLI, one process per turn) or "anthropic-api".
    "BRAINHAIR_BACKEND": "none",
    # The Claude Code CLI executable (a name on PATH or a path); `hivematrix brainhair
    # install-cli` puts it under $HIVEMATRIX_HOME/brainhair/cli.
    "BRAINHAIR_CLI_PATH": "claude",
    # The CLI runs with a private HOME, so it signs in with a long-lived token
    # (`claude setup-token`), passed to it as CLAUDE_CODE_OAUTH_TOKEN; empty: none.
    "BRAINHAIR_CLI_OAUTH_TOKEN": "",
    "BRAINHAIR_MODEL": "claude-sonnet-4-5",
    # The Anthropic API key (the anthropic-api backend only); never passed to the CLI.
    "ANTHROPIC_API_KEY": "",
    # Another address for the Messages API (a proxy); empty: Anthropic's own.
    "ANTHROPIC_BASE_URL": "",
    # Seconds a write waits for the human's decision before it expires.
    "BRAINHAIR_APPROVAL_SECONDS": 120,
    # A turn with no output for this long is stopped.
    "BRAINHAIR_TURN_IDLE_SECONDS": 120,
    # Sessions idle this long are closed (by one process per deployment).
    "BRAINHAIR_SESSION_IDLE_MINUTES": 30,
    # The filter level for companies without a compliance level: "phi" or "cjis".
    "BRAINHAIR_DEFAULT_FILTER": "phi",
    # How often a waiting write looks for the human's decision.
    "BRAINHAIR_APPROVAL_POLL_SECONDS": 0.2,
    # Finished replies' chunks are kept this long (the messages stay).
    "BRAINHAIR_RESPONSE_KEEP_HOURS": 24,
    # Run the idle-session job in this process (never in tests).
    "BRAINHAIR_SCHEDULER": True,
}
