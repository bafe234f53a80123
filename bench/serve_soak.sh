#!/usr/bin/env bash
# Soak benchmark (docs/reliability.md): `tailor serve` with the tiny model under a hostile mix, all at
# once for --duration seconds:
#   - wrk, 8 connections, cycling through good requests (JSON + base64 catalog photo, raw JPEG) and
#     bad ones (invalid JSON, bad base64, unknown field, wrong type, empty body, a PNG whose header
#     claims 30000x30000);
#   - bench/serve_soak.py: 300 slow clients dripping a body a byte a second, 100 idle connections,
#     48 MiB chunked bodies, a gzip body inflating to 200 MiB, bodies without a length, 7000x7000 PNGs;
#   - a /ping probe every 200 ms and the server's RSS every 0.5 s.
# Prints wrk's status histogram, what each hostile client got, /ping latency and RSS.
#
#   bench/serve_soak.sh [--duration 60] [--slow 300] [--idle 100] [--model DIR] [--http-threads 16]
#                       [--serve-args "--max-inflight-mpixels 50 ..."]
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
TAILOR="${TAILOR:-$ROOT/build/tailor}"
DURATION=60
SLOW=300
IDLE=100
MODEL=""
HTTP_THREADS=16
SERVE_ARGS=""
IMAGE="$ROOT/../shared/data/fashion-products/images/10000.jpg"
PORT="${PORT:-18081}"
while [ $# -gt 0 ]; do
  case "$1" in
    --duration) DURATION="$2"; shift 2 ;;
    --slow) SLOW="$2"; shift 2 ;;
    --idle) IDLE="$2"; shift 2 ;;
    --model) MODEL="$2"; shift 2 ;;
    --http-threads) HTTP_THREADS="$2"; shift 2 ;;
    --serve-args) SERVE_ARGS="$2"; shift 2 ;;
    --port) PORT="$2"; shift 2 ;;
    *) echo "serve_soak: unknown argument $1" >&2; exit 2 ;;
  esac
done
NAME=serve_soak
# shellcheck source=bench/serve_common.sh
source "$ROOT/bench/serve_common.sh"
serve_prologue

# wrk's mix: one file per body, listed with its content type and route.
B="$WORK/bodies"
mkdir -p "$B"
{ printf '{"image": "'; base64 -w0 "$IMAGE"; printf '", "prompt": "What is the sleeve length of the shirt in this picture?"}'; } >"$B/good.json"
cp "$IMAGE" "$B/good.jpg"
printf '{"image": ' >"$B/bad_json"
printf '{"image": "iVBO*w0K"}' >"$B/bad_base64"
printf '{"image": "aGVsbG8=", "promt": "x"}' >"$B/unknown_field"
printf 'hello' >"$B/text"
: >"$B/empty"
python3 - "$B/header_bomb.png" <<'PY'
import struct, sys, zlib
def chunk(tag, data): return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))
open(sys.argv[1], "wb").write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 30000, 30000, 8, 2, 0, 0, 0)) +
                              chunk(b"IDAT", zlib.compress(b"\x00\x00\x00\x00")) + chunk(b"IEND", b""))
PY
cat >"$B/mix.txt" <<MIX
good.json application/json /invocations
good.jpg image/jpeg /describe
bad_json application/json /invocations
good.json application/json /invocations
bad_base64 application/json /invocations
unknown_field application/json /describe
good.jpg image/jpeg /invocations
text text/plain /invocations
empty image/png /invocations
header_bomb.png image/png /invocations
MIX

# shellcheck disable=SC2086  # SERVE_ARGS is a list of flags
serve_start --http-threads "$HTTP_THREADS" --request-deadline-s 10 $SERVE_ARGS
echo "serve_soak: tiny model, ${DURATION} s, wrk 8 connections, $SLOW slow + $IDLE idle connections, http-threads $HTTP_THREADS, $(nproc) cores${SERVE_ARGS:+, $SERVE_ARGS}"
python3 "$ROOT/bench/serve_soak.py" --port "$PORT" --pid "$SERVER_PID" --seconds "$DURATION" --slow "$SLOW" \
  --idle "$IDLE" >"$WORK/hostile.txt" &
HOSTILE_PID=$!
sleep 2  # the slow clients connect first
wrk -t2 -c8 -d"$((DURATION - 4))s" --timeout 30s -s "$ROOT/bench/serve_soak.lua" "http://127.0.0.1:$PORT" -- "$B" \
  | sed -n '/^wrk:/,$p'
wait "$HOSTILE_PID"
cat "$WORK/hostile.txt"
echo "server: $(grep -c '"status":5' "$WORK/server.log" || true) responses 5xx logged; $(grep -c '"status":500' "$WORK/server.log" || true) were 500"
