# Sourced by bench/serve_bench.sh and bench/serve_soak.sh: the checks, the scratch directory (removed
# with the server on exit), the tiny model when none is given, and `tailor serve` started until its
# /ping answers. The caller sets NAME (for messages), TAILOR, IMAGE, MODEL and PORT.

serve_prologue() {
  command -v wrk >/dev/null || { echo "$NAME: wrk is not installed (scripts/setup.sh installs it)" >&2; exit 1; }
  [ -x "$TAILOR" ] || { echo "$NAME: $TAILOR not built (ninja -C build tailor)" >&2; exit 1; }
  [ -f "$IMAGE" ] || { echo "$NAME: image $IMAGE not found" >&2; exit 1; }
  WORK="$(mktemp -d)"
  SERVER_PID=""
  trap serve_cleanup EXIT
  if [ -z "$MODEL" ]; then
    MODEL="$WORK/model"
    echo "$NAME: building the tiny model in $MODEL"
    "$TAILOR" init --preset tiny --out "$MODEL" >"$WORK/init.log" 2>&1 || { cat "$WORK/init.log" >&2; exit 1; }
  fi
}

serve_cleanup() {
  if [ -n "$SERVER_PID" ]; then kill -TERM "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
  rm -rf "$WORK"
}

# serve_start FLAGS...: `tailor serve --model $MODEL --port $PORT FLAGS`, its log in $WORK/server.log.
serve_start() {
  "$TAILOR" serve --model "$MODEL" --port "$PORT" "$@" 2>"$WORK/server.log" &
  SERVER_PID=$!
  for _ in $(seq 1 600); do
    if curl -fs "http://127.0.0.1:$PORT/ping" >/dev/null 2>&1; then return 0; fi
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then echo "$NAME: server exited:" >&2; cat "$WORK/server.log" >&2; exit 1; fi
    sleep 0.5
  done
  echo "$NAME: model did not load in 300 s" >&2
  exit 1
}
