#!/usr/bin/env bash
# Receiver alone, through the shared harness's helpers, for any config (ours or the Python one):
#   - uploads of a 2 KB plaintext (one Fernet token in a multipart body, as the harness makes it)
#     each to a NEW name (wrk + upload_new_name.lua), so every request writes a file;
#   - GET / (wrk), the same way the harness measures it.
#   bench/upload.sh CONFIG [RUNS]     e.g. bench/upload.sh bench/impl-cpp.conf 3
# Env: WORKERS_LIST (1), CONN (16), THREADS_WRK (2), DURATION (10s), PAYLOAD (2048), FSYNC,
#      RESULTS_DIR (bench/results), CASE_TAG. Rows go to $RESULTS_DIR/upload-new.jsonl.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
PEER_BENCH=${PEER_BENCH:-$here/../../shared/peers/python-original/bench}
source "$PEER_BENCH/lib.sh"
CONF=${1:?config}; RUNS=${2:-3}
load_config "$CONF"
WORKERS_LIST=${WORKERS_LIST:-1}; CONN=${CONN:-16}; THREADS_WRK=${THREADS_WRK:-2}
DURATION=${DURATION:-10s}; PAYLOAD=${PAYLOAD:-2048}; CASE_TAG=${CASE_TAG:-}
RESULTS_DIR=${RESULTS_DIR:-$here/results}; mkdir -p "$RESULTS_DIR"
RES="$RESULTS_DIR/upload-new.jsonl"
BENCH_WORK=${BENCH_WORK:-/tmp/bench-work}
# A new directory per call, left in place (see the note below); compare.sh removes them all at the end.
RUN="$BENCH_WORK/run/$IMPL_NAME/upload-new-$(date +%s%N)"; mkdir -p "$RUN"/{output,state,input}
export OUTPUT_DIR="$RUN/output" INPUT_DIR="$RUN/input" STATE_DIR="$RUN/state" KEY_FILE="$RUN/key"
make_key "$KEY_FILE"
BOUNDARY=$($PY "$PEER_BENCH/make_upload_body.py" "$KEY_FILE" "$PAYLOAD" "$RUN/body")
export BODY_FILE="$RUN/body" CONTENT_TYPE="multipart/form-data; boundary=$BOUNDARY"
for W in $WORKERS_LIST; do
  export WORKERS=$W PORT=$(free_port)
  start_receiver "$RUN/receiver-w$W.log"
  RUN_ID=warm wrk -t1 -c2 -d1s -s "$here/upload_new_name.lua" "http://127.0.0.1:$PORT" >/dev/null 2>&1
  for r in $(seq 1 "$RUNS"); do
    # Files are not removed between runs: on ext4, creating files where thousands were removed in
    # the last minutes is several times slower (inode allocation skips recently deleted inodes),
    # which would make each run pay for the one before. New names per run instead.
    cpu0=$(tree_cpu_ticks "$RECV_PID")
    RUN_ID="r$r-w$W" wrk -t"$THREADS_WRK" -c"$CONN" -d"$DURATION" --latency -s "$here/upload_new_name.lua" \
      "http://127.0.0.1:$PORT" >"$RUN/up-w$W-$r.txt" 2>&1
    cpu1=$(tree_cpu_ticks "$RECV_PID")
    written=$(find "$OUTPUT_DIR" -maxdepth 1 -type f -name "r$r-w$W-*.xml" | wc -l)
    wrk -t"$THREADS_WRK" -c"$CONN" -d"$DURATION" --latency "http://127.0.0.1:$PORT/" >"$RUN/get-w$W-$r.txt" 2>&1
    read -r r_sum r_max r_n < <(tree_hwm "$RECV_PID")
    $PY - "$RUN/up-w$W-$r.txt" "$RUN/get-w$W-$r.txt" <<PYEOF | tee -a "$RES"
import json, re, sys
up, get = open(sys.argv[1]).read(), open(sys.argv[2]).read()
def num(pat, s, conv=float):
    m = re.search(pat, s, re.M); return conv(m.group(1)) if m else None
def pct(p, s):
    m = re.search(r"^\s+%s%%\s+([\d.]+)(us|ms|s|m)\s*$" % p, s, re.M)
    return round(float(m.group(1)) * {"us": 0.001, "ms": 1, "s": 1000, "m": 60000}[m.group(2)], 3) if m else None
print(json.dumps(dict(impl="$IMPL_NAME", tag="$CASE_TAG", case="upload-new-name", workers=$W, run=$r,
    conn=$CONN, duration="$DURATION", upload_rps=num(r"Requests/sec:\s+([\d.]+)", up),
    upload_p50_ms=pct(50, up), upload_p99_ms=pct(99, up),
    upload_non2xx=num(r"Non-2xx or 3xx responses: (\d+)", up, int) or 0,
    upload_socket_errors=num(r"(Socket errors:.*)$", up, str), files_written=$written,
    upload_recv_cpu_s=round(($cpu1 - $cpu0) / $(getconf CLK_TCK), 2),
    health_rps=num(r"Requests/sec:\s+([\d.]+)", get), health_p50_ms=pct(50, get), health_p99_ms=pct(99, get),
    recv_hwm_sum_kb=$r_sum, recv_procs=$r_n)))
PYEOF
  done
  stop_pid "$RECV_PID"
done
[[ "${KEEP:-1}" == 1 ]] || rm -rf "$RUN"
