#!/bin/sh
# Start of the SFTP server container: installs the mounted keys where sshd_config names them, with
# the owner and modes sshd insists on (the mounted files keep the host's owner, which sshd's
# StrictModes would refuse for authorized keys), checks the configuration, then runs sshd in the
# foreground (-D), logging to stderr (-e: `docker logs`).
#   /run/secrets/sftp_host_key             the host key (private half; its .pub goes to the sender)
#   /run/secrets/sftp_authorized_keys      the public key(s) that may log in as transfer
set -eu
for f in /run/secrets/sftp_host_key /run/secrets/sftp_authorized_keys; do
  # a bind mount of a missing host file arrives as an empty directory
  if [ ! -f "$f" ]; then
    echo "sftp: $f is missing or not a file: make the keys first (compose/sftp/make-keys.sh)" >&2
    exit 1
  fi
done
install -o root -g root -m 0600 /run/secrets/sftp_host_key /etc/ssh/ssh_host_ed25519_key
install -o root -g root -m 0644 /run/secrets/sftp_authorized_keys /etc/ssh/authorized_keys/transfer
/usr/sbin/sshd -t
exec /usr/sbin/sshd -D -e
