#!/usr/bin/env bash
# Our pair against the Python reference, side by side, same machine, same run, alternating
# (Python, ours with FSYNC=on, ours with FSYNC=off, then again) so the machine's noise hits both.
#   bench/compare.sh [RUNS=3]        writes bench/results/<date>/ and prints the tables (summarize.py)
# Env: BIG=1 adds Python's 100 x 1M (one run, ~5-10 min); SKIP_1G=1 leaves out our 1 x 1 GiB case.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
PEER_BENCH=${PEER_BENCH:-$repo/../shared/peers/python-original/bench}
RUNS=${1:-3}
stamp=$(date -u +%Y%m%dT%H%M%SZ)
export RESULTS_DIR=${RESULTS_DIR:-$here/results/$stamp}
export BENCH_WORK=${BENCH_WORK:-/tmp/bench-work}
# Runs are kept until the end: removing thousands of files slows the next creates on ext4
# (inode allocation skips recently deleted inodes), which would charge one run to the next.
export KEEP=1
mkdir -p "$RESULTS_DIR" "$BENCH_WORK"
log() { echo "== $*" >&2; }
py_conf="$PEER_BENCH/impl-python.conf"
cpp_conf="$here/impl-cpp.conf"
# Each call gets a work directory of its own, sharing the corpus: the harness names a run's
# directory after the implementation and the run number and empties it first, so with one
# BENCH_WORK ours with FSYNC=off removed the 1,000 files FSYNC=on had just written, right before
# it ran (and the next round's FSYNC=on those of FSYNC=off), defeating KEEP.
calls=0
e2e() {
  calls=$((calls + 1))
  local work="$BENCH_WORK/calls/$calls"
  mkdir -p "$work" "$BENCH_WORK/corpus" && ln -sfn "$BENCH_WORK/corpus" "$work/corpus"
  BENCH_WORK="$work" bash "$PEER_BENCH/e2e.sh" "$@" | grep -v '^{' || true
}

log "machine"
{ echo "date: $(date -u +%FT%TZ)"; echo "kernel: $(uname -r)"; nproc | sed 's/^/cpus: /';
  grep -m1 'model name' /proc/cpuinfo; free -g | awk '/Mem:/{print "memory_gib: "$2}';
  df -T "$BENCH_WORK" | awk 'NR==2{print "filesystem: "$2" "$1}';
  echo "commit: $(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo unknown)"; } | tee "$RESULTS_DIR/machine.txt" >&2

log "the disk's durable small-file limit (bench/fsync_limit.c)"
mkdir -p "$BENCH_WORK/fsync-limit"  # a new subdirectory per step, kept until the end
for r in $(seq 1 "$RUNS"); do
  "$repo/build/bin/fsync_limit" "$BENCH_WORK/fsync-limit" 3 | tee -a "$RESULTS_DIR/fsync_limit.jsonl" >&2
  NO_FSYNC=1 "$repo/build/bin/fsync_limit" "$BENCH_WORK/fsync-limit" 3 | tee -a "$RESULTS_DIR/fsync_limit.jsonl" >&2
done

log "end to end, 1000 x 2K, alternating"
for r in $(seq 1 "$RUNS"); do
  CASE_TAG=default e2e "$py_conf" 1000 2K 1
  FSYNC=on CASE_TAG=fsync=on e2e "$cpp_conf" 1000 2K 1
  FSYNC=off CASE_TAG=fsync=off e2e "$cpp_conf" 1000 2K 1
done

log "end to end, large files (ours)"
FSYNC=on CASE_TAG=fsync=on e2e "$cpp_conf" 100 1M "$RUNS"
if [[ "${SKIP_1G:-0}" != 1 ]]; then
  FSYNC=on CASE_TAG=fsync=on POLL_TIMEOUT=900 e2e "$cpp_conf" 1 1024M "$RUNS"
fi
if [[ "${BIG:-0}" == 1 ]]; then
  log "end to end, Python 100 x 1M (one run)"
  CASE_TAG=default e2e "$py_conf" 100 1M 1
fi

log "receiver alone: uploads to new names, and GET / (wrk, 16 connections)"
for r in $(seq 1 "$RUNS"); do
  WORKERS_LIST="1 4" CASE_TAG=default DURATION=5s bash "$here/upload.sh" "$py_conf" 1 >/dev/null
  FSYNC=on CASE_TAG=fsync=on DURATION=5s bash "$here/upload.sh" "$cpp_conf" 1 >/dev/null
  FSYNC=off CASE_TAG=fsync=off DURATION=5s bash "$here/upload.sh" "$cpp_conf" 1 >/dev/null
done

log "100,000 files already delivered: a rescan that finds nothing new"
bash "$here/rescan.sh" 100000 "$RUNS" | tee -a "$RESULTS_DIR/rescan.jsonl" >&2

if [[ -x "$repo/build/bin/micro_bench" ]]; then
  log "micro-benchmarks"
  # JSON -> XML also on a 4 MiB document from the harness's own generator (its real mix).
  mkdir -p "$BENCH_WORK/micro" && rm -f "$BENCH_WORK/micro"/*.json
  /usr/bin/python3 "$PEER_BENCH/gen_json.py" "$BENCH_WORK/micro" 1 4M --prefix micro >/dev/null
  BENCH_JSON_FILE=$(ls "$BENCH_WORK/micro"/*.json) \
  "$repo/build/bin/micro_bench" --benchmark_repetitions="$RUNS" --benchmark_report_aggregates_only=true \
    --benchmark_out="$RESULTS_DIR/micro.json" --benchmark_out_format=json >/dev/null
fi

/usr/bin/python3 "$here/summarize.py" "$RESULTS_DIR" | tee "$RESULTS_DIR/summary.md"
rm -rf "$BENCH_WORK/run" "$BENCH_WORK/calls" "$BENCH_WORK/fsync-limit"  # last: removing files slows the next creates
