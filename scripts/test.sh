#!/usr/bin/env bash
# Sets everything up (idempotent) and runs every test. `.ci/run` calls exactly this.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
bash scripts/setup.sh
bash scripts/build.sh
B="${TAILOR_BUILD_DIR:-$ROOT/build}"
if [ ! -d ../shared/data/fashion-products ]; then
  echo "test: ../shared/data/fashion-products is missing (the real catalog beside the repo); tests that read it will fail" >&2
fi
ctest --test-dir "$B" --output-on-failure -j"$(nproc)" --timeout 900
# Every libFuzzer target for a few seconds (clang build in build-fuzz/; docs/reliability.md).
# TAILOR_FUZZ_SECONDS=0 leaves them out.
FUZZ_SECONDS="${TAILOR_FUZZ_SECONDS:-3}"
if [ "$FUZZ_SECONDS" != 0 ]; then
  bash fuzz/run.sh --all "$FUZZ_SECONDS"
fi
