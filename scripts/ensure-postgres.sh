#!/usr/bin/env bash
# Make sure the PostgreSQL server the tests use is running: 127.0.0.1:5432,
# trust authentication for local connections, database `test`
# (SWITCHBOARD_TEST_POSTGRES overrides the URL the tests connect to; this
# script only looks after the default). Installs Debian's PostgreSQL and
# starts a cluster where there is none. Run as root (CI).
set -euo pipefail

ready() { pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; }

if ! command -v pg_isready >/dev/null || ! ls /etc/postgresql/*/main >/dev/null 2>&1; then
  if ! ready 2>/dev/null; then
    echo "installing PostgreSQL (Debian packages)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql postgresql-client >/dev/null
  fi
fi

if ! ready; then
  version=$(ls /etc/postgresql | sort -V | tail -1)
  conf=/etc/postgresql/$version/main
  # Trust local connections, as on the development machines.
  if ! grep -q '^host all all 127.0.0.1/32 trust' "$conf/pg_hba.conf"; then
    sed -i '1i host all all 127.0.0.1/32 trust\nhost all all ::1/128 trust\nlocal all all trust' "$conf/pg_hba.conf"
  fi
  echo "starting PostgreSQL $version"
  pg_ctlcluster "$version" main start || service postgresql start
  for _ in $(seq 1 60); do ready && break; sleep 1; done
fi
ready || { echo "PostgreSQL did not start on 127.0.0.1:5432" >&2; exit 1; }

psql -h 127.0.0.1 -U postgres -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = 'test'" | grep -q 1 \
  || psql -h 127.0.0.1 -U postgres -d postgres -qc "CREATE DATABASE test"
echo "PostgreSQL ready at postgres://postgres@127.0.0.1:5432/test"
