#!/usr/bin/env bash
# Stop what ./start.sh started.
set -euo pipefail
source "$(dirname "$0")/scripts/lib.sh"
[ -x "$VENV/bin/hivematrix" ] || { say "nothing to stop (not installed)"; exit 0; }
"$VENV/bin/hivematrix" stop "$@"
