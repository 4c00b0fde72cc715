#!/bin/sh
# Makes a private CA and, signed by it, a server certificate for the receiver and a client
# certificate for the sender, with openssl; for compose/docker-compose.tls.yml or a first trial.
# Production certificates come from your own CA; this script never replaces an existing file.
#
#   scripts/make-tls-certs.sh DIR [RECEIVER_HOST_NAME...]      (default names: app-receiver localhost)
#
# Writes DIR/ca.pem ca.key server.pem server.key client.pem client.key. As root the keys are
# given to group 10001 (the containers' user) with mode 0640, like the Fernet key.
set -eu
dir=${1:?usage: make-tls-certs.sh DIR [RECEIVER_HOST_NAME...]}
shift
[ "$#" -gt 0 ] || set -- app-receiver localhost
for f in ca.pem ca.key server.pem server.key client.pem client.key; do
  if [ -e "$dir/$f" ]; then echo "make-tls-certs.sh: $dir/$f exists; not replacing anything" >&2; exit 1; fi
done
mkdir -p "$dir"
san=""
for name in "$@"; do
  case "$name" in
    *[!0-9.]*) san="$san,DNS:$name" ;;
    *) san="$san,IP:$name" ;;
  esac
done
san=${san#,}
umask 077
cd "$dir"
openssl req -x509 -newkey rsa:3072 -nodes -days 825 -subj "/CN=transfer private CA" \
  -keyout ca.key -out ca.pem 2>/dev/null
issue() {  # name, subject, extensions
  openssl req -newkey rsa:3072 -nodes -subj "/CN=$2" -keyout "$1.key" -out "$1.csr" 2>/dev/null
  printf '%s\n' "$3" > "$1.ext"
  openssl x509 -req -in "$1.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -days 825 \
    -extfile "$1.ext" -out "$1.pem" 2>/dev/null
  rm -f "$1.csr" "$1.ext"
}
issue server "$1" "subjectAltName=$san
extendedKeyUsage=serverAuth,clientAuth"
issue client "sender" "extendedKeyUsage=clientAuth"
rm -f ca.srl
chmod 0644 ca.pem server.pem client.pem
if [ "$(id -u)" = 0 ]; then
  chgrp 10001 server.key client.key && chmod 0640 server.key client.key
fi
echo "made $dir: ca.pem, server.pem/.key (for $*), client.pem/.key; keep ca.key offline"
