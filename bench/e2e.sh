#!/usr/bin/env bash
# End to end through the shared harness, exactly as it drives the Python reference:
#   bench/e2e.sh N SIZE [RUNS]          e.g. bench/e2e.sh 1000 2K 3;  FSYNC=off bench/e2e.sh 1000 2K 3
# PEER_BENCH is the harness directory (default ../shared/peers/python-original/bench beside the
# repository); RESULTS_DIR (default bench/results) collects the JSON rows.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
PEER_BENCH=${PEER_BENCH:-$here/../../shared/peers/python-original/bench}
[[ -x "$PEER_BENCH/e2e.sh" ]] || { echo "e2e.sh: no harness at $PEER_BENCH (set PEER_BENCH)" >&2; exit 2; }
export RESULTS_DIR=${RESULTS_DIR:-$here/results}
export CASE_TAG=${CASE_TAG:-fsync=${FSYNC:-on}}
exec bash "$PEER_BENCH/e2e.sh" "$here/impl-cpp.conf" "$@"
