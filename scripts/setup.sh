#!/usr/bin/env bash
# Installs everything tailor needs on Debian 12 and builds the one dependency Debian can't give us
# usable as-is (SentencePiece: Debian's shared lib embeds protobuf 3.14 and crashes next to libtorch).
# Idempotent: a second run only checks.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"

# --build-only: what building the `tailor` program alone needs (the container's build stage, Dockerfile):
# no test, benchmark, fuzzing or browser packages.
BUILD_ONLY=0
[ "${1:-}" = --build-only ] && BUILD_ONLY=1

PKGS=(build-essential cmake ninja-build pkg-config ccache
      libtorch-dev libopenblas-dev
      nlohmann-json3-dev libcli11-dev libfmt-dev
      libturbojpeg0-dev libpng-dev libcairo2-dev
      libcurl4-openssl-dev libssl-dev libcpp-httplib-dev
      libprotobuf-dev protobuf-compiler dpkg-dev
      libgloo-dev zlib1g-dev
      libsqlite3-dev)  # tailor review's database
if [ "$BUILD_ONLY" = 0 ]; then
  PKGS+=(libgtest-dev libgmock-dev libbenchmark-dev wrk
         clang libclang-rt-dev  # fuzz/: libFuzzer targets with ASan + UBSan
         sqlite3 chromium)      # tailor review's tests: the database shell, a headless browser
fi

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# SentencePiece from Debian's own source package, static, against the system protobuf.
SPM_PREFIX="$ROOT/.deps/sentencepiece"
if [ ! -f "$SPM_PREFIX/lib/libsentencepiece.a" ]; then
  if ! grep -rqs "^Types: deb-src" /etc/apt/sources.list.d/ ; then
    $SUDO tee /etc/apt/sources.list.d/tailor-deb-src.sources >/dev/null <<'SRC'
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
    $SUDO apt-get update -qq
  fi
  work="$ROOT/.deps/src"; rm -rf "$work"; mkdir -p "$work"
  (cd "$work" && apt-get source -qq --download-only 2>/dev/null sentencepiece >/dev/null && dpkg-source -x --no-check sentencepiece_*.dsc spm >/dev/null)
  # Debian patches the static library away; put it back.
  (cd "$work/spm" && patch -R -p1 -s < debian/patches/disable-static-library.patch)
  # init.h reaches into the bundled protobuf-lite even when the system protobuf is chosen.
  sed -i 's|"third_party/protobuf-lite/google/protobuf/message_lite.h"|<google/protobuf/message_lite.h>|' "$work/spm/src/init.h"
  cmake -S "$work/spm" -B "$work/build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DSPM_USE_BUILTIN_PROTOBUF=OFF -DSPM_ENABLE_SHARED=OFF -DSPM_ENABLE_TCMALLOC=OFF \
    -DCMAKE_POSITION_INDEPENDENT_CODE=ON -DCMAKE_INSTALL_PREFIX="$SPM_PREFIX" >/dev/null
  cmake --build "$work/build" --target install -j"$(nproc)" > "$ROOT/.deps/spm-build.log" 2>&1 || { tail -30 "$ROOT/.deps/spm-build.log"; exit 1; }
  rm -rf "$work"
  echo "setup: SentencePiece built into $SPM_PREFIX"
fi
