#!/usr/bin/env bash
# What hostile keyed uploads cost the receiver's XML check, before and after its limits: CPU
# seconds and peak RSS of one XmlCheck (default XmlLimits, 256 KiB pieces as check_beside feeds
# it), one process per case, through bench/xml_limits.cpp.
#   cmake --build build --target xml_limits_bench
#   bench/xml_limits.sh build/bin/xml_limits_bench [BEFORE_BIN]
# BEFORE_BIN: the same xml_limits.cpp built against the code before the limits, e.g. from a
# checkout of the commit before them:
#   g++ -std=c++20 -O2 -g -DNDEBUG -I receiver/src -I shared/include -I/usr/include/libxml2 \
#     bench/xml_limits.cpp receiver/src/{xml_check,plaintext_check}.cpp \
#     shared/src/{file_util,sha256}.cpp -lxml2 -lcrypto -lpthread -o xml_limits_bench.before
# CASES (a regular expression on the labels) picks some; the slowest before-cases take ~20 s each.
# Two cases read files made here first, in WORK (default /tmp/xml_limits_bench, ~130 MB): 100 MB
# of what our sender writes (bench/make_xml_upload.py), and 26 MB putting every limit near its
# default at once (95,000 distinct names, then 8 each of attribute values, CDATA sections and
# comments of 1,048,000 bytes).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
after=${1:?usage: $0 AFTER_BIN [BEFORE_BIN]}
before=${2:-}
CASES=${CASES:-.}
WORK=${WORK:-/tmp/xml_limits_bench}
mkdir -p "$WORK"
[[ -s $WORK/sender.xml ]] || python3 - "$here" "$WORK/sender.xml" <<'PY'
import sys
sys.path.insert(0, sys.argv[1])
import make_xml_upload
_, chunks = make_xml_upload.records_xml(100_000_000)
with open(sys.argv[2], "wb") as f:
    for chunk in chunks:
        f.write(chunk)
PY
[[ -s $WORK/near_limits.xml ]] || python3 - "$WORK/near_limits.xml" <<'PY'
import sys
with open(sys.argv[1], "wb") as f:
    f.write(b"<r>" + b"".join(b"<n%d/>" % i for i in range(95000)))
    for _ in range(8):
        x = b"x" * 1048000
        f.write(b'<a v="' + x + b'"/><![CDATA[' + x + b"]]><!--" + x + b"-->")
    f.write(b"</r>")
PY

cases=(
  "160,000 attributes in one start tag|attributes 160000"
  "9 MB comment|comment 9000000"
  "9 MB attribute value|attribute 9000000"
  "9 MB processing instruction|pi 9000000"
  "9 MB CDATA section|cdata 9000000"
  "9 MB comment, '>' every 8 bytes|comment 9000000 --fill=>xxxxxxx"
  "30 MB of text in one element|text 30000000"
  "9 MB of text (U+00E9) in one element, schema|text_utf8 9000000 --schema"
  "DTD: 10,000 attribute defaults, 100 <e/>|attlist_defaults 10000"
  "8,160 namespaces in scope, 1,000,000 <z/>|ns_scope_plain 1000000"
  "1,000,000 distinct element names|unique_names 1000000"
  "within limits: 60,000 tags of 32 attributes|attributes 32 --repeat=60000"
  "within limits: 16 comments of 1,048,000 bytes|comment 1048000 --repeat=16"
  "within limits: 16 attribute values of 1,048,000 bytes|attribute 1048000 --repeat=16"
  "within limits: 16 CDATA sections of 1,048,000 bytes|cdata 1048000 --repeat=16"
  "within limits: the same, beside a thread|cdata 1048000 --repeat=16 --beside"
  "within limits: 16 texts of 1,048,000 bytes (U+00E9), schema|text_utf8 1048000 --repeat=16 --schema"
  "within limits: DTD with 32 defaults, 1,000,000 <e/>|attlist_defaults 32 --repeat=1000000"
  "within limits: 64 namespaces in scope, 1,000,000 <z/>|ns_scope_plain 1000000 --ns-levels=2"
  "within limits: 64 namespaces in scope, 100,000 tags of 32 prefixed attributes|ns_scope_declared 100000 --ns-levels=2"
  "within limits: 99,000 distinct names|unique_names 99000"
  "within limits: 30,000 distinct names of 40 bytes|unique_names 30000 --name-length=40"
  "within limits: every limit near its default at once|file 0 --path=$WORK/near_limits.xml"
  "the same, beside a thread|file 0 --path=$WORK/near_limits.xml --beside"
  "100 MB of what our sender writes (make_xml_upload.py)|file 0 --path=$WORK/sender.xml"
)

run() {  # BIN ARGS... -> "verdict cpu_s peak_over_start_kib bytes"
  local bin=$1; shift
  "$bin" "$@" | sed -E 's/.*verdict=([^ ]+) cpu_s=([^ ]+) .*peak_over_start_kib=([^ ]+) bytes=([^ ]+).*/\1 \2 \3 \4/'
}

printf '%-72s | %-34s | %-34s\n' "case" "before: verdict, CPU s, RSS+ MiB" "after: verdict, CPU s, RSS+ MiB"
for c in "${cases[@]}"; do
  label=${c%%|*}
  read -r -a args <<<"${c#*|}"
  [[ $label =~ $CASES ]] || continue
  b="-"
  if [[ -n $before ]]; then
    read -r v cpu kib bytes < <(run "$before" "${args[@]}")
    b=$(printf '%s %s %.1f' "$v" "$cpu" "$(echo "$kib/1024" | bc -l)")
  fi
  read -r v cpu kib bytes < <(run "$after" "${args[@]}")
  a=$(printf '%s %s %.1f' "$v" "$cpu" "$(echo "$kib/1024" | bc -l)")
  printf '%-72s | %-34s | %-34s\n' "$label ($((bytes / 1000)) kB)" "$b" "$a"
done
