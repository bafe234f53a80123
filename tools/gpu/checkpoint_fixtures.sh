#!/usr/bin/env bash
# On the GPU machine: the checkpoint-form fixtures written and re-read by HF transformers; lands in $OUT.
# Needs the four photos of tools/parity/make_checkpoint_fixtures.py's IDS in .gpu/parity_images/.
set -euo pipefail
cd "$(dirname "$0")/../.."
PYTHONUNBUFFERED=1 python3 tools/parity/make_checkpoint_fixtures.py --images .gpu/parity_images \
  --spiece tests/fixtures/parity_tiny/spiece.model --out /tmp/checkpoint_forms
cd /tmp && tar czf "$OUT/checkpoint_forms.tgz" checkpoint_forms && du -sh checkpoint_forms/*
