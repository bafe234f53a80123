#!/usr/bin/env bash
# Builds the libFuzzer targets (fuzz/*_fuzz.cpp) with clang, ASan and UBSan into build-fuzz/ (or
# $TAILOR_FUZZ_BUILD_DIR), apart from the gcc build: fuzz/build.sh [target...] (default: all).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
B="${TAILOR_FUZZ_BUILD_DIR:-$ROOT/build-fuzz}"
command -v clang++ >/dev/null || { echo "fuzz/build.sh: clang++ is not installed (apt-get install clang)" >&2; exit 1; }
if [ ! -f "$B/build.ninja" ]; then
  CXX=clang++ cmake -S "$ROOT/fuzz" -B "$B" -G Ninja -DCMAKE_BUILD_TYPE=None >/dev/null
fi
if [ $# -gt 0 ]; then
  cmake --build "$B" -j"$(nproc)" --target "$@"
else
  cmake --build "$B" -j"$(nproc)"
fi
