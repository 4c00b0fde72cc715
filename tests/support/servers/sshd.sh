#!/usr/bin/env bash
# A real OpenSSH server for the SFTP tests: Debian's sshd on a free port of 127.0.0.1, in the
# foreground (sshd -D), with everything it uses in DIR. Run as root.
#
#   sshd.sh start DIR [SFTP_SERVER_OPTION...]
#                       starts it (again, after stop/kill: same port and host key) and returns
#                       once it sends its SSH banner; prints "port=N pid=P remote_dir=D". Options
#                       go to sftp-server, e.g. -P fsync (a server that refuses fsync)
#   sshd.sh stop DIR    SIGTERM to the server and to its session processes, by PID; waits
#   sshd.sh kill DIR    SIGKILL to the same processes: a crash in the middle of a transfer
#
# DIR (made if missing; its path must hold no whitespace) receives:
#   ssh_host_ed25519_key(.pub)  the server's host key (made once, kept across restarts)
#   client_key(.pub)            the key that may log in (as root); wrong_client_key(.pub) may not
#   known_hosts                 "[127.0.0.1]:PORT <host key>": what a client must be given
#   known_hosts_changed         the same host with another key (a changed host key)
#   known_hosts_unknown         another host only (an unknown host key)
#   host_key_sha256             the host key's fingerprint as ssh-keygen -l prints it (SHA256:...)
#   upload/                     an empty directory to deliver into (remote_dir: its absolute path)
#   port, pid, sshd_config, sshd.log, sftp-server.sh
#   sftp-server.log             the SFTP server's log of every request (DEBUG3: "fsync", "rename")
#
# Login: root, public key only (PermitRootLogin prohibit-password, AuthorizedKeysFile in DIR,
# AllowUsers root), and only SFTP (ForceCommand: Debian's sftp-server, the program internal-sftp
# is built from, run through a wrapper so that its log of requests lands in sftp-server.log:
# internal-sftp can only log to syslog or to the client's stderr channel); no TTY, no forwarding.
# No chroot: sshd refuses one under a world-writable /tmp, so remote paths are the machine's own.
set -euo pipefail
SSHD=${TRANSFER_SSHD:-/usr/sbin/sshd}
usage() { echo "usage: sshd.sh start|stop|kill DIR" >&2; exit 2; }
[ $# -ge 2 ] || usage
cmd=$1
dir=$2
shift 2
[ "$cmd" = start ] || [ $# -eq 0 ] || usage

# The listener and every process below it (sessions run in children that call setsid()), by PID.
tree_pids() {
  local pid=$1 child
  echo "$pid"
  for child in $(pgrep -P "$pid" 2>/dev/null || true); do tree_pids "$child"; done
}

running_pid() {
  [ -f "$dir/pid" ] || return 1
  local pid
  pid=$(cat "$dir/pid")
  # The PID must still be our sshd (not a recycled number).
  [ -r "/proc/$pid/cmdline" ] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "-f $dir/sshd_config" &&
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

banner_seen() {  # true once something on the port answers "SSH-"
  /usr/bin/python3 - "$1" <<'PY'
import socket, sys
try:
    with socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=1) as s:
        sys.exit(0 if s.recv(4).startswith(b"SSH-") else 1)
except OSError:
    sys.exit(1)
PY
}

start() {
  [ -x "$SSHD" ] || { echo "sshd.sh: $SSHD is missing (apt-get install openssh-server)" >&2; exit 1; }
  if running_pid >/dev/null; then echo "sshd.sh: already running in $dir" >&2; exit 1; fi
  mkdir -p "$dir" /run/sshd
  dir=$(cd "$dir" && pwd)
  chmod 0700 "$dir"
  if [ ! -f "$dir/ssh_host_ed25519_key" ]; then
    ssh-keygen -q -t ed25519 -N '' -C transfer-test-host -f "$dir/ssh_host_ed25519_key"
    ssh-keygen -q -t ed25519 -N '' -C transfer-test-other-host -f "$dir/other_host_ed25519_key"
    ssh-keygen -q -t ed25519 -N '' -C transfer-test-client -f "$dir/client_key"
    ssh-keygen -q -t ed25519 -N '' -C transfer-test-wrong-client -f "$dir/wrong_client_key"
    cp "$dir/client_key.pub" "$dir/authorized_keys"
    ssh-keygen -l -E sha256 -f "$dir/ssh_host_ed25519_key.pub" | awk '{print $2}' >"$dir/host_key_sha256"
    mkdir -p "$dir/upload"
  fi
  [ -f "$dir/port" ] || free_port >"$dir/port"
  local port
  port=$(cat "$dir/port")
  local key other
  key=$(cut -d' ' -f1,2 "$dir/ssh_host_ed25519_key.pub")
  other=$(cut -d' ' -f1,2 "$dir/other_host_ed25519_key.pub")
  echo "[127.0.0.1]:$port $key" >"$dir/known_hosts"
  echo "[127.0.0.1]:$port $other" >"$dir/known_hosts_changed"
  echo "unknown.invalid $key" >"$dir/known_hosts_unknown"
  cat >"$dir/sshd_config" <<CONF
Port $port
ListenAddress 127.0.0.1
HostKey $dir/ssh_host_ed25519_key
PidFile none
AuthorizedKeysFile $dir/authorized_keys
AllowUsers root
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
LoginGraceTime 30
MaxStartups 50
PermitTTY no
AllowTcpForwarding no
AllowAgentForwarding no
AllowStreamLocalForwarding no
X11Forwarding no
PermitTunnel no
PermitUserRC no
LogLevel VERBOSE
Subsystem sftp $dir/sftp-server.sh
ForceCommand $dir/sftp-server.sh
CONF
  {
    echo '#!/bin/sh'
    printf 'exec /usr/lib/openssh/sftp-server -e -l DEBUG3'
    [ $# -eq 0 ] || printf ' %q' "$@"
    printf ' 2>>%q\n' "$dir/sftp-server.log"
  } >"$dir/sftp-server.sh"
  chmod 0755 "$dir/sftp-server.sh"
  "$SSHD" -t -f "$dir/sshd_config"
  # setsid: the server outlives this script and is not in the caller's process group.
  setsid "$SSHD" -D -e -f "$dir/sshd_config" </dev/null >>"$dir/sshd.log" 2>&1 &
  local pid=$!
  echo "$pid" >"$dir/pid"
  for _ in $(seq 1 200); do  # 10 s
    if ! alive "$pid"; then
      echo "sshd.sh: sshd exited at start:" >&2; tail -20 "$dir/sshd.log" >&2; rm -f "$dir/pid"; exit 1
    fi
    if banner_seen "$port"; then
      echo "port=$port pid=$pid remote_dir=$dir/upload"
      return 0
    fi
    sleep 0.05
  done
  echo "sshd.sh: no SSH banner on 127.0.0.1:$port within 10 s" >&2
  signal_all KILL
  exit 1
}

case "$cmd" in
  start) start "$@" ;;
  stop) [ -d "$dir" ] && signal_all TERM ;;
  kill) [ -d "$dir" ] && signal_all KILL ;;
  *) usage ;;
esac
