#!/usr/bin/env bash
# Makes input/ output/ status-db/ and a key file, as the old pair's prepare-env.sh did, but never
# overwrites an existing key. usage: scripts/prepare-env.sh [DIR]   (default: current directory)
set -euo pipefail
dir=${1:-.}
mkdir -p "$dir/input" "$dir/output" "$dir/status-db"
key="$dir/key"
if [[ -e "$key" ]]; then
  echo "key exists, kept: $key"
else
  (umask 077 && dd if=/dev/urandom bs=32 count=1 2>/dev/null | openssl base64 > "$key")
  chmod 0600 "$key"
  echo "key created: $key"
fi
