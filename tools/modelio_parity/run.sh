#!/usr/bin/env bash
# Tokenizer + image-processor parity with HF, in two steps.
#   here:  tools/modelio_parity/run.sh dump [DIR]   builds dump.cpp against build/libtailor_base.a and writes DIR
#   GPU:   cd DIR && python3 compare.py             (carry DIR; it prints every mismatch and the max differences)
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
DIR="${2:-$ROOT/.gpu/modelio-parity}"
SPM="${SPM_PREFIX:-$ROOT/.deps/sentencepiece}"
[ -d "$SPM" ] || SPM=/work/main/.deps/sentencepiece
mkdir -p "$DIR"
g++ -O2 -std=c++17 -I"$ROOT/src" -I"$SPM/include" "$ROOT/tools/modelio_parity/dump.cpp" -o "$DIR/dump" \
  "$ROOT/build/libtailor_base.a" "$SPM/lib/libsentencepiece_train.a" "$SPM/lib/libsentencepiece.a" -lprotobuf -lfmt -lpthread
cp "$ROOT/tools/modelio_parity/compare.py" "$DIR/"
(cd "$DIR" && ./dump && rm dump)
echo "wrote $DIR; on the GPU machine: cd <carried dir> && python3 compare.py"
