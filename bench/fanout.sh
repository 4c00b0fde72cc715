#!/usr/bin/env bash
# Fan-out (issue 14): what a dead destination costs the healthy ones, and what each destination
# costs the sender's CPU. Real binaries on loopback; every figure is a ratio of configurations
# measured alternately within one run of this script (the order rotates each run), because this
# machine's disk speed swings from run to run.
#   isolation  SMALL_N=1000 files of SMALL_SIZE=2K (the harness's gen_json.py) are renamed into
#              the input directory of a running sender daemon (MIN_FILE_AGE=0, SCAN_INTERVAL=1);
#              the time from the first rename until the last file is in both healthy receivers'
#              output directories (fanout.py drop polls them every 20 ms). Each run starts fresh
#              receivers and a fresh sender state; every destination has upload_concurrency=CONC.
#                healthy    destinations a and b only
#                blackhole  a, b and c; c accepts, reads everything and never answers (fanout.py hold)
#                refused    a, b and c; c's port refuses connections (fanout.py refuse)
#              ratio = median(variant) / median(healthy), target <= ISOLATION_TARGET (1.3) for both.
#              The sender's CPU at the end (/proc/<pid>/stat) is kept in the rows too.
#   cpu        the sender's CPU (utime+stime, getrusage through /usr/bin/time) of `sender --once`
#              over files already in place, divided by the files, with three healthy destinations
#              against one (a destinations file of one entry, so both take the same path):
#              BIG_N=50 x BIG_SIZE=1M (target <= CPU_TARGET, 1.6) and SMALL_N x SMALL_SIZE
#              (reported, no target). The receivers run on the same machine; their CPU is not
#              counted.
#   bench/fanout.sh [RUNS=3]     rows: bench/results/<stamp>-fanout/fanout.jsonl; prints one
#                                FANOUT line per figure; exits 1 when a target is missed
# Env: BIN_DIR (build/bin; sender and receiver are copied into the work directory first, so a
#      rebuild elsewhere cannot swap them mid-run), CASES ("isolation cpu"), SMALL_N, SMALL_SIZE,
#      BIG_N, BIG_SIZE, CONC (2 = the cores here), FSYNC (the receivers': off, to keep the disk's
#      swings out of the ratios), SENDER_LOG_LEVEL (info, the default), DEADLINE (300: seconds any
#      one wait may take), ISOLATION_TARGET, CPU_TARGET, PEER_BENCH, RESULTS_DIR, BENCH_WORK
#      (/tmp/bench-work-fanout), KEEP (0: remove the work directory at the end).
# Every wait has a deadline; only the processes started here are stopped, by PID.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
PEER_BENCH=${PEER_BENCH:-$repo/../shared/peers/python-original/bench}
source "$PEER_BENCH/lib.sh"  # PY, make_key, stop_pid
RUNS=${1:-3}
CASES=${CASES:-isolation cpu}
SMALL_N=${SMALL_N:-1000}; SMALL_SIZE=${SMALL_SIZE:-2K}; BIG_N=${BIG_N:-50}; BIG_SIZE=${BIG_SIZE:-1M}
CONC=${CONC:-2}; FSYNC=${FSYNC:-off}; SENDER_LOG_LEVEL=${SENDER_LOG_LEVEL:-info}
DEADLINE=${DEADLINE:-300}; ISOLATION_TARGET=${ISOLATION_TARGET:-1.3}; CPU_TARGET=${CPU_TARGET:-1.6}
BIN_DIR=${BIN_DIR:-$repo/build/bin}
stamp=$(date -u +%Y%m%dT%H%M%SZ)
RESULTS_DIR=${RESULTS_DIR:-$here/results/$stamp-fanout}
WORK=${BENCH_WORK:-/tmp/bench-work-fanout}/$stamp
HELPER="$PY $here/fanout.py"
TCK=$(getconf CLK_TCK)
log() { echo "== $*" >&2; }
die() { log "$*"; exit 1; }

