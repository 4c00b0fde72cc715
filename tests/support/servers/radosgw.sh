#!/usr/bin/env bash
# A real S3 server for tests: Debian's radosgw over a one-node Ceph (one monitor, one OSD whose
# object store is in memory), all on 127.0.0.1, all in DIR.
#
#   radosgw.sh start DIR      # mon + osd + radosgw, an S3 user, a bucket; prints the endpoint
#   radosgw.sh stop DIR       # ends every daemon it started (by PID), waits for each
#   radosgw.sh stop-rgw DIR   # ends radosgw only (SIGKILL): the objects stay in the OSD
#   radosgw.sh start-rgw DIR  # starts radosgw again on the same port
#
# What start leaves in DIR for a test (one value a file, no newline games: each ends in "\n"):
#   port, endpoint (http://127.0.0.1:PORT), region, bucket (an empty bucket made for tests),
#   access_key, secret_key (mode 0600), mon.pid, osd.pid, rgw.pid, log/*.log and log/*.out
#   (the daemons' logs and their stdout/stderr), ceph.conf, start_seconds.
# Exit status 0 when the endpoint answers; otherwise 1 with the failing step and the tail of the
# daemon's log on stderr, and whatever was started already stopped again.
#
# Packages (scripts/install-deps.sh, without recommends): radosgw ceph-mon ceph-osd (ceph-common
# comes with them: the ceph CLI, monmaptool, radosgw-admin). Needs python3 (a free port) and curl.
#
# Why these settings (Ceph 16.2 "pacific" as Debian 12 ships it):
#   - auth none everywhere: the daemons and the admin tools trust each other on loopback; S3
#     requests are still checked by radosgw (SigV4 with the user's keys made here);
#   - msgr v1 only, the monitor's address written [v1:127.0.0.1:PORT]: with msgr2 bound, a
#     monitor on any port but 6789 is not found by the clients and they hang;
#   - osd objectstore = memstore: no block device, nothing written but the OSD's few
#     descriptor files; the objects live in the OSD's memory (gone when it stops);
#   - pools of size 1 and 8 PGs each without the autoscaler: radosgw makes 7 pools at its first
#     start, and the default 32 PGs each would pass mon_max_pg_per_osd for one OSD;
#   - the OSD is put in the CRUSH map here, not by itself at start (osd crush update on start =
#     false): at its start it sometimes sent that command before it knew the cluster's fsid, the
#     monitor refused it ("wrong fsid") and the OSD exited (1 start in ~5);
#   - paxos propose interval 0.05 s (default 1 s): each pool radosgw makes waits for a monitor
#     proposal; the whole start takes ~2.5 s instead of ~16 s.
# About 130 MB of memory for the three daemons (mon 36, osd 49, radosgw 46 MB RSS) plus what is
# stored (memstore holds at most 1 GiB, or RADOSGW_MEMSTORE_BYTES).
set -euo pipefail

