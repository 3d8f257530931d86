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
# EXTRAS is comma-separated ("dev,phi"). The stamp file lists, one per line, the extras
# installed for this pyproject.toml; an install is satisfied when every extra asked for is
# listed (a plain install by any stamp), so ./start.sh never reinstalls under ./test.sh.
ensure_venv() {
  local extras="${1:-}" spec="." stamp extra missing=""
  [ -n "$extras" ] && spec=".[$extras]"
  if [ ! -x "$VENV/bin/python" ]; then
    say "creating $VENV"
    "$(find_python)" -m venv "$VENV" || die "could not create a virtual environment"
  fi
  stamp="$VENV/.installed-$(sha256sum "$ROOT/pyproject.toml" | cut -c1-16)"
  for extra in ${extras//,/ }; do
    grep -qx "$extra" "$stamp" 2>/dev/null || missing=1
  done
  if [ ! -f "$stamp" ] || [ -n "$missing" ]; then
    say "installing hivematrix${extras:+ with $extras extras} into .venv"
    "$VENV/bin/python" -m pip install --quiet --upgrade pip >/dev/null
    (cd "$ROOT" && "$VENV/bin/python" -m pip install --quiet -e "$spec") ||
      die "pip install failed"
    [ -f "$stamp" ] || rm -f "$VENV"/.installed-*
    echo base >> "$stamp"
    for extra in ${extras//,/ }; do echo "$extra" >> "$stamp"; done
  fi
  export PATH="$VENV/bin:$PATH"
}

export HIVEMATRIX_HOME="${HIVEMATRIX_HOME:-$ROOT/var}"
