#!/usr/bin/env bash
# `install-missing.sh WHO PROBE:PACKAGE...`: make sure the tools a script
# needs are here. A PROBE is a command name or an absolute path; a missing
# one's Debian PACKAGE is installed where this runs as root with apt-get (a
# fresh Debian machine), otherwise WHO is named with what to install.
#
#   bash scripts/install-missing.sh "make demo" curl:curl jq:jq
set -euo pipefail
who=$1
shift
missing=()
for need in "$@"; do
  probe=${need%%:*}
  if [[ $probe == /* ]]; then [ -x "$probe" ] && continue; else command -v "$probe" >/dev/null && continue; fi
  missing+=("${need#*:}")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "installing ${missing[*]} (Debian packages) for $who"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
else
  echo "$who needs ${missing[*]} (Debian: apt-get install ${missing[*]})" >&2
  exit 1
fi
