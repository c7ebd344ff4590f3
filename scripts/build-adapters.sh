#!/usr/bin/env bash
# Build every adapter (plugins/*) for wasm32-wasip2 and lay each out as a
# package: OUT/<name>/manifest.toml plus the component it names. With
# --test-guests, also the misbehaving test adapters in tests/guests/*.
# Used by `make adapters` and by the test suite.
#
#   scripts/build-adapters.sh [--test-guests] [OUT]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
manifests=(plugins/*/manifest.toml)
if [ "${1:-}" = "--test-guests" ]; then
  manifests+=(tests/guests/*/manifest.toml)
  shift
fi
out=${1:-"$root/dist/adapters"}
target_dir="$root/target/wasm"

if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip2; then
  rustup target add wasm32-wasip2 >&2
fi

crates=()
for manifest in "${manifests[@]}"; do
  crates+=("$(dirname "$manifest")")
done
packages=()
for dir in "${crates[@]}"; do
  packages+=(-p "$(sed -n 's/^name = "\(.*\)"/\1/p' "$dir/Cargo.toml" | head -n1)")
done
cargo build --quiet --target wasm32-wasip2 --profile wasm --target-dir "$target_dir" "${packages[@]}"

for dir in "${crates[@]}"; do
  crate=$(sed -n 's/^name = "\(.*\)"/\1/p' "$dir/Cargo.toml" | head -n1)
  name=$(sed -n 's/^name = "\(.*\)"/\1/p' "$dir/manifest.toml" | head -n1)
  component=$(sed -n 's/^component = "\(.*\)"/\1/p' "$dir/manifest.toml" | head -n1)
  mkdir -p "$out/$name"
  built="$target_dir/wasm32-wasip2/wasm/${crate//-/_}.wasm"
  # Copy then rename, so a test reading the package never sees half a file.
  for pair in "$built:$component" "$dir/manifest.toml:manifest.toml"; do
    from=${pair%%:*} to="$out/$name/${pair#*:}"
    if ! cmp -s "$from" "$to"; then
      cp "$from" "$to.tmp.$$" && mv -f "$to.tmp.$$" "$to"
    fi
  done
done
echo "$out"
