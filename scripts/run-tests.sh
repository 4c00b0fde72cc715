#!/usr/bin/env bash
# The README's test command: install what is missing, then run every test four ways:
#   1. the release build: unit, integration, curl, interop, memory, attack, chaos and docker tests
#      (the docker tests start Debian's dockerd when no engine answers, and stop it again);
#   2. the same suite built with AddressSanitizer + UndefinedBehaviorSanitizer (build-asan/),
#      except the memory and attack tests, whose peak-RSS and latency limits do not hold under
#      ASan's shadow memory and slowdown, and the docker tests, which build their own binaries
#      inside the images;
#   3. the unit and integration tests built with ThreadSanitizer (build-tsan/): the connection
#      front, the worker pools and the sender's queues are shared-state code; a race stops the
#      program (halt_on_error), which fails its test. tests/tsan.supp says what is suppressed and
#      why (Debian's cpp-httplib is not built with TSan);
#   4. the libFuzzer targets (clang, build-fuzz/), each for FUZZ_SECONDS (default 10).
# Extra arguments go to every ctest run (e.g. -L unit). TRANSFER_SKIP_ASAN=1, TRANSFER_SKIP_TSAN=1
# or TRANSFER_SKIP_FUZZ=1 leave out a stage for quick local runs; CI runs all four.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
scripts/install-deps.sh --docker
stage() { echo "== $1 ($(( $(date +%s) - start )) s so far)"; }

# The file servers of the destination tests, started once for the whole run (every stage, every
# test shares them: each test has a bucket or a directory of its own) and stopped by PID at exit.
# Tests that stop or kill a server start one of their own.
servers=$(mktemp -d /tmp/transfer-servers.XXXXXX)
chmod 755 "$servers"  # vsftpd's login (the ftp user) walks through it to its chroot
stop_servers() {
  tests/support/servers/radosgw.sh stop "$servers/s3" >/dev/null 2>&1 || true
  tests/support/servers/sshd.sh stop "$servers/sftp" >/dev/null 2>&1 || true
  tests/support/servers/vsftpd.sh stop "$servers/ftps" >/dev/null 2>&1 || true
  rm -rf "$servers"
}
trap stop_servers EXIT
stage "test servers"
RADOSGW_MEMSTORE_BYTES=$((2 << 30)) tests/support/servers/radosgw.sh start "$servers/s3"
tests/support/servers/sshd.sh start "$servers/sftp"
tests/support/servers/vsftpd.sh start "$servers/ftps"
export TRANSFER_S3_SERVER_DIR=$servers/s3 TRANSFER_SFTP_SERVER_DIR=$servers/sftp \
  TRANSFER_FTPS_SERVER_DIR=$servers/ftps

stage "release build and tests"
scripts/build.sh
ctest --test-dir build --output-on-failure -j 2 "$@"

if [[ "${TRANSFER_SKIP_ASAN:-0}" != 1 ]]; then
  stage "ASan + UBSan build and tests"
  cmake --preset asan -G Ninja >/dev/null
  cmake --build build-asan -j "$(nproc)"
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
    ctest --test-dir build-asan --output-on-failure -j 2 -LE 'memory|attack|docker' "$@"
fi

if [[ "${TRANSFER_SKIP_TSAN:-0}" != 1 ]]; then
  stage "ThreadSanitizer build and tests"
  cmake --preset tsan -G Ninja >/dev/null
  cmake --build build-tsan -j "$(nproc)"
  TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 suppressions=$PWD/tests/tsan.supp" \
    ctest --test-dir build-tsan --output-on-failure -j 2 -L 'unit|integration' -LE 'memory|attack|chaos|docker' "$@"
fi

if [[ "${TRANSFER_SKIP_FUZZ:-0}" != 1 ]]; then
  stage "fuzzers"
  cmake --preset fuzz -G Ninja -DFUZZ_SECONDS="${FUZZ_SECONDS:-10}" >/dev/null
  cmake --build build-fuzz -j "$(nproc)" --target fuzzers
  ctest --test-dir build-fuzz --output-on-failure -j 2 -L fuzz "$@"
fi
echo "whole test command took $(( $(date +%s) - start )) s"
