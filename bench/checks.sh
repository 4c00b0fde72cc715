#!/usr/bin/env bash
# What the receiver's plaintext checks (issue 15) cost, same machine, same run, the variants
# alternating for every measurement (the order rotates each run) so noise hits all of them:
#   off        XML_CHECK=off: any plaintext is written, as the old pair did;
#   wellformed the default (XML_CHECK=wellformed: libxml2's push parser, no tree);
#   schema     the default plus XML_SCHEMA=<make_xml_upload.py schema>: streaming XSD validation
#              against a schema with simple types (xs:string, xs:integer, xs:decimal, an
#              enumeration) that the generated documents satisfy.
# Measurements, each with a fresh receiver (its own output directory, default options but FSYNC
# and the variant's; upload rates count 2xx answers only):
#   on, off  uploads of a 2 KB sender-shaped XML plaintext (make_xml_upload.py body: what our
#            sender writes for 5 records, 2,221 bytes), each to a new name, signed as our sender
#            signs them (as bench/front.sh: signed uploads may take every upload worker), wrk with
#            CONN=16 connections, 2 threads, DURATION=10s, FSYNC=on / FSYNC=off: uploads/s,
#            p50/p99 and the receiver's CPU ms per upload (/proc/<pid>/stat utime+stime);
#   big      one BIG_BYTES=100 MB sender-shaped XML upload (250,000 records; the token made once,
#            streamed, by make_xml_upload.py token) with curl as multipart field "file"
#            (BIG_FSYNC=on): wall seconds (curl's time_total), the receiver's CPU seconds for the
#            upload (the stabler figure on this noisy disk) and its VmHWM; BIG_RUNS=5 of these;
#   ir       instructions the receiver executes (valgrind callgrind, all threads, user space only;
#            kernel work such as fsync is not counted), once per variant, as they do not depend on
#            the load: per 2 KB upload (IR_UPLOADS=200 uploads one after the other, less a receiver
#            started and stopped with none) and per byte of an IR_BIG_BYTES=5 MB upload, FSYNC=off.
#            Valgrind hides some CPU features, so OpenSSL takes slower paths than natively: compare
#            what each check adds, not the ratio of the totals.
#   bench/checks.sh [RUNS=3]     rows: bench/results/<stamp>-checks/checks.jsonl; prints the medians
# Env: RECEIVER_BIN (build/bin/receiver: the XML checks may not be committed yet; it is copied into
#      the work directory first, so a rebuild elsewhere cannot swap it mid-run), CASES (on off big
#      ir), VARIANTS (off wellformed schema), CONN, THREADS_WRK, DURATION, BIG_BYTES, BIG_RUNS,
#      BIG_FSYNC, IR_UPLOADS, IR_BIG_BYTES, SIGNED_REQUESTS, RESULTS_DIR, BENCH_WORK (/tmp/bench-work-checks), KEEP (0: remove the work
#      directory at the end).
# Loopback only; every loop is bounded; only the receivers started here are stopped, by PID.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
PEER_BENCH=${PEER_BENCH:-$repo/../shared/peers/python-original/bench}
source "$PEER_BENCH/lib.sh"
RUNS=${1:-3}
CONN=${CONN:-16}; THREADS_WRK=${THREADS_WRK:-2}; DURATION=${DURATION:-10s}; PAYLOAD=2048
BIG_BYTES=${BIG_BYTES:-100000000}; BIG_RUNS=${BIG_RUNS:-5}; BIG_FSYNC=${BIG_FSYNC:-on}
SIGNED_REQUESTS=${SIGNED_REQUESTS:-100000}  # signatures made per run: more than it can send
IR_UPLOADS=${IR_UPLOADS:-200}; IR_BIG_BYTES=${IR_BIG_BYTES:-5000000}
CASES=${CASES:-on off big ir}; VARIANTS=${VARIANTS:-off wellformed schema}
RECEIVER_BIN=${RECEIVER_BIN:-$repo/build/bin/receiver}
declare -A CASE_NAME=([on]="upload 2 KB FSYNC=on" [off]="upload 2 KB FSYNC=off"
  [big]="upload $((BIG_BYTES / 1000000)) MB FSYNC=$BIG_FSYNC" [ir]="instructions (callgrind)")
