#!/usr/bin/env bash
# Builds the frame-parser fuzz target with clang (libFuzzer, ASan, UBSan) and
# runs it for a bounded time. The project builds with g++; only this target
# uses clang. Usage: run.sh SECONDS [BUILD_DIR]
set -euo pipefail
SECONDS_TO_RUN="${1:-30}"
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
OUT="${2:-$ROOT/build}/fuzz"
CXX="$(command -v clang++-14 || command -v clang++)"
mkdir -p "$OUT/corpus"
"$CXX" -std=c++20 -O1 -g -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
  -I"$ROOT/src" \
  "$HERE/message_fuzz.cc" "$ROOT/src/exec/message.cc" "$ROOT/src/exec/payloads.cc" \
  "$ROOT/src/common/crypto.cc" "$ROOT/src/common/strings.cc" \
  -lcrypto -lboost_json -lfmt -o "$OUT/message_fuzz"
# Seed the corpus with the protocol's own vectors.
VECTORS="$ROOT/../shared/docs/ssm-test-vectors.json"
if [[ -f "$VECTORS" ]]; then
  python3 - "$VECTORS" "$OUT/corpus" <<'PY'
import json, sys, os
d = json.load(open(sys.argv[1]))
for f in d["binary_frames"] + d["parser_edge_cases"]:
    open(os.path.join(sys.argv[2], f["name"]), "wb").write(bytes.fromhex(f["frame_hex"]))
PY
fi
"$OUT/message_fuzz" -max_total_time="$SECONDS_TO_RUN" -max_len=4096 -print_final_stats=1 \
  -artifact_prefix="$OUT/" "$OUT/corpus" 2>&1 | tail -15
