#!/usr/bin/env bash
# Installs what pier needs from Debian's packages (idempotent) and builds it.
# Run as root on a fresh machine; safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(
  build-essential cmake g++ pkg-config
  libboost1.81-dev libboost-json1.81-dev libboost-url1.81-dev
  libspdlog-dev libfmt-dev libcli11-dev libsqlite3-dev libssl-dev libgtest-dev libc-ares-dev libarchive-dev
  awscli wrk procps clang-14 libclang-rt-14-dev busybox-static iproute2 nftables curl runc tini jq
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The Python that drives the end-to-end tests must have boto3 (the AWS CLI
# v1's Python does).
PY=""
for cand in "$(command -v python3 || true)" /root/.pyenv/versions/*/bin/python3 /usr/bin/python3; do
  [[ -x "$cand" ]] || continue
  if "$cand" -c 'import boto3' 2>/dev/null; then PY="$cand"; break; fi
done
if [[ -z "$PY" ]]; then
  echo "setup: no python3 with boto3 found (it comes with the AWS CLI v1 on this machine)" >&2
  exit 1
fi

BUILD_TYPE="${PIER_BUILD_TYPE:-RelWithDebInfo}"
cmake -S . -B build -DCMAKE_BUILD_TYPE="$BUILD_TYPE" -DPIER_PYTHON="$PY" >/dev/null
cmake --build build -j"$(nproc)"
# The AWS CLI finds the Session Manager plugin on PATH: link ours there,
# unless another plugin (AWS's own) is installed in that place.
LINK=/usr/local/bin/session-manager-plugin
if [[ ! -e "$LINK" || -L "$LINK" ]]; then
  ln -sfn "$PWD/build/bin/session-manager-plugin" "$LINK"
fi
echo "setup: built $(ls build/bin | tr '\n' ' ')"
