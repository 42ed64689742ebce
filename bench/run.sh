#!/usr/bin/env bash
# Builds pier if needed and runs the benchmarks: the API (pierd vs
# moto_server), the exec path (vs raw loopback TCP), and — as root — the
# network realized in the kernel, ECS tasks as runc containers, and ECS Exec
# into them (with the README's main command timed).
set -euo pipefail
cd "$(dirname "$0")/.."
[[ -x build/bin/pierd ]] || scripts/setup.sh
PY="${PIER_PYTHON:-python3}"
"$PY" bench/bench.py "$@"
"$PY" bench/exec_bench.py
if [[ $EUID -eq 0 ]]; then "$PY" bench/net_bench.py; "$PY" bench/task_bench.py; "$PY" bench/ecs_exec_bench.py --demo; fi
