#!/usr/bin/env bash
# A real FTP server with explicit TLS for the FTPS tests: Debian's vsftpd on a free port of
# 127.0.0.1, in the foreground (background=NO), with everything it uses in DIR. Run as root.
#
#   vsftpd.sh start DIR [--plain]
#                       starts it (again, after stop/kill: same port, certificate and password)
#                       and returns once it sends its 220 greeting; prints
#                       "port=N pid=P user=U remote_dir=/upload". --plain: no TLS at all (ftp://)
#   vsftpd.sh stop DIR  SIGTERM to the server and to its session processes, by PID; waits; removes
#                       DIR's PAM service file
#   vsftpd.sh kill DIR  SIGKILL to the same processes: a crash in the middle of a transfer
#
# DIR (made if missing; its path must hold no whitespace) receives:
#   ca.pem               the CA that signed the server's certificate (for 127.0.0.1 and localhost):
#                        a client's ca_file
#   untrusted-ca.pem     a CA with the same name that signed nothing: a ca_file that must fail
#   user, password       the one login (a virtual user; the password is random, made once)
#   root/upload/         where files land: remote_dir "/upload" (the login is chrooted to root/)
#   port, pid, vsftpd.conf, vsftpd.log (every FTP command and reply; PASS is masked by vsftpd)
#
# The login is a virtual user checked by pam_pwdfile (libpam-pwdfile) against DIR/ftp-passwd
# through a PAM service of DIR's own, /etc/pam.d/transfer-test-ftp-<hash of DIR> (PAM reads
# services from there only): no system account is made, and concurrent servers in other DIRs
# do not share a password. vsftpd acts for it as Debian's "ftp" user (guest_username; the
# vsftpd package makes that user), with local users' write rights (virtual_use_local_privs).
set -euo pipefail
VSFTPD=${TRANSFER_VSFTPD:-/usr/sbin/vsftpd}
usage() { echo "usage: vsftpd.sh start DIR [--plain] | stop DIR | kill DIR" >&2; exit 2; }
[ $# -ge 2 ] || usage
cmd=$1
dir=$2
shift 2
tls=YES
for opt in "$@"; do
  case "$cmd:$opt" in
    start:--plain) tls=NO ;;
    *) usage ;;
  esac
done

pam_service() {
  echo "transfer-test-ftp-$(printf '%s' "$(cd "$dir" && pwd)" | sha256sum | cut -c1-12)"
}

tree_pids() {  # the listener and every process below it (each session is two processes)
  local pid=$1 child
  echo "$pid"
  for child in $(pgrep -P "$pid" 2>/dev/null || true); do tree_pids "$child"; done
}

running_pid() {
  [ -f "$dir/pid" ] || return 1
  local pid
  pid=$(cat "$dir/pid")
  [ -r "/proc/$pid/cmdline" ] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$dir/vsftpd.conf" &&
    echo "$pid"
}

alive() {  # a zombie is gone (the server is not our child: init reaps it, in its own time)
  local state
  state=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1) || return 1
  [ -n "$state" ] && [ "$state" != Z ]
}

signal_all() {  # signal, then wait up to 10 s for the listener to go
  local sig=$1 pid pids
  pid=$(running_pid) || { rm -f "$dir/pid"; return 0; }
  pids=$(tree_pids "$pid")
  # shellcheck disable=SC2086
  kill "-$sig" $pids 2>/dev/null || true
  for _ in $(seq 1 200); do
    alive "$pid" || break
    sleep 0.05
  done
  if alive "$pid"; then
    # shellcheck disable=SC2086
    kill -KILL $(tree_pids "$pid") 2>/dev/null || true
  fi
  rm -f "$dir/pid"
}

free_port() {
  /usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

greeting_seen() {  # true once something on the port answers "220"
  /usr/bin/python3 - "$1" <<'PY'
import socket, sys
try:
    with socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=1) as s:
        ok = s.recv(4).startswith(b"220")
        s.sendall(b"QUIT\r\n")
        sys.exit(0 if ok else 1)
except OSError:
    sys.exit(1)
PY
}

# A CA, the server's certificate it signs (for 127.0.0.1 and localhost), and a CA that signed
# nothing. P-256 keys: scripts/make-tls-certs.sh makes RSA-3072 ones, 1.6 s per server here, and
# each test of a gtest_discover_tests executable starts its own server.
make_certs() {
  local d="$dir/tls" ec=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)
  mkdir -p "$d"
  (
    umask 077
    openssl req -x509 "${ec[@]}" -days 30 -subj "/CN=transfer test CA" \
      -keyout "$d/ca.key" -out "$d/ca.pem" 2>/dev/null
    openssl req "${ec[@]}" -subj "/CN=127.0.0.1" -keyout "$d/server.key" -out "$d/server.csr" 2>/dev/null
    printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n' >"$d/server.ext"
    openssl x509 -req -in "$d/server.csr" -CA "$d/ca.pem" -CAkey "$d/ca.key" -CAcreateserial \
      -days 30 -extfile "$d/server.ext" -out "$d/server.pem" 2>/dev/null
    openssl req -x509 "${ec[@]}" -days 30 -subj "/CN=transfer test CA" \
      -keyout "$d/untrusted-ca.key" -out "$d/untrusted-ca.pem" 2>/dev/null
  )
  rm -f "$d/server.csr" "$d/server.ext" "$d/ca.srl"
  cp "$d/untrusted-ca.pem" "$dir/untrusted-ca.pem"
  cp "$d/ca.pem" "$dir/ca.pem"  # last: its presence says the set is complete
  chmod 0644 "$dir/ca.pem" "$dir/untrusted-ca.pem"
}

