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
