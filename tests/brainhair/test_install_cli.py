"""`hivematrix brainhair install-cli` with a stand-in npm on PATH."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from hivematrix.brainhair.backends.claude_cli import ClaudeCliBackend
from hivematrix.cli import main

# An npm that records its argv and, for `install --prefix P pkg`, puts a `claude` into
# P/node_modules/.bin the way npm links a package's bin.
FAKE_NPM = """#!/bin/sh
PATH=/usr/bin:/bin
printf '%s\\n' "$@" > "{record}"
prefix=""
while [ $# -gt 0 ]; do
  if [ "$1" = "--prefix" ]; then prefix="$2"; shift; fi
  shift
done
mkdir -p "$prefix/node_modules/.bin"
printf '#!/bin/sh\\necho "9.9.9 (Claude Code)"\\n' > "$prefix/node_modules/.bin/claude"
chmod 755 "$prefix/node_modules/.bin/claude"
echo "added 3 packages in 1s"
"""

FAILING_NPM = """#!/bin/sh
echo "npm error code E404" >&2
echo "npm error 404 Not Found - GET https://registry.npmjs.org/@anthropic-ai%2fclaude-code" >&2
exit 1
"""


def _npm(directory: Path, script: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    npm = directory / "npm"
    npm.write_text(script)
    npm.chmod(0o755)
    return npm


def test_installs_into_hivematrix_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "home"
    record = tmp_path / "npm-argv.txt"
    bin_dir = tmp_path / "bin"
    _npm(bin_dir, FAKE_NPM.format(record=record))
    monkeypatch.setenv("HIVEMATRIX_HOME", str(home))
    monkeypatch.setenv("PATH", str(bin_dir))  # npm only: no other `claude` can be found
    result = CliRunner().invoke(main, ["brainhair", "install-cli", "--version", "2.1.0"])
    assert result.exit_code == 0, result.output
    target = home / "brainhair" / "cli"
    argv = record.read_text().splitlines()
    assert argv[:3] == ["install", "--prefix", str(target)]
    assert argv[-1] == "@anthropic-ai/claude-code@2.1.0"
    assert "9.9.9 (Claude Code)" in result.output
    # The backend finds the installed copy by name.
    backend = ClaudeCliBackend.from_config({"BRAINHAIR_CLI_PATH": "claude"})
    assert backend.resolve() == str(target / "node_modules" / ".bin" / "claude")
    assert backend.available() is None


def test_missing_npm_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("HIVEMATRIX_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("PATH", str(empty))
    result = CliRunner().invoke(main, ["brainhair", "install-cli"])
    assert result.exit_code == 1
    assert "npm was not found on PATH" in result.output
    assert "Node.js" in result.output


def test_npm_failure_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bin_dir = tmp_path / "bin"
    _npm(bin_dir, FAILING_NPM)
    monkeypatch.setenv("HIVEMATRIX_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    result = CliRunner().invoke(main, ["brainhair", "install-cli"])
    assert result.exit_code == 1
    assert "npm install failed (exit 1)" in result.output and "E404" in result.output