usage() { echo "usage: $0 start|stop|start-rgw|stop-rgw DIR" >&2; exit 2; }
(($# == 2)) || usage
cmd=$1
dir=$2
START_TIMEOUT=${RADOSGW_START_TIMEOUT:-90}  # seconds for the whole start
MEMSTORE_BYTES=${RADOSGW_MEMSTORE_BYTES:-1073741824}  # the OSD's in-memory store (bench: larger)

die() {
  echo "radosgw.sh: $*" >&2
  exit 1
}

# The tail of a daemon's own log and of its stdout/stderr, for a failure message.
show_logs() {
  local name
  for name in "$@"; do
    # The daemons' own logs are named after the Ceph entity: mon.a.log, osd.0.log, client.rgw.log.
    for f in "$dir/log/$name.out" "$dir/log/$name".*log "$dir/log/client.$name.log"; do
      [[ -s $f ]] || continue
      echo "---- last lines of $f" >&2
      tail -n 25 "$f" >&2
    done
  done
}

# One line per start step in DIR/log/setup.out, with the seconds since start began.
step() {
  local at
  at=$(awk -v a="$began" -v b="$(date +%s.%N)" 'BEGIN { printf "%5.1f", b - a }')
  echo "${at}s $*" >>"$dir/log/setup.out"
}

# A process that runs (a zombie does not: the daemons are not our children once start returned,
# and whoever reaps them may take a while).
pid_alive() {
  local state
  [[ -n $1 ]] && state=$(awk '{ print $3 }' "/proc/$1/stat" 2>/dev/null) && [[ $state != Z ]]
}

# Ends the daemon whose PID is in DIR/NAME.pid: SIG (default TERM), then KILL after 10 s; waits
# until the PID is gone (the daemons are not our children once start returned: poll).
stop_daemon() {
  local name=$1 sig=${2:-TERM} pid
  [[ -f $dir/$name.pid ]] || return 0
  pid=$(<"$dir/$name.pid")
  if pid_alive "$pid" && [[ $(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) == *"$dir"* ]]; then
    kill -s "$sig" "$pid" 2>/dev/null || true
    local deadline=$((SECONDS + 10))
    while pid_alive "$pid" && ((SECONDS < deadline)); do sleep 0.05; done
    if pid_alive "$pid"; then
      kill -s KILL "$pid" 2>/dev/null || true
      deadline=$((SECONDS + 10))
      while pid_alive "$pid" && ((SECONDS < deadline)); do sleep 0.05; done
    fi
    pid_alive "$pid" && echo "radosgw.sh: $name (pid $pid) did not end" >&2
  fi
  rm -f "$dir/$name.pid"
}

stop_all() {
  stop_daemon rgw KILL
  stop_daemon osd KILL
  stop_daemon mon KILL
}

# Polls CHECK (a shell function) until it succeeds, the daemon NAME exits, or the start deadline
# passes; on failure stops everything and says which step failed.
wait_for() {
  local what=$1 name=$2 check=$3 pid delay=0.05
  pid=$(<"$dir/$name.pid")
  until $check; do
    if ! pid_alive "$pid"; then
      show_logs "$name"
      stop_all
      die "$name exited while waiting for $what"
    fi
    if ((SECONDS >= deadline)); then
      show_logs "$name"
      stop_all
      die "timed out after ${START_TIMEOUT}s waiting for $what"
    fi
    sleep "$delay"
    delay=$(awk -v d="$delay" 'BEGIN { d *= 2; if (d > 0.5) d = 0.5; print d }')
  done
}

# Runs a daemon in the foreground of its own background job, its output in DIR/log/NAME.out.
launch() {
  local name=$1
  shift
  "$@" </dev/null >>"$dir/log/$name.out" 2>&1 &
  echo $! >"$dir/$name.pid"
  disown  # no "Killed" notice from this shell when a daemon is stopped
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

ceph_cli() { timeout 20 ceph -c "$dir/ceph.conf" --connect-timeout 10 "$@"; }

# A monitor command that may be refused for a moment after the monitor first answers: once a CI
# run's `osd crush add` got "Error EPERM: problem getting command descriptions from mon" 0.4 s
# after `mon stat` had answered. Tried up to 5 times (0.2, 0.4, 0.8, 1.6 s apart) within the start
# deadline; every refusal goes to log/setup.out, the output of the one that worked to stdout.
mon_command() {
  local attempt out delay=0.2
  for attempt in 1 2 3 4 5; do
    if out=$(ceph_cli "$@" 2>>"$dir/log/setup.out"); then
      printf '%s' "$out"
      return 0
    fi
    echo "  (ceph $* failed, attempt $attempt)" >>"$dir/log/setup.out"
    ((attempt < 5 && SECONDS < deadline)) || break
    sleep "$delay"
    delay=$(awk -v d="$delay" 'BEGIN { print d * 2 }')
  done
  return 1
}

# radosgw answers an anonymous GET / with 200 (an empty bucket list) once it serves.
rgw_answers() {
  local code
  code=$(curl -s -o /dev/null -m 2 -w '%{http_code}' "http://127.0.0.1:$(<"$dir/port")/" || true)
  [[ $code == 200 || $code == 403 ]]
}

start_rgw() {
  launch rgw radosgw -f -c "$dir/ceph.conf" -n client.rgw
  wait_for "radosgw to answer on 127.0.0.1:$(<"$dir/port")" rgw rgw_answers
}

write_conf() {
  local mon_port=$1 rgw_port=$2 fsid=$3
  cat >"$dir/ceph.conf" <<EOF
[global]
fsid = $fsid
mon initial members = a
mon host = [v1:127.0.0.1:$mon_port]
public addr = 127.0.0.1
cluster addr = 127.0.0.1
ms bind msgr2 = false
ms bind ipv6 = false
auth cluster required = none
auth service required = none
auth client required = none
auth supported = none
keyring = $dir/no-keyring
run dir = $dir/run
admin socket = $dir/run/\$name.asok
log file = $dir/log/\$name.log
log to stderr = false
err to stderr = true
mon cluster log file = $dir/log/cluster.log
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
mon allow pool size one = true
mon allow pool delete = true
mon max pg per osd = 1000
mon warn on pool no redundancy = false
mon data avail warn = 1
mon data avail crit = 0
paxos propose interval = 0.05
paxos min wait = 0.01
osd objectstore = memstore
memstore device bytes = $MEMSTORE_BYTES

[mon]
mon data = $dir/mon

[osd]
osd data = $dir/osd
osd max object name len = 256
osd max object namespace len = 64
osd crush update on start = false
osd class update on start = false

[client.rgw]
rgw frontends = beast endpoint=127.0.0.1:$rgw_port
rgw data = $dir/rgw
rgw thread pool size = 32
rgw dns name = 127.0.0.1
EOF
}

start() {
  local tool
  for tool in ceph-mon ceph-osd radosgw radosgw-admin monmaptool ceph curl python3 openssl; do
    command -v "$tool" >/dev/null ||
      die "$tool is missing: install radosgw ceph-mon ceph-osd curl python3 (scripts/install-deps.sh)"
  done
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  local name pid
  for name in mon osd rgw; do
    pid=$(cat "$dir/$name.pid" 2>/dev/null || true)
    if pid_alive "$pid" && [[ $(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) == *"$dir"* ]]; then
      die "$dir: $name (pid $pid) of an earlier start still runs: stop it first"
    fi
  done
  # What an earlier run left (its daemons are gone): only the files this script makes.
  rm -rf "${dir:?}"/{mon,osd,rgw,run,log,monmap,ceph.conf,no-keyring} \
    "$dir"/{port,endpoint,region,bucket,access_key,secret_key,start_seconds,mon.pid,osd.pid,rgw.pid}
  mkdir -p "$dir"/{mon,osd,rgw,run,log}
  deadline=$((SECONDS + START_TIMEOUT))
  began=$(date +%s.%N)
  local mon_port rgw_port fsid osd_uuid osd_id
  mon_port=$(free_port)
  rgw_port=$(free_port)
  while [[ $rgw_port == "$mon_port" ]]; do rgw_port=$(free_port); done
  echo "$rgw_port" >"$dir/port"
  echo "http://127.0.0.1:$rgw_port" >"$dir/endpoint"
  echo "us-east-1" >"$dir/region"
  fsid=$(python3 -c 'import uuid; print(uuid.uuid4())')
  osd_uuid=$(python3 -c 'import uuid; print(uuid.uuid4())')
  write_conf "$mon_port" "$rgw_port" "$fsid"

  step "monitor: mkfs"
  monmaptool --create --fsid "$fsid" --addv a "[v1:127.0.0.1:$mon_port]" "$dir/monmap" \
    >>"$dir/log/setup.out" 2>&1 || { show_logs setup; die "monmaptool failed"; }
  ceph-mon -c "$dir/ceph.conf" --mkfs -i a --monmap "$dir/monmap" >>"$dir/log/mon.out" 2>&1 ||
    { show_logs mon; die "ceph-mon --mkfs failed"; }
  launch mon ceph-mon -f -c "$dir/ceph.conf" -i a
  mon_answers() { ceph_cli mon stat >/dev/null 2>&1; }
  wait_for "the monitor on 127.0.0.1:$mon_port" mon mon_answers

  step "monitor: up"
  # Both may be repeated: `osd create` with the same uuid returns the same id, `crush add` of an
  # item already there at the same place changes nothing.
  osd_id=$(mon_command osd create "$osd_uuid") ||
    { show_logs setup mon; stop_all; die "ceph osd create failed"; }
  mon_command osd crush add "osd.$osd_id" 1.0 host=localhost root=default >>"$dir/log/setup.out" ||
    { show_logs setup mon; stop_all; die "ceph osd crush add failed"; }
  ceph-osd -c "$dir/ceph.conf" -i "$osd_id" --mkfs --osd-uuid "$osd_uuid" \
    >>"$dir/log/osd.out" 2>&1 || { show_logs osd; stop_all; die "ceph-osd --mkfs failed"; }
  step "osd: mkfs done"
  launch osd ceph-osd -f -c "$dir/ceph.conf" -i "$osd_id"
  osd_up() { [[ $(ceph_cli osd stat -f json 2>/dev/null) == *'"num_up_osds":1,'* ]]; }
  wait_for "the OSD to be up" osd osd_up

  step "osd: up"
  # radosgw: makes its pools at the first start.
  start_rgw

  step "radosgw: answers"
  # An S3 user with keys we choose, and a bucket for the tests.
  local access secret
  access=TEST$(openssl rand -hex 8 | tr a-f A-F)
  secret=$(openssl rand -hex 20)
  timeout 60 radosgw-admin -c "$dir/ceph.conf" user create --uid=transfer-test \
    --display-name="transfer tests" --access-key="$access" --secret-key="$secret" \
    >/dev/null 2>>"$dir/log/setup.out" ||
    { show_logs setup; stop_all; die "radosgw-admin user create failed"; }
  (umask 077 && echo "$access" >"$dir/access_key" && echo "$secret" >"$dir/secret_key")
  echo "transfer-test" >"$dir/bucket"
  step "user made"
  # curl 7.88 signs a payload hash only when the request carries one.
  local code empty_sha256=e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
  code=$(curl -s -o "$dir/log/make-bucket.out" -w '%{http_code}' -m 20 -X PUT \
    --aws-sigv4 "aws:amz:us-east-1:s3" --user "$access:$secret" \
    -H "x-amz-content-sha256: $empty_sha256" "http://127.0.0.1:$rgw_port/transfer-test") || true
  [[ $code == 200 ]] ||
    { show_logs make-bucket rgw; stop_all; die "making bucket transfer-test: HTTP $code"; }

  local took
  took=$(awk -v a="$began" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
  echo "$took" >"$dir/start_seconds"
  echo "radosgw ready at http://127.0.0.1:$rgw_port (bucket transfer-test) in ${took}s"
}

case $cmd in
  start) start ;;
  stop) [[ -d $dir ]] || exit 0; dir=$(cd "$dir" && pwd); stop_all ;;
  stop-rgw) dir=$(cd "$dir" && pwd); stop_daemon rgw KILL ;;
  start-rgw)
    dir=$(cd "$dir" && pwd)
    [[ -f $dir/port ]] || die "$dir: no server was started there"
    pid_alive "$(cat "$dir/rgw.pid" 2>/dev/null)" && die "radosgw already runs in $dir"
    deadline=$((SECONDS + START_TIMEOUT))
    start_rgw
    ;;
  *) usage ;;
esac