stamp=$(date -u +%Y%m%dT%H%M%SZ)
RESULTS_DIR=${RESULTS_DIR:-$here/results/$stamp-checks}
WORK=${BENCH_WORK:-/tmp/bench-work-checks}/$stamp
mkdir -p "$RESULTS_DIR" "$WORK/bin"
RES="$RESULTS_DIR/checks.jsonl"
log() { echo "== $*" >&2; }
MAKE="$PY $here/make_xml_upload.py"

"$RECEIVER_BIN" --help | grep -q XML_CHECK ||
  { log "$RECEIVER_BIN has no XML_CHECK: cmake --build build -j2 --target receiver"; exit 2; }
cp "$RECEIVER_BIN" "$WORK/bin/receiver"
commit="$(git -C "$repo" rev-parse --short HEAD)+worktree($RECEIVER_BIN)"

load_config "$here/impl-cpp.conf"  # receiver_start: runs "$CPP_BIN_DIR/receiver" with the env below
export CPP_BIN_DIR="$WORK/bin" CPP_LOG_LEVEL=${CPP_LOG_LEVEL:-info}
export KEY_FILE="$WORK/key"; make_key "$KEY_FILE"
SCHEMA="$WORK/bench.xsd"; $MAKE schema "$SCHEMA"
BOUNDARY=$($MAKE body "$KEY_FILE" "$PAYLOAD" "$WORK/body")
export BODY_FILE="$WORK/body" CONTENT_TYPE="multipart/form-data; boundary=$BOUNDARY"
xmllint --noout --schema "$SCHEMA" "$WORK/body.plain" 2>/dev/null ||
  { log "the 2 KB document does not satisfy $SCHEMA"; exit 2; }
if [[ " $CASES " == *" big "* ]]; then
  log "making the $BIG_BYTES-byte token (streamed)"
  BIG_PLAIN=$($MAKE token "$KEY_FILE" "$BIG_BYTES" "$WORK/big.token")
else
  BIG_PLAIN=0
fi
if [[ " $CASES " == *" ir "* ]]; then
  IR_PLAIN=$($MAKE token "$KEY_FILE" "$IR_BIG_BYTES" "$WORK/ir.token")
fi

{ echo "date: $(date -u +%FT%TZ)"; echo "kernel: $(uname -r)"; nproc | sed 's/^/cpus: /'
  grep -m1 'model name' /proc/cpuinfo; free -g | awk '/Mem:/{print "memory_gib: "$2}'
  df -T "$WORK" | awk 'NR==2{print "filesystem: "$2" "$1}'
  echo "receiver: $commit"; echo "libxml2: $(xmllint --version 2>&1 | head -1)"
  echo "runs: $RUNS conn: $CONN wrk_threads: $THREADS_WRK duration: $DURATION"
  echo "small plaintext: $(stat -c %s "$WORK/body.plain") bytes; big plaintext: $BIG_PLAIN bytes, runs: $BIG_RUNS, fsync: $BIG_FSYNC"
  echo "uptime at start: $(uptime)"; } | tee "$RESULTS_DIR/machine.txt" >&2
cp "$SCHEMA" "$RESULTS_DIR/bench.xsd"

# --- the helper: wrk output -> row, the summary ---------------------------------------------------
HELPER="$WORK/checks_helper.py"
cat >"$HELPER" <<'PYEOF'
import json, os, re, statistics, sys

def wrk_row(path):
    s = open(path).read()
    def num(pat, conv=float):
        m = re.search(pat, s, re.M)
        return conv(m.group(1)) if m else None
    def pct(p):
        m = re.search(r"^\s+%s%%\s+([\d.]+)(us|ms|s|m)\s*$" % p, s, re.M)
        return round(float(m.group(1)) * {"us": 0.001, "ms": 1, "s": 1000, "m": 60000}[m.group(2)], 3) if m else None
    return dict(requests=num(r"^\s*(\d+) requests in", int), seconds=num(r"^\s*\d+ requests in ([\d.]+)s"),
                p50_ms=pct(50), p99_ms=pct(99), non2xx=num(r"Non-2xx or 3xx responses: (\d+)", int) or 0,
                socket_errors=num(r"(Socket errors:.*)$", str))

def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None

