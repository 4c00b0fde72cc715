#!/usr/bin/env bash
# The README's demo command: install what is missing, build, then run the pair on loopback with
# a fresh key and sample JSON, and show what arrived.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh
demo=$(mktemp -d /tmp/transfer-demo.XXXXXX)
scripts/prepare-env.sh "$demo"
cp tests/testdata/json2xml/inputs/24_realistic_record.json "$demo/input/record.json"
cp tests/testdata/json2xml/inputs/06_unicode.json "$demo/input/unicode.json"
printf '{"greeting": "hello from the demo", "n": [1, 2.5, true, null]}' > "$demo/input/hello.json"
build/bin/receiver --server-port 0 --ready-file "$demo/ready" --output-dir "$demo/output" \
  --status-db-path "$demo/status-db" --decryption-key "$demo/key" 2>"$demo/receiver.log" &
rpid=$!
trap 'kill $rpid 2>/dev/null; wait $rpid 2>/dev/null || true' EXIT
for _ in $(seq 100); do [[ -s "$demo/ready" ]] && break; sleep 0.1; done
port=$(cat "$demo/ready")
echo "== receiver on 127.0.0.1:$port; health: $(curl -s "http://127.0.0.1:$port/")"
build/bin/sender --once --input-dir "$demo/input" --status-db-path "$demo/status-db" \
  --encryption-key "$demo/key" --receiver-port "$port"
echo "== arrived in $demo/output:"
ls -l "$demo/output"
echo "== $demo/output/hello.xml:"
cat "$demo/output/hello.xml"
echo "== sender status:"
build/bin/sender status --status-db-path "$demo/status-db" --input-dir "$demo/input"
echo "== receiver readiness (GET /readyz):"
curl -s "http://127.0.0.1:$port/readyz"
echo "== receiver ledger (GET /files):"
curl -s "http://127.0.0.1:$port/files"
echo "== receiver metrics (GET /metrics, without histogram buckets):"
curl -s "http://127.0.0.1:$port/metrics" | grep -v -e '^#' -e '_bucket{'
