#!/usr/bin/env bash
# Installs, from Debian 12 packages only, what building, running and testing need.
set -euo pipefail
pkgs=(build-essential cmake ninja-build pkg-config libcpp-httplib-dev libssl-dev libxml2-dev
      nlohmann-json3-dev libsqlite3-dev libspdlog-dev libgtest-dev libgmock-dev libcli11-dev
      openssl curl sqlite3 python3 python3-flask gunicorn python3-requests python3-cryptography
      python3-dicttoxml python3-cryptography-vectors iproute2 iptables clang libclang-rt-14-dev)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq -o DPkg::Lock::Timeout=600 "${missing[@]}" >/dev/null
fi
