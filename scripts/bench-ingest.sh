#!/usr/bin/env bash
# `make bench-ingest [SIZES="100000 1000000 10000000"]`: audience ingest
# speed and peak memory of the release binary, as a process.
#
# For each size, writes an audience CSV (profile id, name, phone without a
# `+` read with the row's country, a consent column; one row in 1,000 has an
# invalid phone number and is reported), then runs `switchboard send
# --dry-run` over it with the WhatsApp adapter loaded: CSV parsing, phone
# validation and E.164 formatting, consent and window policy, template
# rendering, one decision per recipient. Prints rows per second (wall time
# from process start to exit) and peak RSS (`/usr/bin/time`'s maximum
# resident set size).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
sizes=${SIZES:-"100000 1000000 10000000"}

# Peak RSS comes from GNU time (Debian's package `time`), not the shell's
# builtin.
bash scripts/install-missing.sh "make bench-ingest" /usr/bin/time:time

cargo build --release --quiet --bin switchboard
bash scripts/build-adapters.sh dist/adapters >/dev/null
bin="$root/target/release"
out="$root/target/bench-ingest"
rm -rf "$out" && mkdir -p "$out/adapters"
cp -r dist/adapters/whatsapp "$out/adapters/whatsapp"
cat >"$out/switchboard.toml" <<TOML
database = "$out/bench.db"
adapters_dir = "$out/adapters"
cache_dir = "$root/target/cwasm-cache"
[trust]
allow_unsigned = true
[channels.whatsapp]
allow_hosts = ["graph.facebook.com"]
settings = { phone_number_id = "100000000000001" }
secrets = { access_token = "unused", app_secret = "unused", verify_token = "unused" }
TOML
# The win-back campaign of the examples: a WhatsApp marketing template.
cp examples/winback/campaign.toml "$out/campaign.toml"
"$bin/switchboard" --config "$out/switchboard.toml" adapters >/dev/null

for rows in $sizes; do
  audience="$out/audience-$rows.csv"
  awk -v n="$rows" 'BEGIN {
    print "profile_id,name,phone,country,consent_whatsapp_marketing";
    for (i = 0; i < n; i++) {
      if (i % 1000 == 999) printf "p%08d,Ana,12,DE,yes\n", i;
      else printf "p%08d,Ana,015%09d,DE,yes\n", i, 110000000 + (i % 880000000);
    }
  }' >"$audience"
  /usr/bin/time -f "%e %M" -o "$out/time-$rows" \
    "$bin/switchboard" --config "$out/switchboard.toml" send --dry-run \
    --campaign "$out/campaign.toml" --audience "$audience" >"$out/send-$rows.out" 2>"$out/send-$rows.log" || true
  read -r secs rss_kb <"$out/time-$rows"
  if ! grep -q "would_send" "$out/send-$rows.out"; then
    echo "dry run over $rows rows failed; see $out/send-$rows.out and .log" >&2
    tail -5 "$out/send-$rows.out" "$out/send-$rows.log" >&2
    exit 1
  fi
  awk -v n="$rows" -v s="$secs" -v kb="$rss_kb" \
    'BEGIN { printf "ingest %d rows: %.2f s, %.0f rows/s, peak RSS %.0f MB\n", n, s, n / s, kb / 1024 }'
  rm -f "$audience"
done
