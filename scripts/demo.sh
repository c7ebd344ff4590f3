#!/usr/bin/env bash
# `make demo`: a win-back campaign over 3,000 synthetic profiles, end to end
# on loopback. Starts the WhatsApp simulator and `switchboard serve`, opens
# the windows of customers who wrote in recently (signed inbound webhooks),
# runs `switchboard send`, shows the simulator receiving and the status
# webhooks coming back, and stops everything it started.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
# The demo talks to the simulator and the admin API with curl and reads
# their JSON with jq.
bash scripts/install-missing.sh "make demo" curl:curl jq:jq
bin="$root/target/debug"
out="$root/demo-out"
rm -rf "$out" && mkdir -p "$out"
pids=()
export SWITCHBOARD_ADMIN_TOKEN="demo-admin-token-$RANDOM$RANDOM$RANDOM"
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
  --host-config "$out/channels.toml" --whatsapp-verify-token demo-verify \
  >"$out/simulator.out" 2>"$out/simulator.log" &
pids+=($!)
sim=$(wait_for_line "$out/simulator.out" "listening on")
echo "simulator at $sim"

# The host's adapters: the ones \`make adapters\` built. Telegram's package
# there is unsigned, and this host accepts Telegram only signed by the demo
# BSP's key: it arrives later as a signed package.
cp -r "$root/dist/adapters" "$out/adapters"
"$bin/switchboard" adapter keygen --out "$out/demo-bsp.pem" >"$out/keygen.out"
bsp_public=$(sed -n 's/^public key: //p' "$out/keygen.out")

cat >"$out/switchboard.toml" <<TOML
database = "switchboard.db"
adapters_dir = "$out/adapters"
cache_dir = "$root/target/cwasm-cache"

[server]
listen = "127.0.0.1:0"                         # public: webhooks and /healthz
admin_listen = "127.0.0.1:0"                   # admin API and /metrics
admin_tokens = ["env:SWITCHBOARD_ADMIN_TOKEN"]

[trust]
keys = { "demo-bsp" = "$bsp_public" }
# The packages \`make adapters\` builds here are unsigned; a production host
# lists its BSPs' keys in \`keys\` and leaves this off.
allow_unsigned = true

# The channels, with the simulator's credentials (written by the simulator).
# Each points its platform's declared host at the simulator with
# \`endpoints\`; no adapter may reach loopback otherwise.
TOML
# Telegram: only packages signed by the demo BSP.
sed '/^\[channels.telegram\]/a trusted_keys = ["demo-bsp"]\nallow_unsigned = false' "$out/channels.toml" >>"$out/switchboard.toml"
echo "messages_per_second = 250    # the simulated WhatsApp number's throughput tier" >>"$out/switchboard.toml"

step "Starting switchboard serve (webhooks, admin API, metrics)"
"$bin/switchboard" --config "$out/switchboard.toml" serve >"$out/serve.out" 2>"$out/serve.log" &
pids+=($!)
host=$(wait_for_line "$out/serve.out" "listening on")
echo "host at $host"
admin=$(grep -m1 -o 'admin API on http://[0-9.:]*' "$out/serve.out" | sed 's/^admin API on //')
printf 'admin API at %s: without a token %s, with it %s\n' "$admin" \
  "$(curl -s -o /dev/null -w '%{http_code}' "$admin/api/channels")" \
  "$(curl -s -o /dev/null -w '%{http_code}' -H "authorization: Bearer $SWITCHBOARD_ADMIN_TOKEN" "$admin/api/channels")"
for channel in whatsapp line kakaotalk wechat rcs telegram; do
  curl -fsS -X PUT "$sim/_sim/$channel/webhook" -H 'content-type: application/json' \
    -d "{\"url\":\"$host/webhooks/$channel\"}" >/dev/null
done
"$bin/switchboard" --config "$out/switchboard.toml" adapters
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

step "A loyalty-balance update over all five platforms (route: kakaotalk, line, wechat, whatsapp, rcs)"
while read -r phone; do
  [ -n "$phone" ] || continue
  curl -fsS -X POST "$sim/_sim/kakaotalk/recipients" -H 'content-type: application/json' \
    -d "{\"recipient_no\":\"$phone\",\"result_code\":3019}" >/dev/null
done <examples/loyalty/not_on_kakaotalk.txt
echo "$(wc -l <examples/loyalty/not_on_kakaotalk.txt) Korean numbers are not on KakaoTalk (3019): they go on by RCS"
"$bin/switchboard" --config "$out/switchboard.toml" send \
  --audience examples/loyalty/audience.csv --campaign examples/loyalty/campaign.toml \
  --results "$out/loyalty-results.jsonl"
sleep 2
"$bin/switchboard" --config "$out/switchboard.toml" status --campaign loyalty-demo
printf 'accepted by the simulator: '
for channel in whatsapp line kakaotalk wechat rcs; do
  printf '%s=%s ' "$channel" "$(curl -fsS "$sim/_sim/$channel/messages" | jq 'length')"
done
echo

echo

step "Telegram, an adapter written in JavaScript, arrives as a signed package"
printf 'at start-up the host refused the unsigned build: '
grep -m1 -o 'telegram.*unsigned[^;]*' "$out/serve.log" || echo "(not found in serve.log)"
"$bin/switchboard" --config "$out/switchboard.toml" adapter pack dist/adapters/telegram \
  --key "$out/demo-bsp.pem" --out "$out/telegram.sbpkg"
"$bin/switchboard" --config "$out/switchboard.toml" adapter verify "$out/telegram.sbpkg"
"$bin/switchboard" --config "$out/switchboard.toml" adapter install "$out/telegram.sbpkg" --admin-url "$admin" \
  | sed 's/"digest":"[0-9a-f]*"/"digest":…/g' | cut -c1-160

step "A shipping update to $(($(wc -l <examples/shipping/audience.csv) - 1)) customers who started the brand's Telegram bot"
tail -n +2 examples/shipping/audience.csv | while IFS=, read -r _ name chat _; do
  curl -fsS -X POST "$sim/_sim/telegram/start" -H 'content-type: application/json' \
    -d "{\"chat_id\":$chat,\"first_name\":\"$name\"}" >/dev/null
done
"$bin/switchboard" --config "$out/switchboard.toml" send \
  --audience examples/shipping/audience.csv --campaign examples/shipping/campaign.toml \
  --results "$out/shipping-results.jsonl"
curl -fsS "$sim/_sim/telegram/messages" | jq -r '.[0:3][] | "  chat \(.chat_id)  \(.text)"'

echo
echo "Per-recipient results: $out/results.jsonl, $out/loyalty-results.jsonl, $out/shipping-results.jsonl    logs: $out/*.log"
