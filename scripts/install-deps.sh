#!/usr/bin/env bash
# Installs, from Debian 12 packages only, what building, running and testing need.
# --docker adds what the container tests need: Debian's engine, docker-compose 1.29 and
# debootstrap (the base image is built locally; no registry is reachable). The engine is not started.
# --bench adds what bench/ needs: Google Benchmark, wrk and GNU time.
set -euo pipefail
pkgs=(build-essential cmake ninja-build pkg-config libcpp-httplib-dev libssl-dev libxml2-dev
      nlohmann-json3-dev libsqlite3-dev libspdlog-dev libgtest-dev libgmock-dev libcli11-dev
      openssl curl sqlite3 python3 python3-flask gunicorn python3-requests python3-cryptography
      python3-dicttoxml python3-cryptography-vectors iproute2 iptables clang libclang-rt-14-dev
      libxml2-utils clamav-daemon libutf8proc-dev libssh-dev libcurl4-openssl-dev
      openssh-server vsftpd libpam-pwdfile)
# Installed without their recommends: only promtool is wanted of prometheus (it checks the
# /metrics pages); radosgw with one monitor and one OSD is the S3 server of the S3 client's tests
# (tests/support/servers/radosgw.sh; ceph-common, monmaptool and radosgw-admin come with them).
lean_pkgs=(prometheus radosgw ceph-mon ceph-osd)
for flag in "$@"; do
  case "$flag" in
    --docker) pkgs+=(docker.io docker-compose debootstrap) ;;
    --bench) pkgs+=(libbenchmark-dev wrk time) ;;  # bench/: micro-benchmarks, load generator, /usr/bin/time
    *) echo "install-deps.sh: unknown option $flag (--docker, --bench)" >&2; exit 2 ;;
  esac
done
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
missing=() lean_missing=()
for p in "${pkgs[@]}"; do installed "$p" || missing+=("$p"); done
for p in "${lean_pkgs[@]}"; do installed "$p" || lean_missing+=("$p"); done
if ((${#missing[@]} + ${#lean_missing[@]})); then
  echo "installing: ${missing[*]} ${lean_missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  if ((${#missing[@]})); then
    apt-get install -y -qq -o DPkg::Lock::Timeout=600 "${missing[@]}" >/dev/null
  fi
  if ((${#lean_missing[@]})); then
    apt-get install -y -qq --no-install-recommends -o DPkg::Lock::Timeout=600 "${lean_missing[@]}" >/dev/null
  fi
fi
