#!/usr/bin/env bash
# Builds tailor on the GPU machine against pip's CUDA libtorch. That machine has no Debian dev
# packages and no network: the Debian packages travel as .deb files in .gpu/debs (fetch them here with
# tools/gpu/fetch_debs.sh) and are unpacked into a prefix; SentencePiece travels prebuilt in .gpu/spm.
set -euo pipefail
cd "$(dirname "$0")/../.."
DEPS=/tmp/tailor-deps
if [ ! -f $DEPS/.done ]; then
  mkdir -p $DEPS
  for f in .gpu/debs/*.deb; do dpkg -x "$f" $DEPS; done
  touch $DEPS/.done
fi
export PKG_CONFIG_SYSROOT_DIR=$DEPS
export PKG_CONFIG_LIBDIR=$DEPS/usr/lib/x86_64-linux-gnu/pkgconfig:$DEPS/usr/share/pkgconfig
export PKG_CONFIG=$DEPS/usr/bin/pkgconf
export LD_LIBRARY_PATH=$DEPS/usr/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}
TORCH_CMAKE=$(python3 -c 'import torch;print(torch.utils.cmake_prefix_path)')
B=/tmp/tailor-build
# Ubuntu links --as-needed: the system protobuf would be dropped before the static SentencePiece needs it.
# TAILOR_WITH_C10D=ON builds the NCCL backend (pip's torch has no gloo headers); OFF leaves c10d out.
C10D=${TAILOR_WITH_C10D:-ON}
if [ ! -f $B/build.ninja ] || ! grep -q "TAILOR_WITH_C10D:BOOL=$C10D" $B/CMakeCache.txt; then
  cmake -S . -B $B -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_PREFIX_PATH="$TORCH_CMAKE;$DEPS/usr" -DPKG_CONFIG_EXECUTABLE=$DEPS/usr/bin/pkgconf \
    -DSPM_PREFIX="$PWD/.gpu/spm" -DTAILOR_WITH_CAIRO=OFF -DTAILOR_BUILD_TESTS=OFF -DTAILOR_BUILD_BENCH=OFF \
    -DTAILOR_GPU_TOOLS=ON -DCMAKE_CUDA_ARCHITECTURES=90 -DTORCH_CUDA_ARCH_LIST=9.0 \
    -DCMAKE_EXE_LINKER_FLAGS="-Wl,--no-as-needed" -DTAILOR_WITH_C10D=$C10D 2>&1 | tail -5
fi
# The log is filtered after the build: a grep that finds nothing (nothing to rebuild) is no failure.
# TAILOR_GPU_TOOLS=0: the tailor program alone (runs that only call `tailor ...`, e.g. STAGE=shift).
TOOLS=${TAILOR_GPU_TOOLS:-1}
TARGETS="tailor"; [ "$TOOLS" = 1 ] && TARGETS="tailor tailor_gpu_bench"
if ! cmake --build $B -j"$(nproc)" --target $TARGETS > $B/build.log 2>&1; then
  grep -E "error|FAILED" $B/build.log | head -40
  exit 1
fi
grep -E "warning: unused|Linking" $B/build.log | head -40 || true
ls -la $B/tailor
[ "$TOOLS" = 1 ] || exit 0
ls -la $B/tailor_gpu_bench
# The Kineto profiler tool and the quantization check (the allocator's statistics) are optional:
# their APIs move between libtorch versions.
cmake --build $B -j"$(nproc)" --target tailor_gpu_profile tailor_quantize_check 2>&1 | grep -E "error|FAILED" | head -20 || true
