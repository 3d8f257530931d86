#!/usr/bin/env bash
# Run the whole suite: lint, types and pytest against real PostgreSQL, Redis and Chromium.
# Extra arguments go to pytest (e.g. ./test.sh tests/template -k admin).
# With CI set, a missing PostgreSQL, Redis or Chromium fails the run instead of skipping.
set -euo pipefail
source "$(dirname "$0")/scripts/lib.sh"
source "$ROOT/scripts/services.sh"
ensure_venv dev,phi
cd "$ROOT"

ensure_postgres
ensure_redis
ensure_chromium

say "ruff"
ruff check src tests bench
say "mypy (hivematrix.common, hivematrix.nexus, hivematrix.helm)"
mypy
say "pytest"
# Tests never touch the developer's var/ or default ports.
unset HIVEMATRIX_HOME
exec python -m pytest -n auto "$@"
