#!/usr/bin/env bash
# The sender's CPU per file against its backlog (issue 22): a running sender daemon gets N small
# files at once (made beside the input directory, then renamed into it in one burst), delivers
# them to our receiver (FSYNC=off: the receiver is not what is measured) and keeps them
# (ON_SUCCESS=keep, the default); done when its /metrics counts N delivered.
# Measured from /proc/<sender pid>: user+system CPU from the burst to the last deletion, and the
# peak RSS (VmHWM). One JSON line per (N, run):
#   bench/backlog.sh [N...]            default: 1000 100000; RUNS (3), CPP_BIN_DIR (build/bin)
# The same script measures another build with CPP_BIN_DIR=<its bin dir> (before/after in one run).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bin=${CPP_BIN_DIR:-$(cd "$here/.." && pwd)/build/bin}
RUNS=${RUNS:-3}
sizes=("$@")
((${#sizes[@]})) || sizes=(1000 100000)
work=${BENCH_WORK:-/tmp/bench-work}/backlog
tck=$(getconf CLK_TCK)
deadline_s=${BACKLOG_DEADLINE:-900}  # per run

rpid="" spid=""
cleanup() {
  [[ -n $spid ]] && kill "$spid" 2>/dev/null && wait "$spid" 2>/dev/null
  [[ -n $rpid ]] && kill "$rpid" 2>/dev/null && wait "$rpid" 2>/dev/null
  return 0
}
trap cleanup EXIT

cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
free_port() { /usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
delivered_count() {
  curl -s -m 2 "http://127.0.0.1:$1/metrics" |
    awk '/^transfer_sender_files_delivered_total/ { n += $2 } END { printf "%d", n }'
}
count_entries() { /usr/bin/python3 -c 'import os, sys; print(sum(1 for _ in os.scandir(sys.argv[1])))' "$1"; }

for n in "${sizes[@]}"; do
  for r in $(seq 1 "$RUNS"); do
    rm -rf "$work"; mkdir -p "$work"/{input,staging,output,rstate,sstate}
    dd if=/dev/urandom bs=32 count=1 2>/dev/null | openssl base64 | tr '+/' '-_' >"$work/key"
    chmod 600 "$work/key"
    /usr/bin/python3 - "$work/staging" "$n" <<'PY'
import json, os, sys
d, n = sys.argv[1], int(sys.argv[2])
body = {"text": "x" * 1900}
for i in range(n):
    with open(os.path.join(d, "f%06d.json" % i), "w") as fh:
        body["i"] = i
        json.dump(body, fh)
PY
    "$bin/receiver" --server-port 0 --ready-file "$work/ready" --output-dir "$work/output" \
      --status-db-path "$work/rstate" --decryption-key "$work/key" --fsync off --log-level warning 2>"$work/receiver.log" &
    rpid=$!
    for _ in $(seq 300); do [[ -s "$work/ready" ]] && break; sleep 0.1; done
    [[ -s "$work/ready" ]] || { echo "backlog.sh: the receiver did not start" >&2; exit 1; }
    mport=$(free_port)
    "$bin/sender" --input-dir "$work/input" --status-db-path "$work/sstate" --encryption-key "$work/key" \
      --receiver-port "$(cat "$work/ready")" --min-file-age 0 --metrics-port "$mport" \
      --log-level warning 2>"$work/sender.log" &
    spid=$!
    # Ready once its database is open and the directory watched: the first idle moment after start.
    for _ in $(seq 100); do
      [[ -d /proc/$spid/fd ]] && find "/proc/$spid/fd" -lname 'anon_inode:inotify' 2>/dev/null | grep -q . && break
      sleep 0.05
    done
    # PERF_OUT=<file>: the sender sampled with call stacks during the burst (perf record -g).
    perfpid=""
    if [[ -n ${PERF_OUT:-} ]]; then perf record -q -g -o "$PERF_OUT.$n" -p "$spid" 2>/dev/null & perfpid=$!; fi
    before=$(cpu_ticks "$spid")
    started=$(date +%s.%N)
    /usr/bin/python3 -c 'import os, sys
s, d = sys.argv[1], sys.argv[2]
for name in sorted(os.listdir(s)): os.rename(os.path.join(s, name), os.path.join(d, name))' \
      "$work/staging" "$work/input"
    end=$((SECONDS + deadline_s))
    while (( $(delivered_count "$mport") < n )); do
      ((SECONDS < end)) || { echo "backlog.sh: $n files not delivered within ${deadline_s}s" >&2; tail "$work/sender.log" >&2; exit 1; }
      kill -0 "$spid" 2>/dev/null || { echo "backlog.sh: the sender exited" >&2; tail "$work/sender.log" >&2; exit 1; }
      sleep 0.2
    done
    after=$(cpu_ticks "$spid")
    finished=$(date +%s.%N)
    hwm_kb=$(awk '/^VmHWM:/ { print $2 }' "/proc/$spid/status")
    if [[ -n $perfpid ]]; then kill -INT "$perfpid"; wait "$perfpid" || true; fi
    kill "$spid"; wait "$spid" || true; spid=""
    kill "$rpid"; wait "$rpid" || true; rpid=""
    delivered=$(count_entries "$work/output")
    [[ $delivered -eq $n ]] || { echo "backlog.sh: $delivered of $n in the output" >&2; exit 1; }
    awk -v n="$n" -v r="$r" -v a="$before" -v b="$after" -v t="$tck" -v s="$started" -v f="$finished" \
      -v hwm="$hwm_kb" -v bin="$bin" 'BEGIN {
        cpu = (b - a) / t
        printf "{\"case\":\"backlog\",\"bin\":\"%s\",\"files\":%d,\"run\":%d,\"sender_cpu_s\":%.2f,", bin, n, r, cpu
        printf "\"sender_cpu_ms_per_file\":%.4f,\"seconds\":%.1f,\"files_per_s\":%.0f,\"sender_vmhwm_kb\":%d}\n", \
          1000 * cpu / n, f - s, n / (f - s), hwm }'
  done
done
