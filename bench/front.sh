#!/usr/bin/env bash
# The receiver before and after a change of its front, same machine, same run, alternating
# before/after for every measurement (the order flips each run) so noise hits both. Written for
# the epoll connection front (issue 13, BEFORE=943b4f3); the default BEFORE is now 9c1ee66, the
# last receiver that parsed every request head twice (the front's parse, then cpp-httplib's) and
# let cpp-httplib write its answers (issue 20: one parser, answers written by the front):
#   - GET / with wrk (CONN=16 connections, 2 threads, DURATION=10s): requests/s, p50/p99, receiver
#     CPU seconds per 10k requests (/proc/<pid>/stat) and context switches per request (all its
#     threads' voluntary + nonvoluntary_ctxt_switches in /proc/<pid>/task/*/status);
#   - uploads of a 2 KB plaintext, each to a new name (the harness's make_upload_body.py, as
#     bench/upload.sh), signed as our sender signs them (X-Transfer-Signature, HMAC-SHA256 with the
#     key HKDF derives from the Fernet key; signatures made before each wrk run, one per request,
#     read by a wrk script written below), with FSYNC=on and FSYNC=off; the "before" receiver
#     ignores the header. Then unsigned, as bench/upload.sh sends them (upload_new_name.lua), with
#     FSYNC=off: since a806bb7 unsigned uploads may hold only half the upload workers (503 beyond);
#   - IDLE=2000 idle TCP connections held open for HOLD=5 s (nothing sent; spread over
#     127.0.0.1..127.0.0.20, at most 100 per address, under the new receiver's 256 per client):
#     how many the receiver accepted, its VmRSS/VmHWM/threads once they are open, and a GET / probe
#     every 0.5 s (2 s timeout each) while they are held, then one after they are released.
# Each measurement gets a fresh receiver (its own output directory, default options but FSYNC).
# Upload rates count 2xx answers only.
#   bench/front.sh [RUNS=3]     rows: bench/results/<stamp>-front/front.jsonl; prints the medians
# Env: BEFORE (9c1ee66), AFTER (HEAD), AFTER_BIN (a receiver binary to use as "after" instead of
#      building AFTER, e.g. build/bin/receiver), CASES (get on off unsigned idle: the measurements
#      above, in this order), CONN, DURATION, IDLE, HOLD, SIGNED_REQUESTS, RESULTS_DIR,
#      BENCH_WORK (/tmp/bench-work-front), KEEP (0: remove the work directory at the end).
# Builds BEFORE and AFTER in git worktrees outside the repository (/tmp/bench-before,
# /tmp/bench-after: RelWithDebInfo, no tests, target receiver) and copies both binaries into the
# work directory first, so a rebuild elsewhere cannot swap one mid-run. "After" is a commit, not
# build/bin/receiver, because that one is built from whatever the working tree holds (others'
# uncommitted work included); AFTER_BIN=build/bin/receiver measures it anyway, labelled as such.
# Loopback only; every loop is bounded; only the receivers started here are stopped, by PID.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
PEER_BENCH=${PEER_BENCH:-$repo/../shared/peers/python-original/bench}
source "$PEER_BENCH/lib.sh"
RUNS=${1:-3}
BEFORE=${BEFORE:-9c1ee66}; AFTER=${AFTER:-HEAD}
CONN=${CONN:-16}; THREADS_WRK=${THREADS_WRK:-2}; DURATION=${DURATION:-10s}
IDLE=${IDLE:-2000}; HOLD=${HOLD:-5}; PAYLOAD=2048
SIGNED_REQUESTS=${SIGNED_REQUESTS:-100000}  # signatures made per signed run: more than it can send
CASES=${CASES:-get on off unsigned idle}
declare -A CASE_NAME=([get]="GET /" [on]="upload FSYNC=on" [off]="upload FSYNC=off"
  [unsigned]="upload unsigned FSYNC=off" [idle]="idle $IDLE connections")
stamp=$(date -u +%Y%m%dT%H%M%SZ)
RESULTS_DIR=${RESULTS_DIR:-$here/results/$stamp-front}
WORK=${BENCH_WORK:-/tmp/bench-work-front}/$stamp
mkdir -p "$RESULTS_DIR" "$WORK"
RES="$RESULTS_DIR/front.jsonl"
log() { echo "== $*" >&2; }

