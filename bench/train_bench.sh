#!/usr/bin/env bash
# Training benchmark: runs `tailor train` itself (the command users type) for each configuration and
# reads its train_log.jsonl: steady-state samples/s (the steps after --skip, from each step's
# wall time), time to the first step and the parts of the run's wall time.
#
#   bench/train_bench.sh --model DIR --data DIR [--device cpu|cuda] [--nproc "1 2"] [--cache "on off"]
#                        [--batch 64] [--per-gpu-batch] [--steps 60] [--skip 20] [--epoch] [--graph auto|on|off]
#                        [--quantize "none int8 nf4"] [-- more tailor train flags]
#
# --per-gpu-batch: --batch is each GPU's (the global batch grows with the ranks), else it is global
# (each rank gets its share). --epoch: one whole epoch with its evaluation instead of --steps.
# --quantize: the frozen weights' formats to run (tailor train --quantize; default: the model as it is).
# On a GPU, the peak memory column is the largest memory.used nvidia-smi saw during the run (sampled
# every 100 ms; the whole card, so run alone): what the card must have, CUDA context included.
# Prints one markdown table row per run; each run's log stays in $KEEP (default: a temporary dir).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
TAILOR="${TAILOR:-$ROOT/build/tailor}"
MODEL="" DATA="" DEVICE=cpu NPROC="1" CACHE="on" BATCH=64 PER_GPU=0 STEPS=60 SKIP=20 EPOCH=0 GRAPH=auto QUANT=auto
MORE=()
while [ $# -gt 0 ]; do
  case "$1" in
    --model) MODEL="$2"; shift 2 ;;
    --data) DATA="$2"; shift 2 ;;
    --device) DEVICE="$2"; shift 2 ;;
    --nproc) NPROC="$2"; shift 2 ;;
    --cache) CACHE="$2"; shift 2 ;;
    --batch) BATCH="$2"; shift 2 ;;
    --per-gpu-batch) PER_GPU=1; shift ;;
    --steps) STEPS="$2"; shift 2 ;;
    --skip) SKIP="$2"; shift 2 ;;
    --epoch) EPOCH=1; shift ;;
    --graph) GRAPH="$2"; shift 2 ;;
    --quantize) QUANT="$2"; shift 2 ;;
    --) shift; MORE=("$@"); break ;;
    *) echo "train_bench: unknown argument $1" >&2; exit 2 ;;
  esac
done
[ -n "$MODEL" ] && [ -n "$DATA" ] || { echo "train_bench: --model and --data are required" >&2; exit 2; }
[ -x "$TAILOR" ] || { echo "train_bench: $TAILOR not built (ninja -C build tailor)" >&2; exit 1; }
KEEP="${KEEP:-$(mktemp -d)}"
mkdir -p "$KEEP"

# The largest memory.used (MiB) nvidia-smi reports while the command runs; "-" on the CPU.
run_watching_memory() {
  local log="$1"; shift
  if [ "$DEVICE" = cpu ] || ! command -v nvidia-smi >/dev/null; then
    "$@" > "$log" 2>&1; local rc=$?; echo "-" > "$log.peak"; return $rc
  fi
  nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 100 > "$log.mem" 2>/dev/null &
  local watcher=$!
  "$@" > "$log" 2>&1; local rc=$?
  kill $watcher 2>/dev/null; wait $watcher 2>/dev/null || true
  sort -n "$log.mem" | tail -1 > "$log.peak"
  return $rc
}

echo "| ranks | cache | quantize | step | batch (global) | samples/s (steps > $SKIP) | per GPU | to first step s | steps | total s | evaluation s | outputs s | peak GPU MiB |"
echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|"
for quant in $QUANT; do
for cache in $CACHE; do
  for n in $NPROC; do
    global=$BATCH
    [ "$PER_GPU" = 1 ] && global=$((BATCH * n))
    name="n${n}_cache${cache}_b${global}_q${quant}"
    out="$KEEP/$name"
    rm -rf "$out"
    args=(train --model "$MODEL" --data "$DATA" --out "$out" --device "$DEVICE" --batch-size "$global" --cache "$cache"
          --cuda-graph "$GRAPH" --epochs 1 --quantize "$quant")
    [ "$EPOCH" = 1 ] || args+=(--max-steps "$STEPS")
    [ "$n" -gt 1 ] && args+=(--nproc "$n")
    if ! run_watching_memory "$out.log" "$TAILOR" "${args[@]}" "${MORE[@]}"; then
      echo "train_bench: $name failed; the end of $out.log:" >&2
      tail -20 "$out.log" >&2
      continue
    fi
    python3 - "$out/train_log.jsonl" "$n" "$cache" "$global" "$SKIP" "$quant" "$(cat "$out.log.peak")" <<'PY'
import json, sys
path, n, cache, batch, skip, quant, peak = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), sys.argv[6], sys.argv[7]
steps, times = [], None
for line in open(path):
    j = json.loads(line)
    if j.get("stage") == "times":
        times = j
    elif "loss" in j and "step_seconds" in j:
        steps.append(j)
late = [s for s in steps if s["step"] > skip] or steps
sps = sum(s["samples"] for s in late) / sum(s["step_seconds"] for s in late)
kind = "captured" if "captured" in times["step_kind"] else "eager"
print(f"| {n} | {cache} | {quant} | {kind} | {batch} | {sps:.1f} | {sps / n:.1f} | {times['to_first_step_s']:.1f} | {len(steps)} | "
      f"{times['total_s']:.1f} | {times['evaluation_s']:.1f} | {times['outputs_s']:.1f} | {peak} |")
PY
  done
done
done
