#!/usr/bin/env bash
# Makes the keys compose/docker-compose.sftp.yml mounts, in DIR (default ./sftp-keys), with
# ssh-keygen (ed25519, no passphrase). Never replaces a key; known_hosts is written again from the
# host key every time.
#   ssh_host_ed25519_key(.pub)  the SFTP server's host key: the private half for the sftp
#                               container only
#   client_key(.pub)            the sender's login key: the private half for the sender, the
#                               public half is the server's authorized key
#   known_hosts                 "sftp ssh-ed25519 AAAA...": the one key the sender accepts from
#                               host sftp, port 22 (another port is written "[sftp]:2222 ...")
# Run as root, client_key gets group APP_GID (default 10001, the sender image's user) and mode
# 0640, as scripts/prepare-env.sh does for the Fernet key; the host key stays 0600 (sshd runs as
# root in its container). Run as another user it says what to chgrp.
# usage: compose/sftp/make-keys.sh [DIR]
set -euo pipefail
dir=${1:-sftp-keys}
gid=${APP_GID:-10001}
host=${SFTP_HOST:-sftp}  # the service name: what the destination's "host" says
mkdir -p "$dir"
for key in ssh_host_ed25519_key client_key; do
  if [[ -e "$dir/$key" ]]; then
    echo "key exists, kept: $dir/$key"
  else
    (umask 077 && ssh-keygen -q -t ed25519 -N '' -C "transfer-$key" -f "$dir/$key")
    echo "key created: $dir/$key"
  fi
done
echo "$host $(cut -d' ' -f1,2 "$dir/ssh_host_ed25519_key.pub")" >"$dir/known_hosts"
chmod 0644 "$dir/known_hosts" "$dir/ssh_host_ed25519_key.pub" "$dir/client_key.pub"
echo "known_hosts: $(ssh-keygen -l -f "$dir/ssh_host_ed25519_key.pub")"
if [[ $(id -u) == 0 ]]; then
  chgrp "$gid" "$dir/client_key"
  chmod 0640 "$dir/client_key"
  echo "client_key: mode 0640, group $gid"
else
  echo "not root: for the sender (uid $gid) run: sudo chgrp $gid '$dir/client_key' && sudo chmod 0640 '$dir/client_key'" >&2
fi
