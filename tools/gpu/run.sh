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
python3 tools/gpu/xl_reference.py || exit 1
if [ "$STAGE" != bench ]; then
  for dt in f32 bf16; do $BENCH parity /tmp/xl /tmp/xl_inputs.safetensors /tmp/xl_tailor_$dt.safetensors $dt || exit 1; done
  python3 tools/gpu/compare.py | tee $OUT/parity.json
fi
if [ "$STAGE" != parity ]; then
  IMG=.gpu/parity_images/10003.jpg
  for b in 8 32 64 128; do $BENCH train /tmp/xl $b 10 nocache; done | tee $OUT/tailor_train.jsonl
  for b in 32 128 256; do $BENCH train /tmp/xl $b 10 cache; done | tee -a $OUT/tailor_train.jsonl
  for b in 1 32 128; do $BENCH generate /tmp/xl $IMG $b 10; done | tee $OUT/tailor_generate.jsonl
  python3 tools/gpu/hf_bench.py train 8,32,64,128 10 | tee $OUT/hf_train.jsonl
  python3 tools/gpu/hf_bench.py generate 1,32,128 10 $IMG | tee $OUT/hf_generate.jsonl
fi