start() {
  [ -x "$VSFTPD" ] || { echo "vsftpd.sh: $VSFTPD is missing (apt-get install vsftpd)" >&2; exit 1; }
  [ -e /lib/x86_64-linux-gnu/security/pam_pwdfile.so ] || [ -n "$(find /lib /usr/lib -name pam_pwdfile.so -print -quit 2>/dev/null)" ] ||
    { echo "vsftpd.sh: pam_pwdfile.so is missing (apt-get install libpam-pwdfile)" >&2; exit 1; }
  getent passwd ftp >/dev/null || { echo "vsftpd.sh: no user 'ftp' (the vsftpd package makes it)" >&2; exit 1; }
  if running_pid >/dev/null; then echo "vsftpd.sh: already running in $dir" >&2; exit 1; fi
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  # Traversable by the ftp user (it reaches root/ through DIR); nothing in DIR is readable by it
  # but root/.
  chmod 0711 "$dir"
  [ -f "$dir/ca.pem" ] || make_certs
  if [ ! -f "$dir/password" ]; then
    echo transfer >"$dir/user"
    (umask 077 && openssl rand -hex 16 >"$dir/password")
    (umask 077 && printf 'transfer:%s\n' "$(openssl passwd -6 -stdin <"$dir/password")" >"$dir/ftp-passwd")
    # The chroot (root-owned, not writable: vsftpd refuses a writable one) and the upload
    # directory the ftp user writes in; an empty directory vsftpd needs for its own jail.
    mkdir -p "$dir/root/upload" "$dir/empty"
    chmod 0755 "$dir/root" "$dir/empty"
    chown ftp "$dir/root/upload"
  fi
  [ -f "$dir/port" ] || free_port >"$dir/port"
  local port service
  port=$(cat "$dir/port")
  service=$(pam_service)
  cat >"/etc/pam.d/$service" <<PAM
# vsftpd.sh's test server in $dir (removed by vsftpd.sh stop)
auth required pam_pwdfile.so pwdfile=$dir/ftp-passwd nodelay
account required pam_permit.so
session required pam_permit.so
password required pam_deny.so
PAM
  cat >"$dir/vsftpd.conf" <<CONF
listen=YES
listen_ipv6=NO
listen_address=127.0.0.1
listen_port=$port
background=NO
anonymous_enable=NO
local_enable=YES
guest_enable=YES
guest_username=ftp
virtual_use_local_privs=YES
write_enable=YES
local_umask=022
local_root=$dir/root
chroot_local_user=YES
secure_chroot_dir=$dir/empty
pam_service_name=$service
connect_from_port_20=NO
pasv_enable=YES
delay_failed_login=0
delay_successful_login=0
idle_session_timeout=600
data_connection_timeout=120
seccomp_sandbox=NO
isolate=NO
isolate_network=NO
xferlog_enable=YES
vsftpd_log_file=$dir/vsftpd.log
log_ftp_protocol=YES
ssl_enable=$tls
allow_anon_ssl=NO
force_local_logins_ssl=YES
force_local_data_ssl=YES
ssl_sslv2=NO
ssl_sslv3=NO
ssl_tlsv1=YES
ssl_ciphers=HIGH
require_ssl_reuse=YES
rsa_cert_file=$dir/tls/server.pem
rsa_private_key_file=$dir/tls/server.key
CONF
  setsid "$VSFTPD" "$dir/vsftpd.conf" </dev/null >>"$dir/vsftpd.out" 2>&1 &
  local pid=$!
  echo "$pid" >"$dir/pid"
  for _ in $(seq 1 200); do  # 10 s
    if ! alive "$pid"; then
      echo "vsftpd.sh: vsftpd exited at start:" >&2; tail -20 "$dir/vsftpd.out" >&2; rm -f "$dir/pid"; exit 1
    fi
    if greeting_seen "$port"; then
      echo "port=$port pid=$pid user=$(cat "$dir/user") remote_dir=/upload"
      return 0
    fi
    sleep 0.05
  done
  echo "vsftpd.sh: no 220 greeting on 127.0.0.1:$port within 10 s" >&2
  signal_all KILL
  exit 1
}

case "$cmd" in
  start) start ;;
  stop) if [ -d "$dir" ]; then signal_all TERM; rm -f "/etc/pam.d/$(pam_service)"; fi ;;
  kill) [ -d "$dir" ] && signal_all KILL ;;
  *) usage ;;
esac
