#!/usr/bin/env bash
# The benchmarks from one command on a fresh Debian 12 machine (as root): install what is
# missing (with --bench: Google Benchmark, wrk, GNU time), build, then compare.sh against the
# Python reference beside the repository. Arguments go to compare.sh (RUNS, default 3).
# Takes about 15 minutes on 2 cores; BIG=1 adds Python's 100 x 1M (+5-10 min).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh --bench
scripts/build.sh
exec bench/compare.sh "$@"
