# Shared by start.sh, stop.sh and test.sh: find Python 3.11+, create .venv, install the project.
# Sourced, not run.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"

say() { printf '\033[1m==>\033[0m %s\n' "$*" >&2; }
die() { printf '\033[31merror:\033[0m %s\n' "$*" >&2; exit 1; }

find_python() {
  local candidate
  for candidate in python3.11 python3.12 python3.13 python3; do
    if command -v "$candidate" >/dev/null 2>&1 &&
       "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
      command -v "$candidate"; return 0
    fi
  done
  die "Python 3.11 or newer is required (none found on PATH)"
}

# ensure_venv [EXTRAS] — create .venv and (re)install the project when pyproject.toml changed.
# The stamp file names the extras installed for this pyproject.toml; a plain install is
# satisfied by any stamp, an install with extras only by a stamp that lists them.
ensure_venv() {
  local extras="${1:-}" spec="." stamp
  [ -n "$extras" ] && spec=".[$extras]"
  if [ ! -x "$VENV/bin/python" ]; then
    say "creating $VENV"
    "$(find_python)" -m venv "$VENV" || die "could not create a virtual environment"
  fi
  stamp="$VENV/.installed-$(sha256sum "$ROOT/pyproject.toml" | cut -c1-16)"
  if [ ! -f "$stamp" ] || { [ -n "$extras" ] && ! grep -qx "$extras" "$stamp"; }; then
    say "installing hivematrix${extras:+ with $extras extras} into .venv"
    "$VENV/bin/python" -m pip install --quiet --upgrade pip >/dev/null
    (cd "$ROOT" && "$VENV/bin/python" -m pip install --quiet -e "$spec") ||
      die "pip install failed"
    [ -f "$stamp" ] || rm -f "$VENV"/.installed-*
    echo "${extras:-base}" >> "$stamp"
  fi
  export PATH="$VENV/bin:$PATH"
}

export HIVEMATRIX_HOME="${HIVEMATRIX_HOME:-$ROOT/var}"
