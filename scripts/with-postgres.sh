#!/usr/bin/env bash
# Runs CMD... with a throw-away PostgreSQL: initdb as the postgres user in a temp dir, the
# server on a free loopback port with its socket in that dir, one database `yibiao`, and
# YIBIAO_TEST_PG=postgres://... exported. The cluster is stopped and deleted afterwards,
# also when CMD fails or the script is interrupted. Exits with CMD's status.
#   scripts/with-postgres.sh cargo test -p yibiao-server --lib postgres
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-postgres.sh
bin=$(dirname "$(ls -d /usr/lib/postgresql/*/bin/initdb | sort -V | tail -n 1)")
dir=$(mktemp -d /tmp/yibiao-pg.XXXXXX)
chmod 755 "$dir"
as_pg() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}
if [ "$(id -u)" = 0 ]; then chown postgres: "$dir"; fi
stop() {
  as_pg "$bin/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
  rm -rf "$dir"
}
trap stop EXIT
trap 'exit 130' INT TERM
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
as_pg "$bin/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 ||
  { cat "$dir/initdb.log"; exit 1; }
# Small and fast: a test cluster, not a durable one.
as_pg "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w \
  -o "-c listen_addresses=127.0.0.1 -c port=$port -c unix_socket_directories=$dir -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" \
  start >/dev/null || { cat "$dir/server.log"; exit 1; }
as_pg "$bin/createdb" -h 127.0.0.1 -p "$port" -U postgres yibiao
export YIBIAO_TEST_PG="postgres://postgres@127.0.0.1:$port/yibiao"
echo "with-postgres: PostgreSQL $("$bin/postgres" --version | awk '{print $3}') on 127.0.0.1:$port (data in $dir)"
set +e
"$@"
status=$?
set -e
exit "$status"
