"""``hivematrix brainhair install-cli``: the Claude Code CLI for Brainhair's claude-cli backend.

It installs the npm package ``@anthropic-ai/claude-code`` with the machine's own npm into
``$HIVEMATRIX_HOME/brainhair/cli`` (not globally, no sudo), where the backend finds it by
name when ``BRAINHAIR_CLI_PATH`` is left at ``claude``.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import click
from rich.console import Console

console = Console(stderr=True)

PACKAGE = "@anthropic-ai/claude-code"
#: Seconds npm may take (a cold cache downloads a few tens of megabytes).
NPM_TIMEOUT_SECONDS = 900


def install_dir(home: Path) -> Path:
    return home / "brainhair" / "cli"


def install_cli(home: Path, version: str = "latest") -> Path:
    """Install the CLI under ``home``; returns the ``claude`` executable's path.

    Raises :class:`click.ClickException` with a sentence saying what to do when npm is
    missing, fails, or installs no executable.
    """
    npm = shutil.which("npm")
    if npm is None:
        raise click.ClickException(
            "npm was not found on PATH. Install Node.js 18 or newer with npm (for example "
            "`apt install nodejs npm`), then run `hivematrix brainhair install-cli` again.")
    target = install_dir(home)
    target.mkdir(parents=True, exist_ok=True)
    argv = [npm, "install", "--prefix", str(target), "--no-fund", "--no-audit",
            "--no-save", f"{PACKAGE}@{version}"]
    try:
        done = subprocess.run(argv, capture_output=True, text=True,  # noqa: S603 - fixed argv
                              timeout=NPM_TIMEOUT_SECONDS, check=False)
    except subprocess.TimeoutExpired as exc:
        raise click.ClickException(
            f"npm did not finish within {NPM_TIMEOUT_SECONDS} s; check the network and the "
            "npm registry settings, then try again.") from exc
    if done.returncode != 0:
        tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-10:])
        raise click.ClickException(f"npm install failed (exit {done.returncode}):\n{tail}")
    executable = target / "node_modules" / ".bin" / "claude"
    if not executable.exists():
        raise click.ClickException(
            f"npm finished but installed no `claude` executable under {target}.")
    return executable


def register(main: click.Group) -> None:
    @main.group("brainhair")
    def brainhair_group() -> None:
        """Brainhair: the AI assistant."""

    @brainhair_group.command("install-cli")
    @click.option("--version", "version", default="latest", show_default=True,
                  help="The @anthropic-ai/claude-code version to install.")
    def install_cli_command(version: str) -> None:
        """Install the Claude Code CLI into $HIVEMATRIX_HOME/brainhair/cli with npm."""
        from hivematrix.common.config import hivematrix_home

        with console.status(f"installing {PACKAGE}@{version} with npm..."):
            executable = install_cli(hivematrix_home(), version)
        try:
            done = subprocess.run([str(executable), "--version"],  # noqa: S603 - our own file
                                  capture_output=True, text=True, timeout=60, check=False)
            reported = done.stdout.strip() or "version unknown"
        except (OSError, subprocess.TimeoutExpired):
            reported = "it did not answer --version"
        console.print(f"[green]installed[/green] {executable} ({reported})", markup=True,
                      highlight=False)
        console.print("Brainhair finds it while BRAINHAIR_CLI_PATH is `claude`; set "
                      "BRAINHAIR_BACKEND to claude-cli to use it. The CLI runs with a private "
                      "HOME, so sign it in with a long-lived token (`claude setup-token`) "
                      "stored as BRAINHAIR_CLI_OAUTH_TOKEN.", markup=False, highlight=False)