def summary(path, variants):
    rows = [json.loads(l) for l in open(path) if l.strip()]
    others = [v for v in variants if v != "off"]
    lines = ["| case | measure | %s | %s | paired ratios (each run) |" % (
                 " | ".join(variants), " | ".join("%s / off" % v for v in others)),
             "|---|---|%s---|%s" % ("---|" * len(variants), "---|" * len(others))]
    def line(case, label, key, fmt="{:,.1f}"):
        by = {v: {r["run"]: r.get(key) for r in rows if r["case"] == case and r["variant"] == v} for v in variants}
        meds = {v: med(by[v].values()) for v in variants}
        if all(m is None for m in meds.values()):
            return
        f = lambda x: "–" if x is None else fmt.format(x)
        ratios, paired = [], []
        for v in others:
            a, b = meds[v], meds.get("off")
            ratios.append("%.2f×" % (a / b) if a is not None and b else "–")
            ps = [by[v][k] / by["off"][k] for k in sorted(by.get("off", {}))
                  if by["off"][k] and by[v].get(k) is not None]
            paired.append("%s: %s" % (v, " ".join("%.2f" % x for x in ps) if ps else "–"))
        lines.append("| %s | %s | %s | %s | %s |" % (case, label, " | ".join(f(meds[v]) for v in variants),
                                                     " | ".join(ratios), "; ".join(paired)))
    for case in sorted({r["case"] for r in rows if r["case"].startswith("upload 2 KB")}, reverse=True):
        line(case, "uploads/s (2xx)", "ok_rps")
        line(case, "p50 ms", "p50_ms", "{:.2f}")
        line(case, "p99 ms", "p99_ms", "{:.2f}")
        line(case, "receiver CPU ms per upload", "cpu_ms_per_upload", "{:.3f}")
        line(case, "non-2xx answers", "non2xx", "{:,.0f}")
    line("instructions (callgrind)", "receiver instructions per 2 KB upload (k)", "ir_per_upload_k", "{:,.1f}")
    line("instructions (callgrind)", "receiver instructions per byte of a large upload", "ir_per_byte", "{:.1f}")
    line("instructions (callgrind)", "receiver instructions to start and stop (M)", "ir_idle_m", "{:.1f}")
    for case in sorted({r["case"] for r in rows if r["case"].startswith("upload") and "2 KB" not in r["case"]}):
        line(case, "wall s (curl time_total)", "wall_s", "{:.2f}")
        line(case, "MB/s of plaintext", "mb_per_s", "{:.1f}")
        line(case, "receiver CPU s per upload", "cpu_s", "{:.2f}")
        line(case, "receiver VmHWM MiB", "hwm_mib", "{:.1f}")
    runs = {}
    for r in rows:
        runs.setdefault(r["case"], set()).add(r["run"])
    print("Medians (%s); %s.\n" % (", ".join("%s: %d runs" % (c, len(n)) for c, n in sorted(runs.items())),
                                  sorted({r["commit"] for r in rows})[0]))
    print("\n".join(lines))

def row(args):
    row = {}
    for a in args:
        row.update(json.loads(a))
    tck = os.sysconf("SC_CLK_TCK")
    if "cpu_ticks" in row:
        row["cpu_s"] = round(row["cpu_ticks"] / tck, 2)
    req = row.get("requests") or 0
    if req and row["case"].startswith("upload 2 KB"):
        row["cpu_ms_per_upload"] = round(row["cpu_ticks"] / tck / req * 1e3, 4)
        if row.get("seconds"):
            row["ok_rps"] = round((req - row.get("non2xx", 0)) / row["seconds"], 1)
    if row.get("wall_s"):
        row["mb_per_s"] = round(row["plain_bytes"] / row["wall_s"] / 1e6, 1)
    if "ir_idle" in row:
        row["ir_idle_m"] = round(row["ir_idle"] / 1e6, 2)
        row["ir_per_upload_k"] = round((row["ir_uploads"] - row["ir_idle"]) / row["uploads"] / 1e3, 1)
        row["ir_per_byte"] = round((row["ir_big"] - row["ir_idle"]) / row["big_plain_bytes"], 2)
    if row.get("hwm_kb") is not None:
        row["hwm_mib"] = round(row["hwm_kb"] / 1024, 1)
    print(json.dumps(row))

if __name__ == "__main__":
    if sys.argv[1] == "wrk":
        print(json.dumps(wrk_row(sys.argv[2])))
    elif sys.argv[1] == "row":
        row(sys.argv[2:])
    elif sys.argv[1] == "summary":
        summary(sys.argv[2], sys.argv[3].split())
PYEOF

