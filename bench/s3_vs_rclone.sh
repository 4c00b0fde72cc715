#!/usr/bin/env bash
# The sender's S3 destination against rclone (issue 21): the same copy to the same radosgw, side
# by side in one run, ours and rclone interleaved (the order alternates between runs).
#
#   bench/s3_vs_rclone.sh            # as root from the repo root; prints a Markdown table
#
# Cases:
#   small: SMALL_COUNT (1,000) JSON files of SMALL_BYTES (2,048) each; SMALL_RUNS (3) runs
#   big:   one JSON file of BIG_BYTES (1 GiB); BIG_RUNS (3) runs
# What each tool does:
#   ours            build/bin/sender --once, destination type s3, "payload": "xml": reads the
#                   JSON, converts it to XML (default mapping), uploads <name>.xml; its CPU and
#                   time include the conversion, the hashing and its state database
#   ours-fernet     the same with the default payload (Fernet token, key_file): small case only
#   rclone          rclone copy of the XML files json2xml_tool made (the same bytes ours uploads:
#                   the check below compares ETags), --transfers = ours' upload_concurrency
#   rclone-conc1    (big only) rclone with --s3-upload-concurrency 1: one part at a time, as ours
# Both: multipart above 16 MiB, 8 MiB parts (ours' defaults; rclone --s3-upload-cutoff 16M
# --s3-chunk-size 8M), CONCURRENCY (4) files at once. Everything (inputs, state, the XML for
# rclone) is on a tmpfs (/dev/shm) so the disk does not swing the figures; radosgw's objects are
# in memory (memstore, RADOSGW_MEMSTORE_BYTES; the big objects are deleted and garbage-collected
# after each run).
# After each run the objects are listed (ListObjectsV2 through curl --aws-sigv4, not through
# either tool): every file there, same size, same ETag (MD5 or multipart ETag) as the local XML,
# nothing else under the run's prefix; a run that fails its check stops the bench.
# Time and CPU: /usr/bin/time (wall, user, sys, peak RSS) of the tool's process.
# Raw figures and logs: OUT_DIR (default /tmp/s3_vs_rclone-<UTC time>): runs.tsv, table.md, logs.
set -euo pipefail
cd "$(dirname "$0")/.."

SMALL_COUNT=${SMALL_COUNT:-1000}
SMALL_BYTES=${SMALL_BYTES:-2048}
SMALL_RUNS=${SMALL_RUNS:-3}
BIG_BYTES=${BIG_BYTES:-1073741824}
BIG_RUNS=${BIG_RUNS:-3}
CONCURRENCY=${CONCURRENCY:-4}
RUN_TIMEOUT=${RUN_TIMEOUT:-600}  # seconds any one measured command may take
SENDER=${SENDER:-build/bin/sender}
JSON2XML=${JSON2XML:-build/bin/json2xml_tool}
helper=bench/s3_vs_rclone.py
part=$((8 << 20))

for tool in rclone curl python3 /usr/bin/time radosgw-admin "$SENDER" "$JSON2XML"; do
  command -v "$tool" >/dev/null || { echo "s3_vs_rclone.sh: $tool is missing (apt-get install -y rclone time)" >&2; exit 2; }
done

