#!/usr/bin/env bash
# Sets up, builds and runs every test (unit tests and end-to-end tests with the
# real AWS CLIs and boto3).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
ctest --test-dir build --output-on-failure --timeout 900 "$@"
