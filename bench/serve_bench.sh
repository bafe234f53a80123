#!/usr/bin/env bash
# Serving benchmark: starts `tailor serve` on a model and drives POST /invocations with wrk, posting a
# real catalog JPEG; prints requests/s and p50/p90/p99 latency for each load level.
#
#   bench/serve_bench.sh [--model DIR] [--device cpu|cuda] [--duration 20s] [--connections "1 8 32"]
#                        [--mode prompt|all] [--image FILE] [--max-batch N] [--max-wait-ms N]
#
# Without --model it builds the tiny model with `tailor init --preset tiny --out <tmp>/model`.
# mode prompt: JSON {"image": base64, "prompt": <one question>} (one question per request);
# mode all:    raw image/jpeg body, every attribute asked in one request.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
TAILOR="${TAILOR:-$ROOT/build/tailor}"
MODEL=""
DEVICE=cpu
DURATION=20s
CONNECTIONS="1 8 32"
MODE=prompt
IMAGE="$ROOT/../shared/data/fashion-products/images/10000.jpg"
MAX_BATCH=32
MAX_WAIT_MS=5
PORT="${PORT:-18080}"
while [ $# -gt 0 ]; do
  case "$1" in
    --model) MODEL="$2"; shift 2 ;;
    --device) DEVICE="$2"; shift 2 ;;
    --duration) DURATION="$2"; shift 2 ;;
    --connections) CONNECTIONS="$2"; shift 2 ;;
    --mode) MODE="$2"; shift 2 ;;
    --image) IMAGE="$2"; shift 2 ;;
    --max-batch) MAX_BATCH="$2"; shift 2 ;;
    --max-wait-ms) MAX_WAIT_MS="$2"; shift 2 ;;
    --port) PORT="$2"; shift 2 ;;
    *) echo "serve_bench: unknown argument $1" >&2; exit 2 ;;
  esac
done
NAME=serve_bench
# shellcheck source=bench/serve_common.sh
source "$ROOT/bench/serve_common.sh"
serve_prologue

# Request body: a file wrk's Lua script reads once.
if [ "$MODE" = all ]; then
  cp "$IMAGE" "$WORK/body"
  CONTENT_TYPE="image/jpeg"
else
  { printf '{"image": "'; base64 -w0 "$IMAGE"; printf '", "prompt": "What is the sleeve length of the shirt in this picture?", "parameters": {"max_new_tokens": 20, "num_beams": 1}}'; } >"$WORK/body"
  CONTENT_TYPE="application/json"
fi
cat >"$WORK/post.lua" <<LUA
local f = assert(io.open("$WORK/body", "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "$CONTENT_TYPE"
local bad = 0
response = function(status, headers, body)
  if status ~= 200 then bad = bad + 1 end
end
done = function(summary, latency, requests)
  io.write(string.format("RESULT requests=%d rps=%.2f p50_ms=%.2f p90_ms=%.2f p99_ms=%.2f errors=%d non200=%d\n",
    summary.requests, summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(90) / 1000, latency:percentile(99) / 1000,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    summary.errors.status))
end
LUA

serve_start --device "$DEVICE" --max-batch "$MAX_BATCH" --max-wait-ms "$MAX_WAIT_MS" --queue 1024

echo "serve_bench: model=$MODEL device=$DEVICE mode=$MODE image=$(basename "$IMAGE") ($(stat -c %s "$IMAGE") bytes) max_batch=$MAX_BATCH max_wait_ms=$MAX_WAIT_MS duration=$DURATION"
batch_stats() { curl -fs "http://127.0.0.1:$PORT/metrics" | awk '/^tailor_batch_size_sum /{s=$2} /^tailor_batch_size_count /{c=$2} END{print s, c}'; }
printf "%-12s %10s %10s %10s %10s %11s %8s\n" connections req/s p50_ms p90_ms p99_ms mean_batch errors
for c in $CONNECTIONS; do
  threads=$(( c < 4 ? c : 4 ))
  read -r s0 n0 <<<"$(batch_stats)"
  line=$(wrk -t"$threads" -c"$c" -d"$DURATION" --timeout 60s -s "$WORK/post.lua" "http://127.0.0.1:$PORT/invocations" | grep '^RESULT')
  read -r s1 n1 <<<"$(batch_stats)"
  mean_batch=$(awk -v a="$s0" -v b="$s1" -v x="$n0" -v y="$n1" 'BEGIN{ if (y > x) printf "%.2f", (b - a) / (y - x); else print "-" }')
  get() { echo "$line" | sed -n "s/.* $1=\([^ ]*\).*/\1/p"; }
  printf "%-12s %10s %10s %10s %10s %11s %8s\n" "$c" "$(get rps)" "$(get p50_ms)" "$(get p90_ms)" "$(get p99_ms)" "$mean_batch" "$(( $(get errors) + $(get non200) ))"
done
