#!/usr/bin/env bash
# On the GPU machine: make the tiny parity fixtures with HF transformers; results land in $OUT.
set -euo pipefail
cd "$(dirname "$0")/../.."
PYTHONUNBUFFERED=1 python3 tools/parity/make_fixtures.py --images .gpu/parity_images --out /tmp/parity_tiny
cd /tmp && tar czf "$OUT/parity_tiny.tgz" parity_tiny && ls -la parity_tiny
