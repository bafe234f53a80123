#!/usr/bin/env bash
# The whole GPU run in one go (tools/gpu/README in docs/gpu.md): build tailor against the CUDA
# libtorch, make the full-size model and HF's reference outputs, check tailor against them, then time
# tailor and HF+PEFT side by side. STAGE=parity|bench|all. Results: $OUT/*.jsonl, $OUT/parity.json.
set -uo pipefail
cd "$(dirname "$0")/../.."
STAGE=${STAGE:-all}
export PYTHONUNBUFFERED=1
bash tools/gpu/build.sh || exit 1
export LD_LIBRARY_PATH=/tmp/tailor-deps/usr/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}
BENCH=/tmp/tailor-build/tailor_gpu_bench
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm,power.draw --format=csv
if [ "$STAGE" = profile ]; then export XL_MODEL_ONLY=1; fi
python3 tools/gpu/xl_reference.py || exit 1
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
