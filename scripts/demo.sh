#!/usr/bin/env bash
# `make demo`: a win-back campaign over 3,000 synthetic profiles, end to end
# on loopback. Starts the WhatsApp simulator and `switchboard serve`, opens
# the windows of customers who wrote in recently (signed inbound webhooks),
# runs `switchboard send`, shows the simulator receiving and the status
# webhooks coming back, and stops everything it started.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
bin="$root/target/debug"
out="$root/demo-out"
rm -rf "$out" && mkdir -p "$out"
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

wait_for_line() { # file pattern
  for _ in $(seq 1 100); do
    if grep -q "$2" "$1" 2>/dev/null; then grep -m1 -o 'http://[0-9.:]*' "$1"; return 0; fi
    sleep 0.1
  done
  echo "timed out waiting for $1" >&2; cat "$1" >&2; return 1
}

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "Starting the platform simulator (WhatsApp Cloud API on loopback, a number upgraded to 250 msg/s)"
"$bin/switchboard-simulator" --listen 127.0.0.1:0 --whatsapp-mps 250 --whatsapp-status-delay-ms 200 \
  >"$out/simulator.out" 2>"$out/simulator.log" &
pids+=($!)
sim=$(wait_for_line "$out/simulator.out" "listening on")
echo "simulator at $sim"

cat >"$out/switchboard.toml" <<TOML
database = "switchboard.db"
adapters_dir = "$root/dist/adapters"
cache_dir = "$root/target/cwasm-cache"

[server]
listen = "127.0.0.1:0"

[sandbox]
allow_loopback_http = true   # the simulator is plain http on loopback

[channels.whatsapp]
messages_per_second = 250    # the simulated number's throughput tier
settings = { base_url = "$sim", phone_number_id = "100000000000001" }
secrets = { access_token = "sim-whatsapp-token", app_secret = "sim-whatsapp-app-secret", verify_token = "demo-verify" }
TOML

step "Starting switchboard serve (webhooks, admin API, metrics)"
"$bin/switchboard" --config "$out/switchboard.toml" serve >"$out/serve.out" 2>"$out/serve.log" &
pids+=($!)
host=$(wait_for_line "$out/serve.out" "listening on")
echo "host at $host"
curl -fsS -X PUT "$sim/_sim/whatsapp/webhook" -H 'content-type: application/json' \
  -d "{\"url\":\"$host/webhooks/whatsapp\"}" >/dev/null
printf 'webhook handshake: '
curl -fsS "$host/webhooks/whatsapp?hub.mode=subscribe&hub.verify_token=demo-verify&hub.challenge=1158201444"; echo

step "Customers who wrote in recently: $(wc -l <examples/winback/open_windows.txt) inbound messages (signed webhooks open their 24 h windows)"
while read -r phone; do
  [ -n "$phone" ] || continue
  curl -fsS -X POST "$sim/_sim/whatsapp/inbound" -H 'content-type: application/json' \
    -d "{\"from\":\"${phone#+}\",\"text\":\"Hi, is my discount still valid?\"}" >/dev/null
done <examples/winback/open_windows.txt
echo "done"

step "Running the win-back campaign over examples/winback/audience.csv"
"$bin/switchboard" --config "$out/switchboard.toml" send \
  --audience examples/winback/audience.csv --campaign examples/winback/campaign.toml \
  --results "$out/results.jsonl"

step "Status webhooks coming back (sent -> delivered -> read)"
sleep 3
"$bin/switchboard" --config "$out/switchboard.toml" status --campaign winback-demo

step "What the simulator received"
curl -fsS "$sim/_sim/whatsapp/stats" | jq -c '{accepted, rejected, rate_limited, statuses_posted, inbound_posted, webhook_failures}'
curl -fsS "$sim/_sim/whatsapp/messages" | jq -r '.[0:3][] | "  \(.to)  \(.type)  \(.template_name // .text)"'

step "Running the same campaign again sends nothing new"
"$bin/switchboard" --config "$out/switchboard.toml" send --quiet \
  --audience examples/winback/audience.csv --campaign examples/winback/campaign.toml \
  --results "$out/results-rerun.jsonl" | head -4

echo
echo "Per-recipient results: $out/results.jsonl    logs: $out/*.log"
