#!/usr/bin/env bash
# Sets everything up (idempotent), builds tailor and runs the whole pipeline offline: synthetic
# catalog -> prepare -> tiny model -> train -> eval -> descriptions -> HTML report in demo-out/.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
bash scripts/setup.sh
bash scripts/build.sh --target tailor
B="${TAILOR_BUILD_DIR:-$ROOT/build}"
"$B/tailor" demo "$@"
