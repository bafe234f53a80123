#!/usr/bin/env bash
# The whole GPU run in one go (tools/gpu/README in docs/gpu.md): build tailor against the CUDA
# libtorch, make the full-size model and HF's reference outputs, check tailor against them, then time
# tailor and HF+PEFT side by side. STAGE=parity|bench|profile|perf|all (perf: graph checks, tailor eager
# and graphed, the kernel profile and HF, without the parity step; final: the side-by-side table in
# one call); STAGE=real trains from scratch on the
# real catalog (tools/gpu/real_train.sh), STAGE=serve runs bench/serve_bench.sh on the xl shape,
# STAGE=train_check|train_scale (issue 15), quant_xl|quant_xxl (issue 19) and shift (issue 21): docs/gpu.md. Results: $OUT/*.jsonl, $OUT/parity.json.
set -uo pipefail
cd "$(dirname "$0")/../.."
STAGE=${STAGE:-all}
export PYTHONUNBUFFERED=1
echo "[$(date +%T)] build" >&2
[ "$STAGE" = shift ] && export TAILOR_GPU_TOOLS=0  # the tailor program alone
bash tools/gpu/build.sh || { echo "run.sh: the build with c10d (NCCL) failed; building without it"; TAILOR_WITH_C10D=OFF bash tools/gpu/build.sh; } || exit 1
export LD_LIBRARY_PATH=/tmp/tailor-deps/usr/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}
BENCH=/tmp/tailor-build/tailor_gpu_bench
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm,power.draw --format=csv
if [ "$STAGE" = real ]; then exec bash tools/gpu/real_train.sh; fi
if [ "$STAGE" = shift ]; then exec bash tools/gpu/shift_train.sh; fi  # issue 21: RUNS="recipe:split ..."
if [ "$STAGE" = train_check ] || [ "$STAGE" = train_scale ]; then
  # Issue 15: `tailor train` itself on 1 and 2 GPUs (NCCL, NVLink multicast off). train_check: the
  # captured step (CUDA graphs, all-reduce inside on 2 GPUs) against the eager one on the tiny model
  # and the real pairs, dropout off. train_scale: bench/train_bench.sh on the xl shape (SCALE_*).
  export NCCL_NVLS_ENABLE=0
  T=/tmp/tailor-build/tailor
  DATA=${REAL_DATA:-.gpu/real/dataset}
  if [ "$STAGE" = train_check ]; then
    $T init --preset tiny --out /tmp/tiny >/dev/null || exit 1
    for cfg in "off 1" "on 1" "on 2"; do
      set -- $cfg
      extra=""; [ "$2" -gt 1 ] && extra="--nproc $2"
      $T train --model /tmp/tiny --data $DATA --out /tmp/chk_$1_$2 --device cuda --batch-size 64 --max-steps 40 --epochs 1 \
        --lora-dropout 0 --cuda-graph $1 $extra 2>&1 | tr '\r' '\n' | grep -E "step|data-parallel|time:|rror" | head -8
    done
    python3 - <<'PY' | tee $OUT/train_check.txt
import json
def losses(d):
    return [json.loads(l)["loss"] for l in open(d + "/train_log.jsonl") if '"loss"' in l]
base = losses("/tmp/chk_off_1")
for d in ["/tmp/chk_on_1", "/tmp/chk_on_2"]:
    other = losses(d)
    worst = max(abs(a - b) / abs(a) for a, b in zip(base, other))
    print(d, "steps", len(other), "of", len(base), "largest relative loss difference to eager on 1 GPU: %.2e" % worst,
          "first", base[0], other[0], "last", base[-1], other[-1])
PY
    exit 0
  fi
  XL_MODEL_ONLY=1 python3 tools/gpu/xl_reference.py > /dev/null || exit 1
  # SCALE_NPROC, SCALE_CACHE, SCALE_BATCH, SCALE_STEPS; SCALE_EPOCH=1: whole epochs; SCALE_PER_GPU=1.
  extra=(); [ "${SCALE_EPOCH:-0}" = 1 ] && extra+=(--epoch); [ "${SCALE_PER_GPU:-0}" = 1 ] && extra+=(--per-gpu-batch)
  TAILOR=$T KEEP=/tmp/train_bench bash bench/train_bench.sh --model /tmp/xl --data $DATA --device cuda --nproc "${SCALE_NPROC:-1 2}" \
    --cache "${SCALE_CACHE:-on}" --batch "${SCALE_BATCH:-64}" --steps "${SCALE_STEPS:-60}" "${extra[@]}" | tee -a $OUT/train_bench.md
  (cd /tmp/train_bench && tar czf "$OUT/train_logs_$(date +%H%M%S).tgz" *.log */train_log.jsonl)
  exit 0
