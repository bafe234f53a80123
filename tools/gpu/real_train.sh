#!/usr/bin/env bash
# Real data on the GPU machine (issue 4): a model trained from scratch on the catalog's Shirts and
# Tshirts, with image-side pre-training, then evaluated per attribute. Run after tools/gpu/build.sh.
# The prepared pairs and their photos travel in .gpu/real (made here by tools/gpu/fetch_real.sh).
#   PRESET=small PT=15 EP=4 bash tools/gpu/real_train.sh
set -uo pipefail
cd "$(dirname "$0")/../.."
export LD_LIBRARY_PATH=/tmp/tailor-deps/usr/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}
T=/tmp/tailor-build/tailor
PRESET=${PRESET:-small}
PT=${PT:-15}
EP=${EP:-4}
OUT=${OUT:-/tmp/real-out}
mkdir -p "$OUT"
[ -f .gpu/real/dataset/train.jsonl ] || { echo "real_train: .gpu/real is missing (tools/gpu/fetch_real.sh, then carry it)" >&2; exit 1; }
rm -rf /tmp/real-model /tmp/real-run
$T init --preset "$PRESET" --init fan-in --out /tmp/real-model || exit 1
start=$(date +%s)
$T train --model /tmp/real-model --data .gpu/real/dataset --out /tmp/real-run --device cuda --full \
  --pretrain-epochs "$PT" --pretrain-batch-size 64 --freeze vision,qformer --epochs "$EP" --lr 1e-3 --batch-size 64 \
  2>&1 | tr '\r' '\n' | grep -v "steps, .*ETA" | tail -40
echo "real_train: train took $(( $(date +%s) - start )) s"
cp /tmp/real-run/train_log.jsonl "$OUT/real_train_log.jsonl" 2>/dev/null
# Choice answers (with calibration) and free ones side by side: real_eval.json and real_eval_free.json.
$T eval --model /tmp/real-run/model --data .gpu/real/dataset --device cuda --answer both --report "$OUT/real_eval.json" 2>&1 \
  | tr '\r' '\n' | grep -v "pairs, .*ETA" | tee "$OUT/real_eval.txt" | grep -v "^ "