# --- the two receivers -------------------------------------------------------------------------
build_at() {  # build_at COMMIT DIR -> DIR/build/bin/receiver
  local commit=$1 dir=$2
  if [[ -e "$dir/.git" ]]; then
    git -C "$dir" checkout -q --detach "$commit"
  else
    git -C "$repo" worktree add -q --detach "$dir" "$commit"
  fi
  cmake -S "$dir" -B "$dir/build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DTRANSFER_BUILD_TESTS=OFF >"$WORK/cmake-$(basename "$dir").log"
  cmake --build "$dir/build" -j "$(nproc)" --target receiver >"$WORK/build-$(basename "$dir").log"
}
before_commit=$(git -C "$repo" rev-parse --short "$BEFORE")
log "building the before receiver ($before_commit) in /tmp/bench-before"
build_at "$before_commit" /tmp/bench-before
mkdir -p "$WORK/bin-before" && cp /tmp/bench-before/build/bin/receiver "$WORK/bin-before/"
if [[ -n "${AFTER_BIN:-}" ]]; then
  after_commit="$(git -C "$repo" rev-parse --short HEAD)+worktree($AFTER_BIN)"
  [[ -x "$AFTER_BIN" ]] || { log "building $AFTER_BIN (scripts/build.sh)"; "$repo/scripts/build.sh" >&2; }
  mkdir -p "$WORK/bin-after" && cp "$AFTER_BIN" "$WORK/bin-after/receiver"
else
  after_commit=$(git -C "$repo" rev-parse --short "$AFTER")
  log "building the after receiver ($after_commit) in /tmp/bench-after"
  build_at "$after_commit" /tmp/bench-after
  mkdir -p "$WORK/bin-after" && cp /tmp/bench-after/build/bin/receiver "$WORK/bin-after/"
fi
declare -A COMMIT; COMMIT[before]="$before_commit"; COMMIT[after]="$after_commit"

load_config "$here/impl-cpp.conf"  # receiver_start: runs "$CPP_BIN_DIR/receiver" with the env below
export CPP_LOG_LEVEL=${CPP_LOG_LEVEL:-info}
export KEY_FILE="$WORK/key"; make_key "$KEY_FILE"
BOUNDARY=$($PY "$PEER_BENCH/make_upload_body.py" "$KEY_FILE" "$PAYLOAD" "$WORK/body")
export BODY_FILE="$WORK/body" CONTENT_TYPE="multipart/form-data; boundary=$BOUNDARY"

{ echo "date: $(date -u +%FT%TZ)"; echo "kernel: $(uname -r)"; nproc | sed 's/^/cpus: /'
  grep -m1 'model name' /proc/cpuinfo; free -g | awk '/Mem:/{print "memory_gib: "$2}'
  df -T "$WORK" | awk 'NR==2{print "filesystem: "$2" "$1}'
  echo "before: $before_commit"; echo "after: $after_commit"
  echo "runs: $RUNS conn: $CONN wrk_threads: $THREADS_WRK duration: $DURATION idle: $IDLE hold_s: $HOLD"
  echo "uptime at start: $(uptime)"; } | tee "$RESULTS_DIR/machine.txt" >&2

# --- the helper: wrk output -> row, the idle hold, the summary -----------------------------------
HELPER="$WORK/front_helper.py"
cat >"$HELPER" <<'PYEOF'
import json, os, re, resource, select, socket, statistics, sys, time

def wrk_row(path):
    s = open(path).read()
    def num(pat, conv=float):
        m = re.search(pat, s, re.M)
        return conv(m.group(1)) if m else None
    def pct(p):
        m = re.search(r"^\s+%s%%\s+([\d.]+)(us|ms|s|m)\s*$" % p, s, re.M)
        return round(float(m.group(1)) * {"us": 0.001, "ms": 1, "s": 1000, "m": 60000}[m.group(2)], 3) if m else None
    return dict(rps=num(r"Requests/sec:\s+([\d.]+)"), requests=num(r"^\s*(\d+) requests in", int),
                seconds=num(r"^\s*\d+ requests in ([\d.]+)s"),
                p50_ms=pct(50), p99_ms=pct(99),
                non2xx=num(r"Non-2xx or 3xx responses: (\d+)", int) or 0,
                socket_errors=num(r"(Socket errors:.*)$", str))