PIDS=()  # everything started here that may still run
cleanup() {
  local p
  for p in "${PIDS[@]}"; do stop_pid "$p"; done
  [[ "${KEEP:-0}" == 1 ]] || rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
stop() {  # stop PID: TERM (KILL after 10 s), and forget it
  local p=$1 i
  stop_pid "$p"
  for i in "${!PIDS[@]}"; do [[ "${PIDS[$i]}" != "$p" ]] || unset "PIDS[$i]"; done
}

mkdir -p "$RESULTS_DIR" "$WORK/bin" "$WORK/keys"
for b in sender receiver; do
  [[ -x "$BIN_DIR/$b" ]] || die "no $BIN_DIR/$b (build it: scripts/build.sh)"
  cp "$BIN_DIR/$b" "$WORK/bin/$b"
done
"$WORK/bin/sender" --help | grep -q -- --destinations-file ||
  die "$BIN_DIR/sender has no --destinations-file: fan-out is not in this build"
for k in a b c; do make_key "$WORK/keys/$k"; done
RES="$RESULTS_DIR/fanout.jsonl"
commit=$(git -C "$repo" rev-parse --short HEAD)

corpus() {  # corpus N SIZE -> the directory (made once)
  local dir="$WORK/corpus/$1-$2"
  if [[ ! -f "$dir/.done" ]]; then
    log "generating $1 x $2 JSON files"
    $PY "$PEER_BENCH/gen_json.py" "$dir" "$1" "$2" && touch "$dir/.done"
  fi
  echo "$dir"
}

wait_for() {  # wait_for WHAT PID TEST...: until TEST succeeds, PID dies or 30 s pass
  local what=$1 pid=$2 i; shift 2
  for i in $(seq 1 300); do
    "$@" && return 0
    kill -0 "$pid" 2>/dev/null || die "$what exited before it was ready"
    sleep 0.1
  done
  die "$what not ready within 30 s"
}
has_port() { [[ -s "$1" && "$(cat "$1")" =~ ^[0-9]+$ ]]; }

# start_receiver DIR KEY -> RPID, RPORT (a fresh receiver: its own output and ledger)
start_receiver() {
  local dir=$1 key=$2
  mkdir -p "$dir"/{output,state}
  env -i PATH="$PATH" "$WORK/bin/receiver" --server-ip 127.0.0.1 --server-port 0 \
    --ready-file "$dir/ready" --output-dir "$dir/output" --status-db-path "$dir/state" \
    --decryption-key "$key" --fsync "$FSYNC" --log-level warning >"$dir/receiver.log" 2>&1 &
  RPID=$!; PIDS+=("$RPID")
  wait_for "receiver $dir" "$RPID" has_port "$dir/ready"
  RPORT=$(cat "$dir/ready")
}

# start_dead KIND(hold|refuse) DIR -> DPID, DPORT
start_dead() {
  local kind=$1 dir=$2
  mkdir -p "$dir"
  $HELPER "$kind" --ready-file "$dir/ready" --stats-file "$dir/stats.json" \
    --max-seconds $((DEADLINE + 120)) >"$dir/helper.log" 2>&1 &
  DPID=$!; PIDS+=("$DPID")
  wait_for "$kind helper" "$DPID" has_port "$dir/ready"
  DPORT=$(cat "$dir/ready")
}

# destinations FILE NAME:PORT... (each destination's key is $WORK/keys/NAME)
destinations() {
  local file=$1 spec; shift
  for spec in "$@"; do
    jq -nc --arg n "${spec%%:*}" --arg url "http://127.0.0.1:${spec#*:}/upload" \
      --arg key "$WORK/keys/${spec%%:*}" --argjson c "$CONC" \
      '{name:$n, url:$url, key_file:$key, upload_concurrency:$c}'
  done | jq -s '{destinations: .}' >"$file"
}

sender_args() {  # sender_args DIR: the options every sender here runs with
  echo --input-dir "$1/input" --status-db-path "$1/sstate" --destinations-file "$1/destinations.json" \
    --min-file-age 0 --scan-interval 1 --drain-timeout 1 --log-level "$SENDER_LOG_LEVEL"
}

{ echo "date: $(date -u +%FT%TZ)"; echo "kernel: $(uname -r)"; nproc | sed 's/^/cpus: /'
  grep -m1 'model name' /proc/cpuinfo; free -g | awk '/Mem:/{print "memory_gib: "$2}'
  df -T "$WORK" | awk 'NR==2{print "filesystem: "$2" "$1}'
  echo "commit: $commit (binaries from $BIN_DIR, sender built $(stat -c %y "$BIN_DIR/sender"))"
  echo "runs: $RUNS cases: $CASES small: $SMALL_N x $SMALL_SIZE big: $BIG_N x $BIG_SIZE"
  echo "upload_concurrency per destination: $CONC receivers' FSYNC: $FSYNC sender log level: $SENDER_LOG_LEVEL"
  echo "uptime at start: $(uptime)"; } | tee "$RESULTS_DIR/machine.txt" >&2

# --- isolation: one run of one variant ------------------------------------------------------------
n=0
isolation() {  # isolation RUN VARIANT(healthy|blackhole|refused)
  local r=$1 v=$2 d p pids=() specs=() src spid out ticks dead_stats='{}' c_lines
  n=$((n + 1)); d="$WORK/$n-isolation-$v"; mkdir -p "$d"/{input,staging,sstate}
  for k in a b; do start_receiver "$d/$k" "$WORK/keys/$k"; pids+=("$RPID"); specs+=("$k:$RPORT"); done
  case "$v" in
    healthy) ;;
    blackhole) start_dead hold "$d/c"; pids+=("$DPID"); specs+=("c:$DPORT") ;;
    refused) start_dead refuse "$d/c"; pids+=("$DPID"); specs+=("c:$DPORT") ;;
    *) die "unknown variant $v" ;;
  esac
  destinations "$d/destinations.json" "${specs[@]}"
  src=$(corpus "$SMALL_N" "$SMALL_SIZE")
  cp "$src"/*.json "$d/staging/"
  sync; sleep 0.5
  # shellcheck disable=SC2046
  env -i PATH="$PATH" "$WORK/bin/sender" $(sender_args "$d") >"$d/sender.log" 2>&1 &
  spid=$!; PIDS+=("$spid")
  wait_for "sender" "$spid" grep -qs 'watching' "$d/sender.log"
  out=$($HELPER drop "$d/staging" "$d/input" "$SMALL_N" "$DEADLINE" "$d/a/output" "$d/b/output") ||
    log "run $r $v: not every file arrived within $DEADLINE s: $out"
  ticks=$(awk '{print $14 + $15}' "/proc/$spid/stat" 2>/dev/null || echo 0)
  stop "$spid"
  for p in "${pids[@]}"; do stop "$p"; done
  [[ -s "$d/c/stats.json" ]] && dead_stats=$(cat "$d/c/stats.json")
  c_lines=$(grep -c 'destination=c' "$d/sender.log" || true)
  jq -nc --argjson r "$r" --arg v "$v" --arg commit "$commit" --argjson files "$SMALL_N" \
    --arg size "$SMALL_SIZE" --argjson conc "$CONC" --arg fsync "$FSYNC" --argjson drop "$out" \
    --argjson cpu "$(awk -v t="$ticks" -v h="$TCK" 'BEGIN{printf "%.2f", t / h}')" \
    --argjson dead "$dead_stats" --argjson cl "$c_lines" --arg load "$(cut -d' ' -f1-3 /proc/loadavg)" \
    '{case:"isolation", variant:$v, run:$r, commit:$commit, files:$files, size:$size,
      upload_concurrency:$conc, receiver_fsync:$fsync} + $drop +
     {sender_cpu_s:$cpu, dead_destination:$dead, sender_log_lines_destination_c:$cl, load:$load}' |
    tee -a "$RES" >&2
}

# --- cpu: one `sender --once` over N files to 1 or 3 destinations ---------------------------------
cpu() {  # cpu RUN N SIZE DESTINATIONS
  local r=$1 files=$2 size=$3 nd=$4 d p pids=() specs=() k src rc=0 wall user sys counts=() ok=true
  n=$((n + 1)); d="$WORK/$n-cpu-$size-$nd"; mkdir -p "$d"/{input,sstate}
  for k in a b c; do
    [[ ${#specs[@]} -lt $nd ]] || break
    start_receiver "$d/$k" "$WORK/keys/$k"; pids+=("$RPID"); specs+=("$k:$RPORT")
  done
  destinations "$d/destinations.json" "${specs[@]}"
  src=$(corpus "$files" "$size")
  cp "$src"/*.json "$d/input/"
  sync; sleep 0.5
  # shellcheck disable=SC2046
  env -i PATH="$PATH" /usr/bin/time -f '%e %U %S' -o "$d/time" timeout "$DEADLINE" \
    "$WORK/bin/sender" --once $(sender_args "$d") >"$d/sender.log" 2>&1 || rc=$?
  for p in "${pids[@]}"; do stop "$p"; done
  read -r wall user sys < <(tail -1 "$d/time")
  for k in a b c; do
    [[ -d "$d/$k" ]] || continue
    counts+=("$(find "$d/$k/output" -maxdepth 1 -name '*.xml' ! -name '.*' | wc -l)")
    [[ "${counts[-1]}" == "$files" ]] || ok=false
  done
  [[ $rc == 0 ]] || { ok=false; log "sender --once exited $rc: $(tail -3 "$d/sender.log")"; }
  jq -nc --argjson r "$r" --arg commit "$commit" --argjson files "$files" --arg size "$size" \
    --argjson nd "$nd" --argjson conc "$CONC" --arg fsync "$FSYNC" --argjson rc "$rc" \
    --argjson wall "$wall" --argjson user "$user" --argjson sys "$sys" --argjson ok "$ok" \
    --argjson counts "[$(IFS=,; echo "${counts[*]}")]" --arg load "$(cut -d' ' -f1-3 /proc/loadavg)" \
    '{case:"cpu", destinations:$nd, size:$size, run:$r, commit:$commit, files:$files,
      upload_concurrency:$conc, receiver_fsync:$fsync, rc:$rc, ok:$ok, counts:$counts,
      wall_s:$wall, user_s:$user, sys_s:$sys, cpu_s:(($user + $sys) * 100 | round / 100),
      load:$load}' | tee -a "$RES" >&2
}

for r in $(seq 1 "$RUNS"); do
  for c in $CASES; do
    case "$c" in
      isolation)
        vs=(healthy blackhole refused)
        for i in 0 1 2; do
          v=${vs[$(( (i + r - 1) % 3 ))]}
          log "run $r: isolation, $v (load $(cut -d' ' -f1-3 /proc/loadavg))"
          isolation "$r" "$v"
        done ;;
      cpu)
        for spec in "$BIG_N:$BIG_SIZE" "$SMALL_N:$SMALL_SIZE"; do
          order=(1 3); (( r % 2 )) || order=(3 1)
          for nd in "${order[@]}"; do
            log "run $r: cpu, ${spec%%:*} x ${spec#*:} to $nd destination(s) (load $(cut -d' ' -f1-3 /proc/loadavg))"
            cpu "$r" "${spec%%:*}" "${spec#*:}" "$nd"
          done
        done ;;
      *) die "unknown case $c (CASES: isolation cpu)" ;;
    esac
  done
done

echo "uptime at end: $(uptime)" | tee -a "$RESULTS_DIR/machine.txt" >&2
rc=0  # the summary's own verdict (pipefail): 1 when a target is missed
$HELPER summary "$RES" "$ISOLATION_TARGET" "$CPU_TARGET" | tee "$RESULTS_DIR/summary.md" || rc=$?
exit "$rc"
