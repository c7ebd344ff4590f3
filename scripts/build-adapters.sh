#!/usr/bin/env bash
# Build every adapter (plugins/*) and lay each out as a package:
# OUT/<name>/manifest.toml plus the component it names. With --test-guests,
# also the misbehaving test adapters in tests/guests/*.
# Used by `make adapters` and by the test suite.
#
# An adapter is a folder with a manifest.toml and either
# - a Cargo.toml: a Rust crate, built for wasm32-wasip2 (profile `wasm`), or
# - a package.json: a JavaScript adapter. Its dependencies are installed with
#   `npm ci` when node_modules is missing (or older than package-lock.json),
#   then `npm run build` must leave the component at dist/<component>. This
#   needs Node.js 20 or later and npm.
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

# The value of `key = "…"` in a TOML file's first line that sets it.
toml_value() {
  sed -n "s/^$1 = \"\(.*\)\"/\1/p" "$2" | head -n1
}

crates=()
js_plugins=()
for manifest in "${manifests[@]}"; do
  dir=$(dirname "$manifest")
  if [ -f "$dir/Cargo.toml" ]; then
    crates+=("$dir")
  elif [ -f "$dir/package.json" ]; then
    js_plugins+=("$dir")
  else
    echo "error: $dir has a manifest.toml but neither a Cargo.toml (Rust) nor a package.json (JavaScript)" >&2
    exit 1
  fi
done

if [ ${#js_plugins[@]} -gt 0 ]; then
  if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    echo "error: the JavaScript adapter(s) ${js_plugins[*]} need Node.js 20 or later and npm to build, and $(command -v node >/dev/null 2>&1 && echo npm || echo node) is not on PATH; install Node.js 20 or later with npm (Debian 12's own nodejs package is 18, too old) and run this again" >&2
    exit 1
  fi
  if ! node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 20 ? 0 : 1)'; then
    echo "error: the JavaScript adapter(s) ${js_plugins[*]} need Node.js 20 or later; this is Node.js $(node --version)" >&2
    exit 1
  fi
fi

if [ ${#crates[@]} -gt 0 ]; then
  if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip2; then
    rustup target add wasm32-wasip2 >&2
  fi
  packages=()
  for dir in "${crates[@]}"; do
    packages+=(-p "$(toml_value name "$dir/Cargo.toml")")
  done
  cargo build --quiet --target wasm32-wasip2 --profile wasm --target-dir "$target_dir" "${packages[@]}"
fi

# Copy then rename, so a test reading the package never sees half a file.
install_file() {
  local from=$1 to=$2
  if ! cmp -s "$from" "$to"; then
    cp "$from" "$to.tmp.$$" && mv -f "$to.tmp.$$" "$to"
  fi
}

for dir in "${crates[@]}"; do
  crate=$(toml_value name "$dir/Cargo.toml")
  name=$(toml_value name "$dir/manifest.toml")
  component=$(toml_value component "$dir/manifest.toml")
  mkdir -p "$out/$name"
  install_file "$target_dir/wasm32-wasip2/wasm/${crate//-/_}.wasm" "$out/$name/$component"
  install_file "$dir/manifest.toml" "$out/$name/manifest.toml"
done

if [ ${#js_plugins[@]} -gt 0 ]; then
  mkdir -p "$target_dir"
  # One JavaScript build at a time: test binaries run this concurrently,
  # and two `npm ci` in one folder would trip over each other.
  exec 9>"$target_dir/js-build.lock"
  if command -v flock >/dev/null 2>&1; then
    flock 9
  fi
  for dir in "${js_plugins[@]}"; do
    name=$(toml_value name "$dir/manifest.toml")
    component=$(toml_value component "$dir/manifest.toml")
    (
      cd "$dir"
      if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
        npm ci --no-audit --no-fund >&2
      fi
      # The build skips itself when its inputs have not changed.
      npm run --silent build -- --quiet >&2
    ) || {
      echo "error: building the JavaScript adapter in $dir failed (\`npm ci\` / \`npm run build\` above)" >&2
      exit 1
    }
    if [ ! -f "$dir/dist/$component" ]; then
      echo "error: \`npm run build\` in $dir did not produce dist/$component (the component its manifest.toml names)" >&2
      exit 1
    fi
    mkdir -p "$out/$name"
    install_file "$dir/dist/$component" "$out/$name/$component"
    install_file "$dir/manifest.toml" "$out/$name/manifest.toml"
  done
fi
echo "$out"