def proc_status(pid):
    out = {}
    try:
        for line in open("/proc/%d/status" % pid):
            k, _, v = line.partition(":")
            if k in ("VmRSS", "VmHWM", "Threads"):
                out[k] = int(v.split()[0])
        out["sockets"] = sum(1 for fd in os.listdir("/proc/%d/fd" % pid)
                             if os.readlink("/proc/%d/fd/%s" % (pid, fd)).startswith("socket:"))
    except (OSError, ValueError):
        pass
    return out

def probe(port, timeout):
    """GET / on a new connection; seconds until the status line, or None (timeout or error)."""
    t0 = time.monotonic()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.settimeout(max(0.01, timeout - (time.monotonic() - t0)))
            s.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            buf = b""
            while b"\r\n" not in buf:
                s.settimeout(max(0.01, timeout - (time.monotonic() - t0)))
                chunk = s.recv(4096)
                if not chunk:
                    return None, "closed"
                buf += chunk
            if not buf.startswith(b"HTTP/1.1 200"):
                return None, buf.split(b"\r\n", 1)[0].decode(errors="replace")
            return time.monotonic() - t0, "200"
    except socket.timeout:
        return None, "timeout"
    except OSError as e:
        return None, type(e).__name__

def idle(port, pid, count, hold):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = count + 256
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, want), hard))
    base = proc_status(pid)
    socks, failed = [], 0
    t0 = time.monotonic()
    for i in range(count):  # non-blocking: a connect the server's queue drops stays pending
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        try:
            s.bind(("127.0.0.%d" % (1 + i // 100), 0))
            s.connect_ex(("127.0.0.1", port))
            socks.append(s)
        except OSError:
            failed += 1
            s.close()
    pending = {s.fileno(): s for s in socks}
    connected = []
    deadline = t0 + 3.0  # at most 3 s for the connects (the front's head timeout is 10 s)
    poller = select.poll()
    for fd in pending:
        poller.register(fd, select.POLLOUT)
    while pending and time.monotonic() < deadline:
        for fd, ev in poller.poll(max(1, int((deadline - time.monotonic()) * 1000))):
            s = pending.pop(fd, None)
            if s is None:
                continue
            poller.unregister(fd)
            if s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0:
                connected.append(s)
            else:
                failed += 1
    connect_s = time.monotonic() - t0
    time.sleep(0.5)  # let the receiver accept what the kernel queued
    held = proc_status(pid)
    t_hold = time.monotonic()
    probes = []
    for _ in range(int(hold / 0.5) + 1):  # a probe every 0.5 s while they are held
        start = time.monotonic()
        if start - t_hold >= hold:
            break
        lat, what = probe(port, 2.0)
        probes.append(dict(ms=None if lat is None else round(lat * 1000, 2), result=what))
        time.sleep(max(0.0, 0.5 - (time.monotonic() - start)))
    end = proc_status(pid)
    closed_by_server = 0  # of ours that the receiver closed while held (readable: EOF or reset)
    check, by_fd = select.poll(), {s.fileno(): s for s in connected}
    for fd in by_fd:
        check.register(fd, select.POLLIN)
    for fd, ev in check.poll(0):
        try:
            if ev & (select.POLLHUP | select.POLLERR) or \
                    by_fd[fd].recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b"":
                closed_by_server += 1
        except OSError:
            closed_by_server += 1
    for s in connected + list(pending.values()):
        s.close()
    after = None
    for _ in range(10):  # GET / once they are gone: at most 10 tries of 2 s
        lat, what = probe(port, 2.0)
        if lat is not None:
            after = round(lat * 1000, 2)
            break
    answered = [p["ms"] for p in probes if p["ms"] is not None]
    return dict(idle_target=count, idle_connected=len(connected), idle_pending=len(pending),
                idle_failed=failed, connect_s=round(connect_s, 2),
                accepted_by_receiver=held.get("sockets", 0) - base.get("sockets", 0),
                rss_base_kb=base.get("VmRSS"), rss_kb=max(held.get("VmRSS", 0), end.get("VmRSS", 0)),
                hwm_kb=end.get("VmHWM"), threads=held.get("Threads"),
                closed_by_server=closed_by_server, hold_s=hold,
                probes=len(probes), probes_answered=len(answered),
                probe_p50_ms=round(statistics.median(answered), 2) if answered else None,
                probe_max_ms=max(answered) if answered else None,
                probe_results=[p["result"] for p in probes], probe_ms=[p["ms"] for p in probes],
                get_after_release_ms=after)

def sign(key_file, body_file, prefix, count, out):
    """As the sender signs (shared/src/upload_signature.cpp): HKDF-SHA256 of the Fernet key's 32
    bytes (no salt, info "transfer upload signature v1") is the HMAC-SHA256 key; the MAC covers
    domain, method, target, Content-Length, plaintext SHA-256, Idempotency-Key and X-Transfer-Id
    (all three absent here: empty) and t, one per line. One signature per new name."""
    import base64, hashlib, hmac
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF
    fernet_key = base64.urlsafe_b64decode(open(key_file).read().strip())
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
               info=b"transfer upload signature v1").derive(fernet_key)
    length, t = os.path.getsize(body_file), int(time.time())
    with open(out, "w") as fh:
        for i in range(count):
            target = "/upload/%s-%d" % (prefix, i)
            msg = "transfer-upload-v1\nPOST\n%s\n%d\n\n\n\n%d" % (target, length, t)
            mac = hmac.new(key, msg.encode(), hashlib.sha256).hexdigest()
            fh.write("%s\tt=%d,v1=%s\n" % (target, t, mac))

def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None

def summary(path):
    rows = [json.loads(l) for l in open(path) if l.strip()]
    lines = ["| case | measure | before | after | after / before | paired ratios (each run) |",
             "|---|---|---|---|---|---|"]
    def line(case, label, key, fmt="{:,.1f}"):
        of = lambda v: {r["run"]: r.get(key) for r in rows if r["case"] == case and r["variant"] == v}
        before, after = of("before"), of("after")
        b, a = med(before.values()), med(after.values())
        if a is None and b is None:
            return
        f = lambda v: "–" if v is None else fmt.format(v)
        ratio = "%.2f×" % (a / b) if a is not None and b else "–"
        pairs = [after[k] / before[k] for k in sorted(before)
                 if before[k] and after.get(k) is not None]
        paired = " ".join("%.2f" % x for x in pairs) if pairs else "–"
        lines.append("| %s | %s | %s | %s | %s | %s |" % (case, label, f(b), f(a), ratio, paired))
    line("GET /", "requests/s", "rps")
    line("GET /", "p50 ms", "p50_ms", "{:.2f}")
    line("GET /", "p99 ms", "p99_ms", "{:.2f}")
    line("GET /", "receiver CPU s per 10k requests", "cpu_s_per_10k", "{:.3f}")
    line("GET /", "receiver context switches per request", "ctx_per_req", "{:.2f}")
    line("GET /", "  of which voluntary", "vctx_per_req", "{:.2f}")
    for case in ("upload FSYNC=on", "upload FSYNC=off", "upload unsigned FSYNC=off"):
        line(case, "uploads/s (2xx)", "ok_rps")
        line(case, "p50 ms", "p50_ms", "{:.2f}")
        line(case, "p99 ms", "p99_ms", "{:.2f}")
        line(case, "receiver CPU ms per request", "cpu_ms_per_upload", "{:.3f}")
        line(case, "receiver context switches per request", "ctx_per_req", "{:.2f}")
        line(case, "non-2xx answers", "non2xx", "{:,.0f}")
    c = next((r["case"] for r in rows if r["case"].startswith("idle")), "idle")
    line(c, "connects completed (client side, 3 s)", "idle_connected", "{:,.0f}")
    line(c, "accepted by the receiver (its sockets)", "accepted_by_receiver", "{:,.0f}")
    line(c, "VmRSS before, MiB", "rss_base_mib", "{:.1f}")
    line(c, "VmRSS held, MiB", "rss_mib", "{:.1f}")
    line(c, "VmHWM, MiB", "hwm_mib", "{:.1f}")
    line(c, "threads", "threads", "{:.0f}")
    line(c, "GET / probes answered (of ~10)", "probes_answered", "{:.0f}")
    line(c, "GET / probe p50 ms (answered ones)", "probe_p50_ms", "{:.2f}")
    line(c, "GET / probe max ms (answered ones)", "probe_max_ms", "{:.2f}")
    line(c, "closed by the receiver during the hold", "closed_by_server", "{:,.0f}")
    line(c, "GET / after release, ms", "get_after_release_ms", "{:.2f}")
    n = len({r["run"] for r in rows})
    print("Medians of %d runs (%s).\n" % (n, ", ".join(sorted({"%s=%s" % (r["variant"], r["commit"]) for r in rows}))))
    print("\n".join(lines))

if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "wrk":  # wrk FILE -> JSON of the parsed fields
        print(json.dumps(wrk_row(sys.argv[2])))
    elif cmd == "idle":  # idle PORT PID COUNT HOLD
        print(json.dumps(idle(int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5]))))
    elif cmd == "row":  # row BASE_JSON EXTRA_JSON... -> merged, with derived fields
        row = {}
        for a in sys.argv[2:]:
            row.update(json.loads(a))
        req = row.get("requests") or 0
        if "cpu_ticks" in row and req:
            cpu_s = row["cpu_ticks"] / os.sysconf("SC_CLK_TCK")
            row["cpu_s"] = round(cpu_s, 2)
            if row["case"] == "GET /":
                row["cpu_s_per_10k"] = round(cpu_s / req * 1e4, 4)
            else:
                row["cpu_ms_per_upload"] = round(cpu_s / req * 1e3, 4)
        if row.get("seconds") and req and row["case"].startswith("upload"):
            row["ok_rps"] = round((req - row.get("non2xx", 0)) / row["seconds"], 1)
        if "vctx" in row and req:
            row["vctx_per_req"] = round(row["vctx"] / req, 3)
            row["ctx_per_req"] = round((row["vctx"] + row["nvctx"]) / req, 3)
        for k in ("rss_base_kb", "rss_kb", "hwm_kb"):
            if row.get(k) is not None:
                row[k.replace("_kb", "_mib")] = round(row[k] / 1024, 1)
        print(json.dumps(row))
    elif cmd == "summary":
        summary(sys.argv[2])
    elif cmd == "sign":  # sign KEY_FILE BODY_FILE PREFIX COUNT OUT: "<target>\t<signature>" lines
        sign(*sys.argv[2:5], int(sys.argv[5]), sys.argv[6])
