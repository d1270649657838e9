#!/usr/bin/env bash
# `make test`: the whole suite on any machine, in one command.
#
# - .venv matches pyproject.toml (scripts/bootstrap.sh).
# - Database: DATABASE_URL if set; else the PostgreSQL on 127.0.0.1:5432 (user postgres) if it
#   answers; else the embedded PostgreSQL under .data/pg (started here, stopped again afterwards
#   if this script started it). BASTION_TEST_DB=embedded goes straight to the embedded one.
# - Broker: CELERY_BROKER_URL if set; else Redis on 127.0.0.1:6379 (db 15) if it answers; else
#   RabbitMQ on 127.0.0.1:5672 (guest/guest); else a redis-server started here if one is
#   installed; otherwise it stops with a message saying what to install.
# - pytest with the configuration in pyproject.toml. CI=true recreates the test database
#   (--create-db) instead of reusing it. Extra arguments go to pytest:
#   `make test ARGS="tests/core -x"` or `bash scripts/test.sh -k readyz`.
# - "No tests collected" (pytest exit code 5) is a failure.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$(pwd)"

bash scripts/bootstrap.sh
PY="$ROOT/.venv/bin/python"
DATA_DIR="${BASTION_DATA_DIR:-$ROOT/.data}"
mkdir -p "$DATA_DIR"

cleanup_cmds=()
cleanup() {
  local cmd
  for cmd in "${cleanup_cmds[@]+"${cleanup_cmds[@]}"}"; do
    eval "$cmd" || true
  done
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

say() { echo "test: $*" >&2; }

probe_postgres() {
  "$PY" -c 'import sys, psycopg; psycopg.connect(sys.argv[1], connect_timeout=3).close()' "$1" >/dev/null 2>&1
}
probe_redis() {
  "$PY" -c 'import sys, redis; redis.Redis.from_url(sys.argv[1], socket_connect_timeout=2, socket_timeout=2).ping()' \
    "$1" >/dev/null 2>&1
}
probe_amqp() {
  "$PY" -c 'import sys, kombu
with kombu.Connection(sys.argv[1], connect_timeout=3) as c:
    c.ensure_connection(max_retries=0)' "$1" >/dev/null 2>&1
}

# --- database ---------------------------------------------------------------------------------
# BASTION_TEST_DB=embedded skips the probe of 127.0.0.1:5432 (e.g. to test against PostgreSQL 18).
if [ -n "${DATABASE_URL:-}" ]; then
  say "database: DATABASE_URL from the environment"
elif [ "${BASTION_TEST_DB:-auto}" != "embedded" ] && probe_postgres "postgresql://postgres@127.0.0.1:5432/postgres"; then
  export DATABASE_URL="postgresql://postgres@127.0.0.1:5432/bastion"
  say "database: PostgreSQL on 127.0.0.1:5432"
else
  if "$PY" scripts/devdb.py status --data-dir "$DATA_DIR"; then
    say "database: embedded PostgreSQL in $DATA_DIR/pg (already running; left running)"
  else
    cleanup_cmds+=("'$PY' scripts/devdb.py stop --data-dir '$DATA_DIR'")
    say "database: starting the embedded PostgreSQL in $DATA_DIR/pg"
  fi
  DATABASE_URL="$("$PY" scripts/devdb.py start --data-dir "$DATA_DIR")"
  export DATABASE_URL
fi

# --- broker -----------------------------------------------------------------------------------
if [ -n "${CELERY_BROKER_URL:-}" ]; then
  say "broker: CELERY_BROKER_URL from the environment"
elif probe_redis "redis://127.0.0.1:6379/15"; then
  export CELERY_BROKER_URL="redis://127.0.0.1:6379/15"
  say "broker: Redis on 127.0.0.1:6379 (db 15)"
elif probe_amqp "amqp://guest:guest@127.0.0.1:5672//"; then
  export CELERY_BROKER_URL="amqp://guest:guest@127.0.0.1:5672//"
  say "broker: RabbitMQ on 127.0.0.1:5672"
elif command -v redis-server >/dev/null 2>&1; then
  port=6390
  pidfile="$DATA_DIR/redis-test.pid"
  say "broker: no Redis or RabbitMQ answering; starting redis-server on 127.0.0.1:$port for this run"
  redis-server --daemonize yes --bind 127.0.0.1 --port "$port" --save "" --appendonly no \
    --pidfile "$pidfile" --dir "$DATA_DIR" >/dev/null
  cleanup_cmds+=("kill \"\$(cat '$pidfile')\" 2>/dev/null")
  export CELERY_BROKER_URL="redis://127.0.0.1:$port/15"
  for _ in $(seq 50); do probe_redis "$CELERY_BROKER_URL" && break; sleep 0.1; done
  probe_redis "$CELERY_BROKER_URL" || { say "redis-server did not come up on port $port"; exit 1; }
else
  say "no broker: Redis (127.0.0.1:6379) and RabbitMQ (127.0.0.1:5672) do not answer and redis-server"
  say "is not installed. Start one (Debian: apt-get install redis-server) or set CELERY_BROKER_URL."
  exit 1
fi

# --- browser ----------------------------------------------------------------------------------
if ! command -v "${CHROMIUM_PATH:-/usr/bin/chromium}" >/dev/null 2>&1; then
  say "warning: Chromium not found at ${CHROMIUM_PATH:-/usr/bin/chromium}; browser tests (tests/e2e) will fail."
  say "         Debian: apt-get install chromium"
fi
# Playwright's sync API runs an event loop in the test thread; live_server views are sync Django.
export DJANGO_ALLOW_ASYNC_UNSAFE=true

# --- pytest -----------------------------------------------------------------------------------
args=()
if [ "${CI:-}" = "true" ]; then
  args+=(--create-db)
fi
# Two xdist workers (each with its own test database, test_<name>_gw0/gw1) cut the run by about
# a quarter on 2 cores. BASTION_TEST_WORKERS=0 runs in one process; an explicit -n/-p wins.
workers="${BASTION_TEST_WORKERS:-$(( $(nproc) >= 2 ? 2 : 0 ))}"
case " $* " in
  *" -n "* | *" -n="* | *" -p no:xdist "* | *" --pdb "*) workers=0 ;;
esac
if [ "$workers" -gt 0 ]; then
  args+=(-n "$workers")
fi

set +e
"$PY" -m pytest "${args[@]+"${args[@]}"}" "$@"
status=$?
set -e
if [ "$status" -eq 5 ]; then
  say "pytest collected no tests: treating that as a failure"
  exit 5
fi
exit "$status"
