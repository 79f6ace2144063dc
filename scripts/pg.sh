#!/usr/bin/env bash
# A private, throwaway PostgreSQL on loopback for tests and CI.
#
#   scripts/pg.sh start DIR   initdb + start in DIR (a new empty directory); prints the URL
#   scripts/pg.sh stop DIR    stops it (fast) and removes DIR
#   scripts/pg.sh restart DIR [SECONDS]  stops it (fast: open connections are cut), waits SECONDS
#                             (default 0), starts it again on the same data and port (fault tests)
#   scripts/pg.sh run CMD…    start in a temp dir, run CMD with TLSRPT_TEST_PG_URL set, stop
#
# Debian's binaries (apt-get install postgresql); PostgreSQL refuses to run as root, so as root the
# server runs as the unprivileged `postgres` user, which owns DIR. It listens on 127.0.0.1 on a free
# port, its socket in DIR, trust auth for user `tlsrpt`, fsync off (a test database need not survive a
# power loss). Tests create a database of their own per suite from this URL.
set -euo pipefail

bindir() {
  local d
  for d in /usr/lib/postgresql/*/bin; do
    if [ -x "$d/pg_ctl" ]; then echo "$d"; fi
  done | sort -V | tail -n 1
}

ensure_installed() {
  if [ -z "$(bindir)" ]; then
    echo "postgresql is not installed; installing Debian's package" >&2
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null) >&2
  fi
  if [ -z "$(bindir)" ]; then
    echo "error: no PostgreSQL binaries under /usr/lib/postgresql" >&2
    exit 1
  fi
}

# Runs a PostgreSQL binary as the owner of the data directory.
as_owner() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

free_port() {
  node -e 'const s = require("net").createServer().listen(0, "127.0.0.1", () => { console.log(s.address().port); s.close() })'
}

start() {
  local dir=$1
  ensure_installed
  local bin port
  bin=$(bindir)
  mkdir -p "$dir"
  if [ "$(id -u)" = 0 ]; then chown postgres: "$dir"; fi
  chmod 700 "$dir"
  as_owner "$bin/initdb" -D "$dir/data" -U tlsrpt --auth=trust -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 \
    || { cat "$dir/initdb.log" >&2; exit 1; }
  port=$(free_port)
  echo "$port" >"$dir/port"
  launch "$dir"
  echo "postgres://tlsrpt@127.0.0.1:$port/postgres"
}

# Starts the server of DIR on the port in DIR/port.
launch() {
  local dir=$1
  as_owner "$(bindir)/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 start \
    -o "-h 127.0.0.1 -p $(cat "$dir/port") -k $dir -F -c max_connections=300 -c shared_buffers=32MB" >/dev/null \
    || { cat "$dir/server.log" >&2; exit 1; }
}

stop() {
  local dir=$1
  if [ -f "$dir/data/postmaster.pid" ]; then
    as_owner "$(bindir)/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null || true
  fi
  rm -rf "$dir"
}

restart() {
  local dir=$1 pause=${2:-0}
  as_owner "$(bindir)/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null
  sleep "$pause"
  launch "$dir"
}

case "${1:-}" in
  start) start "$2" ;;
  stop) stop "$2" ;;
  restart) restart "$2" "${3:-0}" ;;
  run)
    shift
    dir=$(mktemp -d "${TMPDIR:-/tmp}/tlsrpt-pg.XXXXXX")
    trap 'stop "$dir"' EXIT
    TLSRPT_TEST_PG_URL=$(start "$dir")
    export TLSRPT_TEST_PG_URL
    echo "PostgreSQL for tests at $TLSRPT_TEST_PG_URL" >&2
    "$@"
    ;;
  *)
    echo "usage: $0 start DIR | stop DIR | restart DIR [SECONDS] | run CMD…" >&2
    exit 2
    ;;
esac
