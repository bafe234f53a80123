#!/usr/bin/env bash
# Configures (once) and builds tailor into build/ (or $TAILOR_BUILD_DIR). Extra args go to cmake --build;
# $TAILOR_CMAKE_ARGS to the first configure (the container: -DTAILOR_BUILD_TESTS=OFF ...).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
B="${TAILOR_BUILD_DIR:-$ROOT/build}"
if [ ! -f "$B/build.ninja" ]; then
  cmake -S "$ROOT" -B "$B" -G Ninja -DCMAKE_BUILD_TYPE=Release ${TAILOR_CMAKE_ARGS:-} >/dev/null
fi
cmake --build "$B" -j"$(nproc)" "$@"