SIGNED_LUA="$here/upload_signed.lua"  # each request a new name with its own signature

# --- one measurement ------------------------------------------------------------------------------
n=0
measure() {  # measure RUN VARIANT CASE-KEY
  local r=$1 v=$2 c=$3 case=${CASE_NAME[$3]} dir c0 c1 base extra out code wall size
  n=$((n + 1)); dir="$WORK/$n-$v-$c"; mkdir -p "$dir"/{output,state}
  PORT=$(free_port)
  export OUTPUT_DIR="$dir/output" STATE_DIR="$dir/state" INPUT_DIR="$dir/input" PORT
  export FSYNC=on
  case "$c" in off) FSYNC=off ;; big) FSYNC=$BIG_FSYNC ;; esac
  unset XML_CHECK XML_SCHEMA
  case "$v" in
    off) export XML_CHECK=off ;;
    wellformed) ;;  # the default
    schema) export XML_SCHEMA="$SCHEMA" ;;
    *) log "unknown variant $v (VARIANTS: off wellformed schema)"; exit 2 ;;
  esac
  start_receiver "$dir/receiver.log"
  base=$(jq -nc --arg v "$v" --arg c "$commit" --arg case "$case" --argjson r "$r" --arg fsync "$FSYNC" \
    --arg load "$(cut -d' ' -f1-3 /proc/loadavg)" \
    '{variant:$v, commit:$c, case:$case, run:$r, fsync:$fsync, load:$load}')
  case "$c" in
    on|off)  # signed; the signatures are made just before each wrk run (SIGNATURE_WINDOW 300 s)
      $MAKE sign "$KEY_FILE" "$BODY_FILE" "warm$r" 5000 "$dir/signed-warm"
      SIGNED_FILE="$dir/signed-warm" WRK_THREADS=1 timeout 30 wrk -t1 -c2 -d1s -s "$SIGNED_LUA" \
        "http://127.0.0.1:$PORT" >/dev/null 2>&1 || true
      $MAKE sign "$KEY_FILE" "$BODY_FILE" "r$r" "$SIGNED_REQUESTS" "$dir/signed"
      c0=$(tree_cpu_ticks "$RECV_PID")
      SIGNED_FILE="$dir/signed" WRK_THREADS="$THREADS_WRK" timeout 60 wrk -t"$THREADS_WRK" -c"$CONN" \
        -d"$DURATION" --latency -s "$SIGNED_LUA" "http://127.0.0.1:$PORT" >"$dir/wrk.txt" 2>&1 || true
      c1=$(tree_cpu_ticks "$RECV_PID")
      extra=$(jq -nc --argjson t $((c1 - c0)) \
        --argjson w "$(find "$OUTPUT_DIR" -maxdepth 1 -type f -name "r$r-*.xml" | wc -l)" \
        '{cpu_ticks:$t, files_written:$w, conn:'"$CONN"'}')
      $PY "$HELPER" row "$base" "$($PY "$HELPER" wrk "$dir/wrk.txt")" "$extra" ;;
    big)
      c0=$(tree_cpu_ticks "$RECV_PID")
      out=$(timeout 300 curl -s -o "$dir/answer.json" -w '%{http_code} %{time_total}' \
        -F "file=@$WORK/big.token" "http://127.0.0.1:$PORT/upload/big-$r" || echo "000 0")
      c1=$(tree_cpu_ticks "$RECV_PID")
      read -r code wall <<<"$out"
      size=$(stat -c %s "$OUTPUT_DIR/big-$r.xml" 2>/dev/null || echo 0)
      extra=$(jq -nc --argjson t $((c1 - c0)) --argjson code "$code" --argjson wall "$wall" \
        --argjson size "$size" --argjson plain "$BIG_PLAIN" \
        --argjson hwm "$(awk '/^VmHWM:/{print $2}' /proc/"$RECV_PID"/status)" \
        '{cpu_ticks:$t, status:$code, wall_s:(if $code == 201 then $wall else null end),
          output_bytes:$size, plain_bytes:$plain, hwm_kb:$hwm}')
      [[ "$code" == 201 && "$size" == "$BIG_PLAIN" ]] ||
        log "big upload: status $code, $size bytes written: $(head -c 300 "$dir/answer.json")"
      rm -f "$OUTPUT_DIR/big-$r.xml"  # 100 MB each: the disk holds one at a time
      $PY "$HELPER" row "$base" "$extra" ;;
  esac | tee -a "$RES" >&2
  stop_pid "$RECV_PID"
}

