#!/usr/bin/env bash
# `make bench-reload`: how long a running host takes to swap in a new
# adapter version, from the reload request to the new version serving.
#
# Starts `switchboard-simulator` and `switchboard serve` with all six
# adapters, then times `POST /api/adapters/reload` (curl's total time; the
# handler returns once the new version is serving):
#   1. with nothing changed;
#   2. after `switchboard adapter install` of a new WhatsApp version (its
#      component differs by a custom section, so its native code is new);
#      `install` checks and compiles it into the cache first;
#   3. after copying another new version straight into the adapters folder
#      (nothing compiled it: the reload compiles).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
cargo build --release --quiet --bin switchboard --bin switchboard-simulator
bash scripts/build-adapters.sh dist/adapters >/dev/null
bin="$root/target/release"
out="$root/target/bench-reload"
rm -rf "$out" && mkdir -p "$out"
cp -r dist/adapters "$out/adapters"
export SWITCHBOARD_ADMIN_TOKEN="bench-reload-token-$RANDOM$RANDOM"
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT
wait_for_line() { # file pattern
  for _ in $(seq 1 300); do
    if grep -q "$2" "$1" 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  echo "timed out waiting for $1" >&2; cat "$1" >&2; return 1
}

"$bin/switchboard-simulator" --listen 127.0.0.1:0 --host-config "$out/channels.toml" \
  >"$out/simulator.out" 2>"$out/simulator.log" &
pids+=($!)
wait_for_line "$out/simulator.out" "listening on"
{
  echo "database = \"$out/switchboard.db\""
  echo "adapters_dir = \"$out/adapters\""
  echo "cache_dir = \"$out/cwasm-cache\""
  echo "[server]"
  echo "listen = \"127.0.0.1:0\""
  echo "admin_listen = \"127.0.0.1:0\""
  echo "admin_tokens = [\"env:SWITCHBOARD_ADMIN_TOKEN\"]"
  echo "[trust]"
  echo "allow_unsigned = true"
  cat "$out/channels.toml"
} >"$out/switchboard.toml"
"$bin/switchboard" --config "$out/switchboard.toml" serve >"$out/serve.out" 2>"$out/serve.log" &
pids+=($!)
wait_for_line "$out/serve.out" "admin API on"
admin=$(grep -m1 -o 'admin API on http://[0-9.:]*' "$out/serve.out" | sed 's/^admin API on //')

reload() { # prints seconds
  curl -fsS -o "$out/reload.json" -w '%{time_total}' -X POST \
    -H "authorization: Bearer $SWITCHBOARD_ADMIN_TOKEN" "$admin/api/adapters/reload"
}
serving() { # the WhatsApp version the host serves
  curl -fsS -H "authorization: Bearer $SWITCHBOARD_ADMIN_TOKEN" "$admin/api/channels" |
    python3 -c 'import json,sys; print(next(a["version"] for a in json.load(sys.stdin) if a["channel"] == "whatsapp"))'
}
# A WhatsApp package of `version` whose component carries one more custom
# section than the built one: the same code, different bytes and digest.
new_version() { # version folder
  rm -rf "$2" && cp -r dist/adapters/whatsapp "$2"
  sed -i "s/^version = .*/version = \"$1\"/" "$2/manifest.toml"
  python3 - "$2" "$1" <<'PY'
import pathlib, sys
folder, version = pathlib.Path(sys.argv[1]), sys.argv[2]
component = next(folder.glob("*.wasm"))
name = b"bench-reload"
payload = bytes([len(name)]) + name + version.encode()
component.write_bytes(component.read_bytes() + b"\x00" + bytes([len(payload)]) + payload)
PY
}
ms() { awk -v s="$1" 'BEGIN { printf "%.1f", s * 1000 }'; }

unchanged=$(reload)
echo "reload, nothing changed: $(ms "$unchanged") ms"

new_version 9.0.1 "$out/whatsapp-9.0.1"
"$bin/switchboard" --config "$out/switchboard.toml" adapter pack "$out/whatsapp-9.0.1" \
  --out "$out/whatsapp-9.0.1.sbpkg" >/dev/null
"$bin/switchboard" --config "$out/switchboard.toml" adapter install "$out/whatsapp-9.0.1.sbpkg" \
  --no-reload >"$out/install.out"
installed=$(reload)
echo "reload after \`adapter install\` of a new version: $(ms "$installed") ms; serving $(serving) ($(grep -o 'compiled in [0-9]* ms' "$out/install.out") at install)"

new_version 9.0.2 "$out/whatsapp-9.0.2"
rm -rf "$out/adapters/whatsapp" && cp -r "$out/whatsapp-9.0.2" "$out/adapters/whatsapp"
copied=$(reload)
echo "reload after copying a new version in (compiled by the reload): $(ms "$copied") ms; serving $(serving)"
