#!/usr/bin/env bash
# `make bench-e2e [COUNT=N]`: end-to-end throughput of the release binaries,
# as processes, against the ceiling in the same run.
#
# 1. starts `switchboard-simulator` (WhatsApp throughput limit and status
#    webhooks off) and writes a host config pointing the WhatsApp adapter at it;
# 2. times `switchboard send` of a template campaign to COUNT consenting
#    recipients, from process start to exit: CSV ingest, consent and window
#    policy, the durable SQLite outbox (a fresh file), the WhatsApp adapter in
#    its sandbox making one `POST /v21.0/{id}/messages` per message, and every
#    outcome settled and written to the results file. It prints what a
#    message cost in CPU, the host's and the simulator's, and the rate the
#    machine's cores would allow at that cost;
# 3. times `switchboard-loadgen`, a plain reqwest loop posting the same
#    requests to the same simulator with as many requests in flight as the
#    host may have (dispatch concurrency × the host's per-call bound), and
#    prints the loop's and the simulator's CPU per message in it.
#
# Last line: `switchboard X msg/s, raw Y msg/s, ratio Z`.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
count=${COUNT:-100000}
# Adapter calls in flight (dispatch concurrency) and requests per call in
# flight: the SDK hands a batch's requests to the host's `http.send`, which
# keeps at most 16 of them on their way (MAX_IN_FLIGHT_PER_SEND).
calls=${CALLS:-4}
per_call=16
in_flight=$((calls * per_call))

cargo build --release --quiet --bin switchboard --bin switchboard-simulator --bin switchboard-loadgen
bash scripts/build-adapters.sh dist/adapters >/dev/null
bin="$root/target/release"
out="$root/target/bench-e2e"
rm -rf "$out" && mkdir -p "$out/adapters"
cp -r dist/adapters/whatsapp "$out/adapters/whatsapp"
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

"$bin/switchboard-simulator" --listen 127.0.0.1:0 --whatsapp-mps 0 --whatsapp-no-statuses \
  --host-config "$out/channels.toml" >"$out/simulator.out" 2>"$out/simulator.log" &
pids+=($!)
for _ in $(seq 1 100); do grep -q "listening on" "$out/simulator.out" 2>/dev/null && break; sleep 0.1; done
sim=$(grep -m1 -o 'http://[0-9.:]*' "$out/simulator.out")

{
  echo "database = \"$out/bench.db\""
  echo "adapters_dir = \"$out/adapters\""
  echo "cache_dir = \"$root/target/cwasm-cache\""
  echo "[trust]"
  echo "allow_unsigned = true"
  echo "[dispatch]"
  echo "concurrency = $calls"
  # Only the WhatsApp table, with no rate of its own: the simulator's limit is off.
  awk '/^\[channels\.whatsapp\]/{on=1} /^\[/{if(!/^\[channels\.whatsapp\]/)on=0} on' "$out/channels.toml"
  echo "messages_per_second = 10000000"
} >"$out/switchboard.toml"

awk -v n="$count" 'BEGIN {
  print "profile_id,name,phone,consent_whatsapp_marketing";
  for (i = 0; i < n; i++) printf "b%07d,Ana,+4915%09d,yes\n", i, 110000000 + i;
}' >"$out/audience.csv"
# The win-back campaign of the examples: a WhatsApp marketing template.
cp examples/winback/campaign.toml "$out/campaign.toml"

# Compile the adapter into the cache first: a host compiles a package once.
"$bin/switchboard" --config "$out/switchboard.toml" adapters >/dev/null

# CPU time of a process so far (user + system), in seconds, from /proc.
cpu_seconds() {
  awk -v tick="$(getconf CLK_TCK)" '{ printf "%.2f", ($14 + $15) / tick }' "/proc/$1/stat"
}
simulator_cpu_before=$(cpu_seconds "${pids[0]}")
started=$(date +%s.%N)
# Bash's `time` gives the send's own CPU time (user and system).
TIMEFORMAT='%U %S'
{ time "$bin/switchboard" --config "$out/switchboard.toml" send --campaign "$out/campaign.toml" \
  --audience "$out/audience.csv" --results "$out/results.jsonl" >"$out/send.out" 2>"$out/send.log"; } 2>"$out/send.cpu"
finished=$(date +%s.%N)
simulator_cpu_after=$(cpu_seconds "${pids[0]}")
sent=$(grep -c '"outcome":"sent"' "$out/results.jsonl" || true)
received=$(curl -fsS "$sim/_sim/whatsapp/stats" | grep -o '"accepted":[0-9]*' | cut -d: -f2)
if [ "$sent" != "$count" ]; then
  echo "switchboard send settled $sent of $count as sent (see $out/send.out)" >&2
  tail -5 "$out/send.out" >&2
  exit 1
fi
host_rate=$(awk -v n="$count" -v a="$started" -v b="$finished" 'BEGIN { printf "%.0f", n / (b - a) }')
host_secs=$(awk -v a="$started" -v b="$finished" 'BEGIN { printf "%.2f", b - a }')
echo "switchboard send: $count messages in $host_secs s ($calls adapter calls × $per_call requests in flight); simulator received: $received"
# What a message costs in CPU, host and simulator: on a machine of N cores,
# N / (the two together) bounds the rate however well the work overlaps.
read -r host_user host_system <"$out/send.cpu"
awk -v n="$count" -v u="$host_user" -v s="$host_system" -v wall="$host_secs" \
  -v sim="$(awk -v a="$simulator_cpu_before" -v b="$simulator_cpu_after" 'BEGIN { print b - a }')" \
  -v cores="$(nproc)" 'BEGIN {
    host = (u + s) * 1e6 / n; simulator = sim * 1e6 / n;
    printf "CPU per message: switchboard %.0f µs (%.2f s user + %.2f s system, %.2f cores), simulator %.0f µs; %d cores allow at most %.0f msg/s at that cost\n",
      host, u, s, (u + s) / wall, simulator, cores, cores * 1e6 / (host + simulator)
  }'

simulator_cpu_before=$(cpu_seconds "${pids[0]}")
raw_line=$({ time "$bin/switchboard-loadgen" --simulator "$sim" --count "$count" --concurrency "$in_flight"; } 2>"$out/raw.cpu")
simulator_cpu_after=$(cpu_seconds "${pids[0]}")
echo "$raw_line"
read -r raw_user raw_system <"$out/raw.cpu"
awk -v n="$count" -v u="$raw_user" -v s="$raw_system" \
  -v sim="$(awk -v a="$simulator_cpu_before" -v b="$simulator_cpu_after" 'BEGIN { print b - a }')" 'BEGIN {
    printf "CPU per message, raw loop: loadgen %.0f µs, simulator %.0f µs\n", (u + s) * 1e6 / n, sim * 1e6 / n
  }'
raw_rate=$(echo "$raw_line" | awk '{print $2}')
ratio=$(awk -v a="$host_rate" -v b="$raw_rate" 'BEGIN { printf "%.2f", a / b }')
echo "switchboard $host_rate msg/s, raw $raw_rate msg/s, ratio $ratio"
