#!/usr/bin/env bash
# Start HiveMatrix in the background: creates .venv and var/ on first run, starts every
# installed service, waits until each is healthy and prints where it listens.
# Running it again while the platform is up changes nothing. ./stop.sh stops it.
set -euo pipefail
source "$(dirname "$0")/scripts/lib.sh"
ensure_venv phi
hivematrix init
hivematrix start "$@"
say "HiveMatrix is up; state lives in $HIVEMATRIX_HOME. Stop it with ./stop.sh"
