#!/usr/bin/env bash
# The README's test command: install what is missing, build, run every test (ctest).
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
scripts/install-deps.sh
scripts/build.sh
ctest --test-dir build --output-on-failure -j 2 "$@"
echo "whole test command took $(( $(date +%s) - start )) s"