fi
if [ "$STAGE" = quant_xl ] || [ "$STAGE" = quant_xxl ]; then
  # Issue 19: `tailor train --quantize none|int8|nf4` (LoRA, the real pairs, cache on) with each run's
  # peak GPU memory, then tailor_quantize_check (logits and greedy answers against bf16, answers/s).
  # QUANT_FORMATS, QUANT_BATCH, QUANT_STEPS, QUANT_PAIRS; QUANT_SKIP_TRAIN=1 / QUANT_SKIP_CHECK=1.
  T=/tmp/tailor-build/tailor
  DATA=${REAL_DATA:-.gpu/real/dataset}
  if [ "$STAGE" = quant_xl ]; then
    M=/tmp/xl; B=${QUANT_BATCH:-32}; XL_MODEL_ONLY=1 python3 tools/gpu/xl_reference.py > /dev/null || exit 1
  else
    M=/tmp/xxl; B=${QUANT_BATCH:-8}; XXL_MODEL_ONLY=1 python3 tools/gpu/xl_reference.py > /dev/null || exit 1
  fi
  echo "[$(date +%T)] model ready: $(du -sh $M | cut -f1)" >&2
  if [ "${QUANT_SKIP_TRAIN:-0}" != 1 ]; then
    # One format at a time, each run's written model removed after it: xxl's merged model is 24 GB.
    for q in ${QUANT_FORMATS:-none int8 nf4}; do
      TAILOR=$T KEEP=/tmp/quant_bench bash bench/train_bench.sh --model $M --data $DATA --device cuda --batch $B \
        --steps ${QUANT_STEPS:-40} --skip 10 --quantize "$q" | tee -a $OUT/quant_train.md
      rm -rf /tmp/quant_bench/*/model
    done
    grep -h "rror" /tmp/quant_bench/*.log | tail -20
  fi
  if [ "${QUANT_SKIP_CHECK:-0}" != 1 ]; then
    echo "[$(date +%T)] check" >&2
    /tmp/tailor-build/tailor_quantize_check $M $DATA ${QUANT_PAIRS:-128} ${QUANT_CHECK_BATCH:-32} \
      "$(echo ${QUANT_FORMATS:-none int8 nf4} | tr ' ' ',')" | tee -a $OUT/quant_check.jsonl
  fi
  exit 0
fi
if [ "$STAGE" = choice ]; then
  # Choice answers (issue 17): the tiny model trained on the real catalog, evaluated free and by
  # choice with calibration (real_eval_*.json); its model comes back for the CPU numbers.
  PRESET=tiny PT=${PT:-30} EP=${EP:-6} bash tools/gpu/real_train.sh || exit 1
  (cd /tmp/real-run && tar czf "$OUT/real_model.tgz" model)
  exit 0
fi
if [ "$STAGE" = choice_xl ]; then
  # What choice answers cost against greedy ones, one photo's attributes per model call
  # (--batch-size 8), on the tiny model trained on the real catalog (TINY: STAGE=choice's, or one
  # carried in .gpu/realmodel) and on the xl shape with its values; greedy answers of the random xl
  # model never stop early, so they are held to 8 new tokens, about a real answer's length.
  T=/tmp/tailor-build/tailor
  TINY=${TINY:-/tmp/real-run/model}
  XL_MODEL_ONLY=1 python3 tools/gpu/xl_reference.py > /dev/null || exit 1
  cp "$TINY/tailor_task.json" /tmp/xl/
  for m in "$TINY" /tmp/xl; do
    echo "== $m"
    $T eval --model $m --data ${REAL_DATA:-.gpu/real/dataset} --device cuda --answer both --batch-size 8 --max-new-tokens 8 --report /tmp/speed.json 2>&1 \
      | tr '\r' '\n' | grep -E "answered|^all|==" | tee -a "$OUT/choice_speed.txt"
  done
  # The trainer's own step, timed by the GPU benchmark (issue 14): eager and captured.
  $BENCH train /tmp/xl 32 5 nocache eager | tee "$OUT/bench_train.jsonl"
  $BENCH train /tmp/xl 32,128 5 nocache graph | tee -a "$OUT/bench_train.jsonl"
  exit 0
fi
if [ "$STAGE" = serve ]; then
  # The serving benchmark (issue 5) on the blip2-flan-t5-xl shape: wrk travels as a .deb too.
  XL_MODEL_ONLY=1 python3 tools/gpu/xl_reference.py || exit 1
  export PATH=/tmp/tailor-deps/usr/bin:$PATH
  for mode in prompt all; do
    TAILOR=/tmp/tailor-build/tailor bash bench/serve_bench.sh --model /tmp/xl --device cuda --mode $mode \
      --image .gpu/parity_images/10003.jpg --duration ${SERVE_DURATION:-10s} --connections "${SERVE_CONNECTIONS:-1 8 32 128}" \
      --max-batch 128 --max-wait-ms 5 | tee -a $OUT/serve_bench.txt
  done
  exit 0
fi
if [ "$STAGE" = profile ] || [ "$STAGE" = perf ] || [ "$STAGE" = final ] || [ "$STAGE" = tailor ]; then export XL_MODEL_ONLY=1; fi
python3 tools/gpu/xl_reference.py || exit 1
if [ "$STAGE" = final ]; then
  # The side-by-side table of docs/benchmarks.md in one run that fits one 10-minute call: tailor
  # (CUDA graphs) and HF+PEFT back to back, then the graph checks and the kernel profile.
  IMG=.gpu/parity_images/10003.jpg
  T() { echo "[$(date +%T)] $*" >&2; }
  T tailor; $BENCH train /tmp/xl 8,32,64,128 10 nocache graph | tee $OUT/tailor_train.jsonl
  $BENCH train /tmp/xl 128,256 10 cache graph | tee -a $OUT/tailor_train.jsonl
  $BENCH generate /tmp/xl $IMG 1,32,128 10 graph | tee $OUT/tailor_generate.jsonl
  T hf; python3 tools/gpu/hf_bench.py train 8,32,64,128 10 | tee $OUT/hf_train.jsonl
  python3 tools/gpu/hf_bench.py generate 1,32,128 10 $IMG | tee $OUT/hf_generate.jsonl
  T checks; $BENCH traincheck /tmp/xl 32 6 | tee $OUT/checks.jsonl
  $BENCH gencheck /tmp/xl .gpu/parity_images bf16 | tee -a $OUT/checks.jsonl
  T profile; [ -x /tmp/tailor-build/tailor_gpu_profile ] && /tmp/tailor-build/tailor_gpu_profile /tmp/xl $IMG | tee $OUT/profile.txt
  T done; exit 0
fi
if [ "$STAGE" = tailor ]; then  # tailor's rows alone (graphs), e.g. to re-measure memory
  IMG=.gpu/parity_images/10003.jpg
  $BENCH train /tmp/xl 8,32,64,128 10 nocache graph | tee $OUT/tailor_train.jsonl
  $BENCH train /tmp/xl 128,256 10 cache graph | tee -a $OUT/tailor_train.jsonl
  $BENCH generate /tmp/xl $IMG 1,32,128 10 graph | tee $OUT/tailor_generate.jsonl
  exit 0
fi
if [ "$STAGE" = perf ]; then
  # Correctness of the CUDA-graph paths first (greedy ids, training losses), then the numbers.
  IMG=.gpu/parity_images/10003.jpg
  $BENCH gencheck /tmp/xl .gpu/parity_images f32 | tee $OUT/checks.jsonl
  $BENCH gencheck /tmp/xl .gpu/parity_images bf16 | tee -a $OUT/checks.jsonl
  $BENCH traincheck /tmp/xl 32 6 | tee -a $OUT/checks.jsonl
  $BENCH train /tmp/xl ${TRAIN_BATCHES:-8,32,64,128} 10 nocache graph | tee $OUT/tailor_train.jsonl
  $BENCH train /tmp/xl 128,256 10 cache graph | tee -a $OUT/tailor_train.jsonl
  $BENCH train /tmp/xl 32,128 5 nocache eager | tee -a $OUT/tailor_train.jsonl
  $BENCH generate /tmp/xl $IMG 1,32,128 10 graph | tee $OUT/tailor_generate.jsonl
  $BENCH generate /tmp/xl $IMG 1,128 5 eager | tee -a $OUT/tailor_generate.jsonl
  [ -x /tmp/tailor-build/tailor_gpu_profile ] && /tmp/tailor-build/tailor_gpu_profile /tmp/xl $IMG | tee $OUT/profile.txt
  if [ -z "${NO_HF:-}" ]; then
    python3 tools/gpu/hf_bench.py train 8,32,64,128 10 | tee $OUT/hf_train.jsonl
    python3 tools/gpu/hf_bench.py generate 1,32,128 10 $IMG | tee $OUT/hf_generate.jsonl
  fi
  exit 0
fi
if [ "$STAGE" != bench ] && [ "$STAGE" != profile ]; then
  for dt in f32 bf16; do $BENCH parity /tmp/xl /tmp/xl_inputs.safetensors /tmp/xl_tailor_$dt.safetensors $dt || exit 1; done
  python3 tools/gpu/compare.py | tee $OUT/parity.json
fi
if [ "$STAGE" = profile ]; then
  $BENCH train /tmp/xl 32,128 5 nocache | tee $OUT/tailor_train.jsonl
  $BENCH train /tmp/xl 128,256 5 cache | tee -a $OUT/tailor_train.jsonl
  $BENCH generate /tmp/xl .gpu/parity_images/10003.jpg 1,32,128 10 | tee $OUT/tailor_generate.jsonl
  exit 0
fi
if [ "$STAGE" != parity ]; then
  IMG=.gpu/parity_images/10003.jpg
  $BENCH train /tmp/xl 8,32,64,128 10 nocache | tee $OUT/tailor_train.jsonl
  $BENCH train /tmp/xl 32,128,256 10 cache | tee -a $OUT/tailor_train.jsonl
  $BENCH generate /tmp/xl $IMG 1,32,128 10 | tee $OUT/tailor_generate.jsonl
  python3 tools/gpu/hf_bench.py train 8,32,64,128 10 | tee $OUT/hf_train.jsonl
  python3 tools/gpu/hf_bench.py generate 1,32,128 10 $IMG | tee $OUT/hf_generate.jsonl
fi
