#!/usr/bin/env bash
# `make test-postgres`: the whole suite against a throwaway PostgreSQL cluster in a temporary directory.
#
# The cluster listens on a unix socket in that directory only (no TCP port), requires passwords
# (scram-sha-256), and is stopped and deleted on exit. Two roles, as in production (README, "PostgreSQL"):
#   docs_owner  creates the test database and runs the migrations: it owns every table, the audit one included;
#   docs_app    what the Celery workers connect as: SELECT/INSERT/UPDATE/DELETE on the app's tables, but only
#               SELECT/INSERT on the audit table, which it does not own, so it cannot drop or disable the
#               append-only trigger (tests/integration/test_postgres_roles.py proves it).
# The test process itself connects as the owner: it creates the database, and the tamper tests play an
# attacker who holds the owner's rights.
#
#   scripts/test-postgres.sh [pytest arguments]
set -euo pipefail
cd "$(dirname "$0")/.."

pg_bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1; }
if [[ -z "$(pg_bin)" ]]; then
  if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
    echo "installing postgresql with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq postgresql >/dev/null
  else
    echo "PostgreSQL is not installed: install it (e.g. sudo apt-get install postgresql) and rerun" >&2
    exit 1
  fi
fi
BIN="$(pg_bin)"

WORK="$(mktemp -d /tmp/docs-pg-XXXXXX)"
# PostgreSQL refuses to run as root: the cluster belongs to the postgres account (made by the Debian package).
as_server=()
if [[ $(id -u) -eq 0 ]]; then
  chown postgres: "$WORK"
  as_server=(runuser -u postgres --)
fi
chmod 700 "$WORK"
secret() { head -c 24 /dev/urandom | base64 | tr -dc 'A-Za-z0-9'; }
SUPER_PW="$(secret)"; OWNER_PW="$(secret)"; APP_PW="$(secret)"
"${as_server[@]}" sh -c "umask 077; printf '%s\n' '$SUPER_PW' > '$WORK/pwfile'"

cleanup() {
  "${as_server[@]}" "$BIN/pg_ctl" -D "$WORK/data" -m fast -w stop >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT

"${as_server[@]}" "$BIN/initdb" -D "$WORK/data" -U postgres --auth=scram-sha-256 --pwfile="$WORK/pwfile" \
  -E UTF8 --locale=C.UTF-8 >"$WORK/initdb.log"
# A test cluster: durability is not the point, speed is (fsync off); no TCP listener at all.
"${as_server[@]}" "$BIN/pg_ctl" -D "$WORK/data" -l "$WORK/server.log" -w -o \
  "-c listen_addresses='' -c unix_socket_directories='$WORK' -c fsync=off -c synchronous_commit=off \
   -c full_page_writes=off -c max_connections=200" start >/dev/null

PGPASSWORD="$SUPER_PW" "$BIN/psql" -h "$WORK" -U postgres -d postgres -v ON_ERROR_STOP=1 -q <<SQL
CREATE ROLE docs_owner LOGIN CREATEDB PASSWORD '$OWNER_PW';
CREATE ROLE docs_app LOGIN PASSWORD '$APP_PW';
CREATE DATABASE docs OWNER docs_owner;
SQL

host="$(.venv/bin/python -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1], safe=""))' "$WORK")"
export DOCS_DATABASE_URL="postgres://docs_owner:$OWNER_PW@$host/docs"
# The suite grants this role its rights on the test database and starts the workers with it (tests/conftest.py).
export DOCS_TEST_APP_DATABASE_URL="postgres://docs_app:$APP_PW@$host/docs"
echo "PostgreSQL $("$BIN/postgres" --version | awk '{print $3}') in $WORK (unix socket only)"
status=0
.venv/bin/python -m pytest "$@" || status=$?
if [[ $status -ne 0 ]]; then
  echo "--- last lines of the PostgreSQL server log ---"
  tail -n 40 "$WORK/server.log" || true
fi
exit $status
