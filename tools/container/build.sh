#!/usr/bin/env bash
# Builds the tailor image (Dockerfile) with podman on the local base from base.sh, niced (the build
# stage compiles tailor). Usage: tools/container/build.sh [IMAGE] (default localhost/tailor:latest).
# $TAILOR_BASE_IMAGE: another base (debian:bookworm-slim where a registry is reachable).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
IMAGE="${1:-localhost/tailor:latest}"
BASE="${TAILOR_BASE_IMAGE:-localhost/debian:bookworm-minbase}"
source "$ROOT/tools/container/podman_opts.sh"

[ "$BASE" != localhost/debian:bookworm-minbase ] || bash "$ROOT/tools/container/base.sh" "$BASE"
start=$(date +%s)
nice "${PODMAN[@]}" build "${ULIMITS[@]}" --network host --layers --build-arg "BASE=$BASE" -t "$IMAGE" "$ROOT"
echo "build: $IMAGE in $(( $(date +%s) - start )) s, $("${PODMAN[@]}" image inspect --format '{{.Size}}' "$IMAGE" | awk '{printf "%.0f MB", $1/1e6}')"
