# Find, start or install the real PostgreSQL, Redis and Chromium the tests use. Sourced by
# test.sh. Each function exports the URL the test fixtures read, or, when the component is
# unavailable, warns (the tests skip) — or fails when CI is set.

can_apt() { [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; }

apt_install() {
  can_apt || return 1
  say "installing Debian packages: $*"
  if [ -z "${_APT_UPDATED:-}" ]; then
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null 2>&1 || true
    _APT_UPDATED=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null 2>&1
}

missing() {
  if [ -n "${CI:-}" ]; then die "$1 is required in CI but unavailable"; fi
  say "warning: $1 unavailable; its tests will be skipped"
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_port() {
  local i
  for i in $(seq 1 50); do port_open "$1" && return 0; sleep 0.2; done
  return 1
}

start_postgres() {
  command -v pg_ctlcluster >/dev/null 2>&1 || return 1
  local version
  for version in $(ls /etc/postgresql 2>/dev/null); do
    pg_ctlcluster --skip-systemctl-redirect "$version" main start >/dev/null 2>&1 || true
  done
  wait_port 5432
}

ensure_postgres() {
  export HIVEMATRIX_TEST_PG_URL="${HIVEMATRIX_TEST_PG_URL:-postgresql://postgres@127.0.0.1:5432/postgres}"
  port_open 5432 && return 0
  say "PostgreSQL is not answering on 127.0.0.1:5432; trying to start it"
  start_postgres && return 0
  if apt_install postgresql && start_postgres; then return 0; fi
  missing "PostgreSQL on 127.0.0.1:5432"
  unset HIVEMATRIX_TEST_PG_URL
}

start_redis() {
  command -v redis-server >/dev/null 2>&1 || return 1
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no \
    --dir /tmp >/dev/null 2>&1 || return 1
  wait_port 6379
}

ensure_redis() {
  export HIVEMATRIX_TEST_REDIS_URL="${HIVEMATRIX_TEST_REDIS_URL:-redis://127.0.0.1:6379/0}"
  port_open 6379 && return 0
  say "Redis is not answering on 127.0.0.1:6379; trying to start it"
  start_redis && return 0
  if apt_install redis-server && start_redis; then return 0; fi
  missing "Redis on 127.0.0.1:6379"
  unset HIVEMATRIX_TEST_REDIS_URL
}

ensure_chromium() {
  command -v chromium >/dev/null 2>&1 && return 0
  apt_install chromium && command -v chromium >/dev/null 2>&1 && return 0
  missing "Chromium (Debian package 'chromium')"
}
