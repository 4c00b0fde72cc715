#!/usr/bin/env bash
# N files already delivered in the input directory: how long a sender pass that finds nothing
# new takes (`sender --once`: start, check and read the state, list and stat everything), its
# peak RSS, and in the daemon (SCAN_INTERVAL=1, inotify off) each periodic rescan's own time
# (its debug log line) and the RSS after 2 s and after 12 s, to show it stays flat.
#   bench/rescan.sh [N=100000] [RUNS=3]      one JSON line per run
# The delivered state is made once (our pair, FSYNC=off) and kept in $BENCH_WORK/rescan-N.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bin=$(cd "$here/.." && pwd)/build/bin
N=${1:-100000}; RUNS=${2:-3}
work=${BENCH_WORK:-/tmp/bench-work}/rescan-$N
if [[ ! -f "$work/.done" ]]; then
  rm -rf "$work"; mkdir -p "$work"/{input,output,rstate,sstate}
  dd if=/dev/urandom bs=32 count=1 2>/dev/null | openssl base64 > "$work/key"
  /usr/bin/python3 - "$work/input" "$N" <<'PY'
import json, os, sys
d, n = sys.argv[1], int(sys.argv[2])
for i in range(n):
    with open(os.path.join(d, "f%06d.json" % i), "w") as fh:
        json.dump({"i": i, "name": "file %d" % i}, fh)
PY
  "$bin/receiver" --server-port 0 --ready-file "$work/ready" --output-dir "$work/output" \
    --status-db-path "$work/rstate" --decryption-key "$work/key" --fsync off --log-level warning &
  rpid=$!
  for _ in $(seq 300); do [[ -s "$work/ready" ]] && break; sleep 0.1; done
  "$bin/sender" --once --input-dir "$work/input" --status-db-path "$work/sstate" --encryption-key "$work/key" \
    --receiver-port "$(cat "$work/ready")" --min-file-age 0 --log-level warning
  kill "$rpid"; wait "$rpid" || true
  [[ $(find "$work/output" -name '*.xml' | wc -l) -eq $N ]] || { echo "rescan.sh: not all $N delivered" >&2; exit 1; }
  touch "$work/.done"
fi
for r in $(seq 1 "$RUNS"); do
  /usr/bin/time -f "%e %M" -o "$work/time" "$bin/sender" --once --input-dir "$work/input" \
    --status-db-path "$work/sstate" --encryption-key "$work/key" --receiver-port 1 --min-file-age 0 \
    --log-level warning 2>"$work/once.log"
  read -r secs rss_kb < "$work/time"
  "$bin/sender" --input-dir "$work/input" --status-db-path "$work/sstate" --encryption-key "$work/key" \
    --receiver-port 1 --scan-interval 1 --inotify off --log-level debug 2>"$work/daemon.log" &
  spid=$!
  sleep 2; rss_first=$(awk '/^VmRSS:/{print $2}' /proc/$spid/status)
  sleep 10; rss_after=$(awk '/^VmRSS:/{print $2}' /proc/$spid/status)
  kill "$spid"; wait "$spid" || true
  # The daemon's own timing of each periodic rescan (the first, at start, included).
  rescan_ms=$(grep -o 'rescan listed=[0-9]* candidates=0 settled=[0-9]* ms=[0-9.]*' "$work/daemon.log" |
              sed 's/.*ms=//' | paste -sd, -)
  echo "{\"case\":\"rescan\",\"files\":$N,\"run\":$r,\"once_seconds\":$secs,\"once_maxrss_kb\":$rss_kb,\"daemon_rss_kb_after_2s\":$rss_first,\"daemon_rss_kb_after_12s\":$rss_after,\"daemon_rescan_ms\":[${rescan_ms}]}"
done
