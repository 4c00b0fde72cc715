#!/usr/bin/env bash
# Instructions the receiver spends per request, before and after a change of its front, counted
# by valgrind's callgrind (repeatable whatever else the machine does, unlike CPU time): each
# receiver runs under callgrind twice, serving N1 and then N2 requests one after the other on one
# keep-alive connection, and (I(N2) - I(N1)) / (N2 - N1) is the cost of one request, its start and
# stop cancelled out. Requests: uploads of a 2 KB plaintext to new names (unsigned, FSYNC=off, the
# output on tmpfs when /dev/shm exists) and GET /readyz.
#   bench/front_instructions.sh BEFORE_BIN AFTER_BIN      (receiver binaries, e.g. the ones
#                                                          bench/front.sh builds in /tmp/bench-*)
# Env: N1 (100), N2 (600), WORK (/tmp/bench-work-instructions). Prints one row per case.
# Loopback only; each receiver is stopped by its PID.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
BEFORE_BIN=$1 AFTER_BIN=$2
N1=${N1:-100} N2=${N2:-600}
WORK=${WORK:-/tmp/bench-work-instructions}
PY=/usr/bin/python3
rm -rf "$WORK" && mkdir -p "$WORK"
base=$WORK; [[ -d /dev/shm ]] && base=$(mktemp -d /dev/shm/front-instr.XXXXXX)
"$here/../scripts/prepare-env.sh" "$WORK/env" >/dev/null
BOUNDARY=$($PY "$here/make_xml_upload.py" body "$WORK/env/key" 2048 "$WORK/body")

count() {  # count BIN CASE N -> instructions of one receiver run serving N requests
  local bin=$1 case=$2 n=$3 run="$base/run-$RANDOM"
  mkdir -p "$run/out" "$run/db"
  FSYNC=off THREADS=2 LOG_LEVEL=warning valgrind --tool=callgrind --callgrind-out-file="$run/cg" \
    "$bin" --output-dir "$run/out" --status-db-path "$run/db" --decryption-key "$WORK/env/key" \
    --server-port 0 --ready-file "$run/port" 2>"$run/log" &
  local pid=$!
  for _ in $(seq 600); do [[ -s "$run/port" ]] && break; sleep 0.2; done
  local port; port=$(cat "$run/port")
  if [[ $case == upload ]]; then
    refused=$($PY "$here/make_xml_upload.py" post "$port" "$WORK/body" "$BOUNDARY" "u$n" "$n")
    [[ $refused == 0 ]] || { echo "$refused uploads refused" >&2; exit 1; }
  else
    $PY - "$port" "$n" <<'PYEOF'
import http.client, sys
conn = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]), timeout=120)
for _ in range(int(sys.argv[2])):
    conn.request("GET", "/readyz")
    r = conn.getresponse(); r.read()
    assert r.status == 200, r.status
PYEOF
  fi
  kill -TERM "$pid"; wait "$pid" || true
  awk '/^(summary|totals):/{print $2; exit}' "$run/cg"
  rm -rf "$run"
}

echo "| case | receiver | instructions per request (N2-N1=$((N2 - N1))) |"
echo "|---|---|---|"
for case in upload readyz; do
  for variant in before after; do
    bin=$BEFORE_BIN; [[ $variant == after ]] && bin=$AFTER_BIN
    a=$(count "$bin" "$case" "$N1"); b=$(count "$bin" "$case" "$N2")
    echo "| $case | $variant | $(( (b - a) / (N2 - N1) )) |"
  done
done
[[ $base != "$WORK" ]] && rm -rf "$base"
