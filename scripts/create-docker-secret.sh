#!/usr/bin/env bash
# Creates the swarm secret app-sender-receiver-key that compose/docker-stack.yml mounts into both
# services: from fresh random bytes (32, base64, as prepare-env.sh makes a key file), or from an
# existing key file if one is given. Swarm secrets cannot be changed: to rotate, see README "Deploy".
# usage: scripts/create-docker-secret.sh [KEY_FILE]     (SECRET_NAME overrides the name)
set -euo pipefail
name=${SECRET_NAME:-app-sender-receiver-key}
if ! docker info --format '{{.Swarm.LocalNodeState}}' 2>/dev/null | grep -qx active; then
  echo "create-docker-secret: this engine is not in a swarm (run: docker swarm init)" >&2
  exit 1
fi
if docker secret inspect "$name" >/dev/null 2>&1; then
  echo "create-docker-secret: secret $name exists, kept (remove it first to replace it)" >&2
  exit 1
fi
if (($# > 0)); then
  [[ -r "$1" ]] || { echo "create-docker-secret: cannot read key file $1" >&2; exit 1; }
  # Check the key before it goes into the swarm: one or more lines of base64 of 32 bytes.
  while read -r line; do
    [[ -z "$line" ]] && continue
    n=$(printf '%s' "$line" | tr -- '-_' '+/' | openssl base64 -d -A 2>/dev/null | wc -c)
    [[ $n == 32 ]] || { echo "create-docker-secret: $1 is not a key file (a line is not base64 of 32 bytes)" >&2; exit 1; }
  done < "$1"
  docker secret create "$name" "$1" >/dev/null
  echo "secret $name created from $1"
else
  dd if=/dev/urandom bs=32 count=1 2>/dev/null | openssl base64 | docker secret create "$name" - >/dev/null
  echo "secret $name created from fresh random bytes"
fi