out=${OUT_DIR:-/tmp/s3_vs_rclone-$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$out"
work=$(mktemp -d /dev/shm/s3_vs_rclone.XXXXXX)
srv=$work/rgw
running=""  # PID of the measured command (/usr/bin/time) while it runs

# Ends PID and every descendant of it (by PID, children first).
kill_tree() {
  local pid=$1 child
  for child in $(cat /proc/"$pid"/task/*/children 2>/dev/null); do kill_tree "$child"; done
  kill "$pid" 2>/dev/null || true
}
cleanup() {
  [[ -n $running ]] && kill_tree "$running"
  [[ -f $srv/rgw.pid ]] && tests/support/servers/radosgw.sh stop "$srv" || true
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Copies of the binaries: a build running meanwhile cannot swap them under a run.
cp "$SENDER" "$work/sender"
cp "$JSON2XML" "$work/json2xml_tool"
"$work/sender" --version >/dev/null || { echo "s3_vs_rclone.sh: $SENDER does not run" >&2; exit 2; }
sender_id="$(sha256sum "$work/sender" | cut -c1-12), built $(date -u -r "$SENDER" +%Y-%m-%dT%H:%MZ)"
SENDER=$work/sender
JSON2XML=$work/json2xml_tool

# memstore: the small objects of every run plus one big object (deleted after each run).
RADOSGW_MEMSTORE_BYTES=${RADOSGW_MEMSTORE_BYTES:-$((BIG_BYTES * 3 + (1 << 30)))} \
  tests/support/servers/radosgw.sh start "$srv" >"$out/radosgw.out"
bucket=$(<"$srv/bucket")
region=$(<"$srv/region")
endpoint=$(<"$srv/endpoint")
mkdir -p "$work/keys"
(umask 077
 cp "$srv/access_key" "$work/keys/access"
 cp "$srv/secret_key" "$work/keys/secret"
 python3 -c 'import base64, os; print(base64.urlsafe_b64encode(os.urandom(32)).decode())' >"$work/keys/fernet")

# rclone: an S3 remote "bench" from the environment only (no config file is read or written).
export RCLONE_CONFIG=$work/rclone.conf RCLONE_CONFIG_BENCH_TYPE=s3 RCLONE_CONFIG_BENCH_PROVIDER=Ceph \
  RCLONE_CONFIG_BENCH_ENDPOINT=$endpoint RCLONE_CONFIG_BENCH_REGION=$region \
  RCLONE_CONFIG_BENCH_ACCESS_KEY_ID=$(<"$srv/access_key") \
  RCLONE_CONFIG_BENCH_SECRET_ACCESS_KEY=$(<"$srv/secret_key")
: >"$RCLONE_CONFIG"
# rclone 1.60 refuses to start with AWS_CA_BUNDLE set ("LoadCustomCABundleError"); plain http here.
unset AWS_CA_BUNDLE

echo "inputs: $SMALL_COUNT x $SMALL_BYTES B JSON, 1 x $BIG_BYTES B JSON; XML by $JSON2XML" >&2
python3 "$helper" gen-small "$work/in-small" "$SMALL_COUNT" "$SMALL_BYTES"
python3 "$helper" gen-small "$work/in-warm" 20 "$SMALL_BYTES"
mkdir -p "$work/in-big" "$work/xml-small" "$work/xml-warm" "$work/xml-big"
python3 "$helper" gen-big "$work/in-big/big.json" "$BIG_BYTES"
for set in small warm; do
  for f in "$work/in-$set"/*.json; do
    b=${f##*/}
    "$JSON2XML" <"$f" >"$work/xml-$set/${b%.json}.xml"
  done
done
"$JSON2XML" <"$work/in-big/big.json" >"$work/xml-big/big.xml"
small_xml=$(du -cb "$work"/xml-small/*.xml | tail -1 | cut -f1)
big_xml=$(stat -c %s "$work/xml-big/big.xml")

# destination FILE PREFIX PAYLOAD: a destinations file with one s3 destination.
destination() {
  local key=""
  [[ $3 == fernet ]] && key=", \"key_file\": \"$work/keys/fernet\""
  cat >"$1" <<EOF
{"destinations": [{"name": "rgw", "type": "s3", "endpoint": "$endpoint", "region": "$region",
  "bucket": "$bucket", "prefix": "$2", "path_style": true,
  "access_key_file": "$work/keys/access", "secret_key_file": "$work/keys/secret",
  "payload": "$3"$key, "upload_concurrency": $CONCURRENCY,
  "multipart_threshold": "16M", "part_size": "8M"}]}
EOF
}

# measure CASE TOOL RUN FILES BYTES CMD...: runs CMD under /usr/bin/time, appends a line to runs.tsv.
measure() {
  local c=$1 tool=$2 run=$3 files=$4 bytes=$5 rc=0
  shift 5
  /usr/bin/time -f "%e %U %S %M" -o "$work/time" timeout -k 10 "$RUN_TIMEOUT" "$@" \
    >>"$out/$c-$tool-$run.log" 2>&1 &
  running=$!
  wait "$running" || rc=$?
  running=""
  if ((rc != 0)); then
    echo "s3_vs_rclone.sh: $c $tool run $run exited $rc; tail of $out/$c-$tool-$run.log:" >&2
    tail -n 5 "$out/$c-$tool-$run.log" >&2
    exit 1
  fi
  read -r wall user sys rss <"$work/time"
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$c" "$tool" "$run" "$wall" "$user" "$sys" "$rss" \
    "$files" "$bytes" >>"$out/runs.tsv"
  echo "$c $tool run $run: ${wall}s user ${user}s sys ${sys}s rss ${rss}KB" >&2
}

# run_ours CASE TOOL RUN PAYLOAD FILES BYTES: the sender once over in-CASE to ours/CASE-TOOL-RUN/.
run_ours() {
  local c=$1 tool=$2 run=$3 payload=$4 prefix="$2/$1-r$3"
  local state=$work/state-$c-$tool-$run
  mkdir -p "$state"
  destination "$work/dest-$c-$tool-$run.json" "$prefix" "$payload"
  INPUT_DIR=$work/in-$c STATUS_DB_PATH=$state DESTINATIONS_FILE=$work/dest-$c-$tool-$run.json \
    MIN_FILE_AGE=0 ON_SUCCESS=keep measure "$c" "$tool" "$run" "$5" "$6" "$SENDER" --once
  if [[ $payload == xml ]]; then
    python3 "$helper" verify "$srv" "$bucket" "$prefix/" "$work/xml-$c" "$part" >&2
  else
    python3 "$helper" count "$srv" "$bucket" "$prefix/" "$5" >&2
  fi
  rm -rf "$state"
}

# run_rclone CASE TOOL RUN FILES BYTES EXTRA...: rclone copy of xml-CASE to TOOL/CASE-rRUN/.
run_rclone() {
  local c=$1 tool=$2 run=$3 files=$4 bytes=$5 prefix="$2/$1-r$3"
  shift 5
  measure "$c" "$tool" "$run" "$files" "$bytes" rclone copy "$work/xml-$c" "bench:$bucket/$prefix" \
    --transfers "$CONCURRENCY" --s3-upload-cutoff 16M --s3-chunk-size 8M "$@"
  python3 "$helper" verify "$srv" "$bucket" "$prefix/" "$work/xml-$c" "$part" >&2
}

# Drops the objects under PREFIX and lets radosgw's garbage collector free their space now.
drop_prefix() {
  python3 "$helper" delete "$srv" "$bucket" "$1/" >&2
  timeout 120 radosgw-admin -c "$srv/ceph.conf" gc process --include-all >/dev/null 2>&1 || true
}

: >"$out/runs.tsv"
# Warm-up (not in the table): the first connections, the bucket index.
run_ours warm ours 0 xml 20 0
run_rclone warm rclone 0 20 0
: >"$out/runs.tsv"

for ((r = 1; r <= SMALL_RUNS; r++)); do
  if ((r % 2)); then
    run_ours small ours "$r" xml "$SMALL_COUNT" "$small_xml"
    run_rclone small rclone "$r" "$SMALL_COUNT" "$small_xml"
    run_ours small ours-fernet "$r" fernet "$SMALL_COUNT" "$small_xml"
  else
    run_rclone small rclone "$r" "$SMALL_COUNT" "$small_xml"
    run_ours small ours-fernet "$r" fernet "$SMALL_COUNT" "$small_xml"
    run_ours small ours "$r" xml "$SMALL_COUNT" "$small_xml"
  fi
done
big_ours() {
  run_ours big ours "$1" xml 1 "$big_xml"
  drop_prefix "ours/big-r$1"
}
big_rclone() {
  run_rclone big rclone "$1" 1 "$big_xml"
  drop_prefix "rclone/big-r$1"
  run_rclone big rclone-conc1 "$1" 1 "$big_xml" --s3-upload-concurrency 1
  drop_prefix "rclone-conc1/big-r$1"
}
for ((r = 1; r <= BIG_RUNS; r++)); do
  if ((r % 2)); then big_ours "$r"; big_rclone "$r"; else big_rclone "$r"; big_ours "$r"; fi
done

{
  echo "small: $SMALL_COUNT JSON files of $SMALL_BYTES B, $small_xml B of XML; big: one JSON file of"
  echo "$BIG_BYTES B, $big_xml B of XML. MB/s = XML bytes uploaded / wall s (10^6 B)."
  echo "CONCURRENCY=$CONCURRENCY, 8 MiB parts above 16 MiB, rclone $(rclone version | head -1 | cut -d' ' -f2),"
  echo "sender sha256 $sender_id; $(nproc) cores, load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)."
  echo
  python3 "$helper" table "$out/runs.tsv"
} | tee "$out/table.md"
