#!/usr/bin/env bash
# `make bench-scale [COUNT=N] [NODES="1 2 3"]`: throughput of one, two and
# three `switchboard serve` nodes sharing one PostgreSQL outbox, against one
# node on SQLite, all with the release binaries.
#
# Each run: a fresh outbox (a new PostgreSQL schema, or a new SQLite file),
# the simulator (WhatsApp limit and statuses off), N `serve` processes on
# the same configuration; the win-back template campaign over COUNT
# recipients is submitted to the first node's admin API (the audience is a
# file on the host), and timed from submission until the campaign has
# settled, with every send `sent` and as many messages at the simulator.
# Prints one line per run: `<backend> <nodes> node(s): X msg/s`.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
count=${COUNT:-50000}
nodes_list=${NODES:-"1 2 3"}
pg=${SWITCHBOARD_TEST_POSTGRES:-postgres://postgres@127.0.0.1:5432/test}
token=bench-scale-admin-token-0123456789

cargo build --release --quiet --bin switchboard --bin switchboard-simulator
bash scripts/build-adapters.sh dist/adapters >/dev/null
bash scripts/ensure-postgres.sh >/dev/null
bin="$root/target/release"
out="$root/target/bench-scale"
rm -rf "$out" && mkdir -p "$out/adapters"
cp -r dist/adapters/whatsapp "$out/adapters/whatsapp"
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

awk -v n="$count" 'BEGIN {
  print "profile_id,name,phone,consent_whatsapp_marketing";
  for (i = 0; i < n; i++) printf "b%07d,Ana,+4915%09d,yes\n", i, 110000000 + i;
}' >"$out/audience.csv"

run() {
  local backend=$1 nodes=$2 database=$3 run_dir="$out/$1-$2"
  mkdir -p "$run_dir"
  "$bin/switchboard-simulator" --listen 127.0.0.1:0 --whatsapp-mps 0 --whatsapp-no-statuses \
    --host-config "$run_dir/channels.toml" >"$run_dir/simulator.out" 2>"$run_dir/simulator.log" &
  local sim_pid=$!
  pids+=($sim_pid)
  for _ in $(seq 1 100); do grep -q "listening on" "$run_dir/simulator.out" 2>/dev/null && break; sleep 0.1; done
  local sim
  sim=$(grep -m1 -o 'http://[0-9.:]*' "$run_dir/simulator.out")
  {
    echo "database = \"$database\""
    echo "adapters_dir = \"$out/adapters\""
    echo "cache_dir = \"$root/target/cwasm-cache\""
    echo "[server]"
    echo "admin_tokens = [\"$token\"]"
    echo "[trust]"
    echo "allow_unsigned = true"
    awk '/^\[channels\.whatsapp\]/{on=1} /^\[/{if(!/^\[channels\.whatsapp\]/)on=0} on' "$run_dir/channels.toml"
    echo "messages_per_second = 10000000"
  } >"$run_dir/switchboard.toml"
  "$bin/switchboard" --config "$run_dir/switchboard.toml" adapters >/dev/null
  local admins=() serve_pids=()
  for n in $(seq 1 "$nodes"); do
    "$bin/switchboard" --config "$run_dir/switchboard.toml" serve --listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 \
      >"$run_dir/serve-$n.out" 2>"$run_dir/serve-$n.log" &
    serve_pids+=($!)
    pids+=($!)
  done
  for n in $(seq 1 "$nodes"); do
    for _ in $(seq 1 300); do grep -q "admin API on" "$run_dir/serve-$n.out" 2>/dev/null && break; sleep 0.1; done
    admins+=("$(grep -m1 -o 'admin API on http://[0-9.:]*' "$run_dir/serve-$n.out" | cut -d' ' -f4)")
  done
  local admin=${admins[0]}
  local body
  body=$(jq -n --rawfile campaign examples/winback/campaign.toml --arg audience "$out/audience.csv" \
    '{campaign: $campaign, audience_path: $audience}')
  local started finished status sent
  started=$(date +%s.%N)
  curl -fsS -H "Authorization: Bearer $token" -H 'content-type: application/json' \
    -d "$body" "$admin/api/campaigns" >/dev/null
  while :; do
    status=$(curl -fsS -H "Authorization: Bearer $token" "$admin/api/campaigns/winback-demo")
    sent=$(echo "$status" | jq '.sends.sent // 0')
    [ "$(echo "$status" | jq '.settled')" = true ] && [ "$sent" -ge "$count" ] && break
    [ "$(echo "$status" | jq '.settled')" = true ] && [ "$(echo "$status" | jq '[.sends[]] | add // 0')" -ge "$count" ] && break
    sleep 0.05
  done
  finished=$(date +%s.%N)
  local received
  received=$(curl -fsS "$sim/_sim/whatsapp/stats" | jq '.accepted')
  if [ "$sent" != "$count" ] || [ "$received" != "$count" ]; then
    echo "$backend $nodes node(s): settled $sent of $count as sent, simulator received $received ($run_dir)" >&2
    exit 1
  fi
  for pid in "${serve_pids[@]}" "$sim_pid"; do kill "$pid" 2>/dev/null || true; done
  wait "${serve_pids[@]}" "$sim_pid" 2>/dev/null || true
  awk -v backend="$backend" -v nodes="$nodes" -v n="$count" -v a="$started" -v b="$finished" \
    'BEGIN { printf "%s %d node(s): %.0f msg/s (%d messages in %.2f s)\n", backend, nodes, n / (b - a), n, b - a }'
}

run sqlite 1 "$out/sqlite.db"
for nodes in $nodes_list; do
  schema="bench_scale_${nodes}_$$"
  psql "$pg" -qc "DROP SCHEMA IF EXISTS $schema CASCADE" >/dev/null
  run postgres "$nodes" "$pg?schema=$schema"
  psql "$pg" -qc "DROP SCHEMA IF EXISTS $schema CASCADE" >/dev/null
done
