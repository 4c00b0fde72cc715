#!/usr/bin/env bash
# Makes input/ output/ status-db/ and a key file, as the old pair's prepare-env.sh did, but never
# overwrites an existing key, and sets ownership so that the images' non-root user (uid and gid
# 10001, or APP_UID/APP_GID) can use them while others cannot read the key:
#   key         0640, group APP_GID (owner: whoever ran this)
#   input/ output/ status-db/   owned by APP_UID:APP_GID, 2775 (setgid: new files keep the group)
# Changing ownership needs root; run as another user it makes the files and says what to chown.
# usage: scripts/prepare-env.sh [DIR]   (default: current directory)
set -euo pipefail
dir=${1:-.}
uid=${APP_UID:-10001}
gid=${APP_GID:-10001}
mkdir -p "$dir/input" "$dir/output" "$dir/status-db"
key="$dir/key"
if [[ -e "$key" ]]; then
  echo "key exists, kept: $key"
else
  (umask 077 && dd if=/dev/urandom bs=32 count=1 2>/dev/null | openssl base64 > "$key")
  echo "key created: $key"
fi
if [[ $(id -u) == 0 ]]; then
  chown "$uid:$gid" "$dir/input" "$dir/output" "$dir/status-db"
  chmod 2775 "$dir/input" "$dir/output" "$dir/status-db"
  chgrp "$gid" "$key"
  chmod 0640 "$key"
  echo "owner of input/ output/ status-db/: $uid:$gid; key: mode 0640, group $gid"
else
  chmod 0600 "$key"
  echo "not root: ownership unchanged. For the containers (uid $uid) run:" >&2
  echo "  sudo chown $uid:$gid '$dir/input' '$dir/output' '$dir/status-db' && sudo chgrp $gid '$key' && sudo chmod 0640 '$key'" >&2
fi