PYEOF

SIGNED_LUA="$here/upload_signed.lua"  # each request a new name with its own signature

# --- one measurement ------------------------------------------------------------------------------
ctx_switches() {  # "voluntary nonvoluntary" over all threads of a process
  cat /proc/"$1"/task/*/status 2>/dev/null |
    awk '/^voluntary_ctxt_switches/{v+=$2} /^nonvoluntary_ctxt_switches/{n+=$2} END{print v+0, n+0}'
}
n=0
measure() {  # measure RUN VARIANT CASE
  local r=$1 v=$2 case=$3 dir out c0 c1 v0 n0 v1 n1 wrkj extra
  n=$((n + 1)); dir="$WORK/$n-$v-${case//[^A-Za-z0-9=]/}"; mkdir -p "$dir"/{output,state}
  export OUTPUT_DIR="$dir/output" STATE_DIR="$dir/state" INPUT_DIR="$dir/input" PORT=$(free_port)
  export CPP_BIN_DIR="$WORK/bin-$v" FSYNC=on
  if [[ "$case" == *"FSYNC=off" ]]; then FSYNC=off; fi
  start_receiver "$dir/receiver.log"
  local base; base=$(jq -nc --arg v "$v" --arg c "${COMMIT[$v]}" --arg case "$case" --argjson r "$r" \
    --arg load "$(cut -d' ' -f1-3 /proc/loadavg)" \
    '{variant:$v, commit:$c, case:$case, run:$r, load:$load}')
  case "$case" in
    "GET /")
      timeout 30 wrk -t1 -c2 -d1s "http://127.0.0.1:$PORT/" >/dev/null 2>&1 || true
      c0=$(tree_cpu_ticks "$RECV_PID"); read -r v0 n0 < <(ctx_switches "$RECV_PID")
      timeout 60 wrk -t"$THREADS_WRK" -c"$CONN" -d"$DURATION" --latency "http://127.0.0.1:$PORT/" \
        >"$dir/wrk.txt" 2>&1 || true
      c1=$(tree_cpu_ticks "$RECV_PID"); read -r v1 n1 < <(ctx_switches "$RECV_PID")
      extra=$(jq -nc --argjson t $((c1 - c0)) --argjson vc $((v1 - v0)) --argjson nc $((n1 - n0)) \
        --argjson th "$(awk '/^Threads:/{print $2}' /proc/"$RECV_PID"/status)" \
        '{cpu_ticks:$t, vctx:$vc, nvctx:$nc, threads:$th, conn:'"$CONN"'}')
      $PY "$HELPER" row "$base" "$($PY "$HELPER" wrk "$dir/wrk.txt")" "$extra" ;;
    "upload unsigned"*)
      RUN_ID=warm timeout 30 wrk -t1 -c2 -d1s -s "$here/upload_new_name.lua" "http://127.0.0.1:$PORT" \
        >/dev/null 2>&1 || true
      c0=$(tree_cpu_ticks "$RECV_PID"); read -r v0 n0 < <(ctx_switches "$RECV_PID")
      RUN_ID="r$r" timeout 60 wrk -t"$THREADS_WRK" -c"$CONN" -d"$DURATION" --latency \
        -s "$here/upload_new_name.lua" "http://127.0.0.1:$PORT" >"$dir/wrk.txt" 2>&1 || true
      c1=$(tree_cpu_ticks "$RECV_PID"); read -r v1 n1 < <(ctx_switches "$RECV_PID")
      extra=$(jq -nc --argjson t $((c1 - c0)) --argjson vc $((v1 - v0)) --argjson nc $((n1 - n0)) \
        --argjson w "$(find "$OUTPUT_DIR" -maxdepth 1 -type f -name "r$r-*.xml" | wc -l)" \
        '{cpu_ticks:$t, vctx:$vc, nvctx:$nc, files_written:$w, signed:false, fsync:"'"$FSYNC"'", conn:'"$CONN"'}')
      $PY "$HELPER" row "$base" "$($PY "$HELPER" wrk "$dir/wrk.txt")" "$extra" ;;
    upload*)  # signed; the signatures are made just before each wrk run (SIGNATURE_WINDOW 300 s)
      $PY "$HELPER" sign "$KEY_FILE" "$BODY_FILE" "warm$r" 5000 "$dir/signed-warm"
      SIGNED_FILE="$dir/signed-warm" WRK_THREADS=1 timeout 30 wrk -t1 -c2 -d1s -s "$SIGNED_LUA" \
        "http://127.0.0.1:$PORT" >/dev/null 2>&1 || true
      $PY "$HELPER" sign "$KEY_FILE" "$BODY_FILE" "r$r" "$SIGNED_REQUESTS" "$dir/signed"
      c0=$(tree_cpu_ticks "$RECV_PID"); read -r v0 n0 < <(ctx_switches "$RECV_PID")
      SIGNED_FILE="$dir/signed" WRK_THREADS="$THREADS_WRK" timeout 60 wrk -t"$THREADS_WRK" -c"$CONN" \
        -d"$DURATION" --latency -s "$SIGNED_LUA" "http://127.0.0.1:$PORT" >"$dir/wrk.txt" 2>&1 || true
      c1=$(tree_cpu_ticks "$RECV_PID"); read -r v1 n1 < <(ctx_switches "$RECV_PID")
      extra=$(jq -nc --argjson t $((c1 - c0)) --argjson vc $((v1 - v0)) --argjson nc $((n1 - n0)) \
        --argjson w "$(find "$OUTPUT_DIR" -maxdepth 1 -type f -name "r$r-*.xml" | wc -l)" \
        '{cpu_ticks:$t, vctx:$vc, nvctx:$nc, files_written:$w, signed:true, fsync:"'"$FSYNC"'", conn:'"$CONN"'}')
      $PY "$HELPER" row "$base" "$($PY "$HELPER" wrk "$dir/wrk.txt")" "$extra" ;;
    idle*)
      sleep 1  # the receiver settled after start-up
      extra=$(timeout 60 $PY "$HELPER" idle "$PORT" "$RECV_PID" "$IDLE" "$HOLD" ||
        echo '{"error":"idle client failed or timed out"}')
      $PY "$HELPER" row "$base" "$extra" ;;
  esac | tee -a "$RES" >&2
  stop_pid "$RECV_PID"
}

for r in $(seq 1 "$RUNS"); do
  if (( r % 2 )); then order="before after"; else order="after before"; fi
  for c in $CASES; do
    case=${CASE_NAME[$c]:?"unknown case $c (CASES: get on off unsigned idle)"}
    for v in $order; do
      log "run $r/$RUNS: $v, $case (load $(cut -d' ' -f1-3 /proc/loadavg))"
      measure "$r" "$v" "$case"
    done
  done
done

echo "uptime at end: $(uptime)" | tee -a "$RESULTS_DIR/machine.txt" >&2
$PY "$HELPER" summary "$RES" | tee "$RESULTS_DIR/summary.md"
[[ "${KEEP:-0}" == 1 ]] || rm -rf "$WORK"  # last: removing files slows the next creates on ext4