# --- instructions under callgrind: deterministic, so once per variant ------------------------------
callgrind_ir() {  # callgrind_ir VARIANT WHAT(idle|uploads|big) -> the receiver's instructions
  local v=$1 what=$2 dir pid port i
  n=$((n + 1)); dir="$WORK/$n-$v-ir-$what"; mkdir -p "$dir"/{output,state}
  port=$(free_port)
  (
    case "$v" in off) export XML_CHECK=off ;; schema) export XML_SCHEMA="$SCHEMA" ;; esac
    SERVER_IP=127.0.0.1 SERVER_PORT="$port" OUTPUT_DIR="$dir/output" DECRYPTION_KEY="$KEY_FILE" \
      STATUS_DB_PATH="$dir/state" FSYNC=off LOG_LEVEL=warning \
      exec valgrind --tool=callgrind --callgrind-out-file="$dir/callgrind.out" "$WORK/bin/receiver"
  ) >"$dir/receiver.log" 2>&1 &
  pid=$!
  for i in $(seq 1 600); do  # at most 60 s for valgrind's start
    curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$port/" 2>/dev/null && break
    kill -0 "$pid" 2>/dev/null || { log "receiver under callgrind died: $(tail -5 "$dir/receiver.log")"; exit 1; }
    sleep 0.1
  done
  case "$what" in
    uploads) [[ $(timeout 600 $MAKE post "$port" "$BODY_FILE" "$BOUNDARY" ir "$IR_UPLOADS") == 0 ]] ||
               log "callgrind $v: some of the $IR_UPLOADS uploads were not answered 201" ;;
    big) [[ $(timeout 600 curl -s -o /dev/null -w '%{http_code}' -F "file=@$WORK/ir.token" \
               "http://127.0.0.1:$port/upload/ir-big") == 201 ]] || log "callgrind $v: the big upload failed" ;;
  esac
  stop_pid "$pid"
  awk '/^(summary|totals):/{print $2; exit}' "$dir/callgrind.out"
}
measure_ir() {  # measure_ir VARIANT
  local v=$1 idle uploads big
  idle=$(callgrind_ir "$v" idle); uploads=$(callgrind_ir "$v" uploads); big=$(callgrind_ir "$v" big)
  $PY "$HELPER" row "$(jq -nc --arg v "$v" --arg c "$commit" --arg case "${CASE_NAME[ir]}" \
    --argjson idle "$idle" --argjson up "$uploads" --argjson big "$big" --argjson n "$IR_UPLOADS" \
    --argjson bb "$IR_PLAIN" '{variant:$v, commit:$c, case:$case, run:1, ir_idle:$idle,
      ir_uploads:$up, uploads:$n, ir_big:$big, big_plain_bytes:$bb}')" | tee -a "$RES" >&2
}

read -ra vs <<<"$VARIANTS"
max_runs=$(( RUNS > BIG_RUNS ? RUNS : BIG_RUNS ))
for r in $(seq 1 "$max_runs"); do
  order=()  # rotated by one each run: off wellformed schema, wellformed schema off, ...
  for i in "${!vs[@]}"; do order+=("${vs[$(( (i + r - 1) % ${#vs[@]} ))]}"); done
  for c in $CASES; do
    [[ -n "${CASE_NAME[$c]:-}" ]] || { log "unknown case $c (CASES: on off big ir)"; exit 2; }
    case "$c" in
      big) (( r <= BIG_RUNS )) || continue ;;
      ir) (( r == 1 )) || continue ;;
      *) (( r <= RUNS )) || continue ;;
    esac
    for v in "${order[@]}"; do
      log "run $r: $v, ${CASE_NAME[$c]} (load $(cut -d' ' -f1-3 /proc/loadavg))"
      if [[ "$c" == ir ]]; then measure_ir "$v"; else measure "$r" "$v" "$c"; fi
    done
  done
done

echo "uptime at end: $(uptime)" | tee -a "$RESULTS_DIR/machine.txt" >&2
$PY "$HELPER" summary "$RES" "$VARIANTS" | tee "$RESULTS_DIR/summary.md"
[[ "${KEEP:-0}" == 1 ]] || rm -rf "$WORK"  # last: removing files slows the next creates on ext4
