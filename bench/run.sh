#!/usr/bin/env bash
# Builds pier if needed and runs the benchmark (pierd vs moto_server).
set -euo pipefail
cd "$(dirname "$0")/.."
[[ -x build/bin/pierd ]] || scripts/setup.sh
exec "${PIER_PYTHON:-python3}" bench/bench.py "$@"
