#!/usr/bin/env bash
# Runs the image as SageMaker does, against a fake /opt/ml mounted from a temporary directory:
#   1. the job's inputs made by the image's own tailor (`init --preset tiny`, `synth`);
#   2. `IMAGE train`, stopped with SIGTERM (`podman stop`) after its first steps: it must checkpoint,
#      write the reason to output/failure and exit promptly;
#   3. `IMAGE train` again, as a managed-spot restart: resumes and writes the model to /opt/ml/model;
#   4. `IMAGE serve`: GET /ping 200, POST /invocations (a photo) answers, `podman stop` ends it with 0.
# Usage: tools/container/smoke.sh [IMAGE] (default localhost/tailor:latest). $TAILOR_SMOKE_PORT: the
# host port for the endpoint's 8080 (default 18080).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
IMAGE="${1:-localhost/tailor:latest}"
PORT="${TAILOR_SMOKE_PORT:-18080}"
source "$ROOT/tools/container/podman_opts.sh"

WORK="$(mktemp -d /var/tmp/tailor-smoke.XXXXXX)"
ML="$WORK/ml"
JOB=tailor-smoke-train-$$; SRV=tailor-smoke-serve-$$
cleanup() { "${PODMAN[@]}" rm -f --ignore -t 0 "$JOB" "$SRV" >/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT
RUN=("${PODMAN[@]}" run "${ULIMITS[@]}" -v "$ML:/opt/ml")
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN{printf "%.1f", b-a}'; }
fail() { echo "smoke: FAILED: $*" >&2; exit 1; }

# 1. Inputs: the model channel, the train channel (a raw catalog: the job prepares it), hyperparameters
# as SageMaker writes them (every value a string).
mkdir -p "$ML/input/config" "$ML/input/data"
"${RUN[@]}" --rm "$IMAGE" init --preset tiny --out /opt/ml/input/data/model >/dev/null
"${RUN[@]}" --rm "$IMAGE" synth --products 60 --quiet --out /opt/ml/input/data/train
cat > "$ML/input/config/hyperparameters.json" <<'JSON'
{"epochs": "8", "batch_size": "8", "seed": "1", "checkpoint_every": "1000", "sagemaker_job_name": "smoke"}
JSON

# 2. train, stopped by SIGTERM once a step line is out (checkpoint_every above the run's steps: the
# checkpoint found afterwards is SIGTERM's).
"${RUN[@]}" -d --name "$JOB" "$IMAGE" train >/dev/null
for _ in $(seq 600); do
  "${PODMAN[@]}" logs "$JOB" 2>&1 | grep -q '^step ' && break
  [ "$("${PODMAN[@]}" inspect -f '{{.State.Running}}' "$JOB")" = true ] || break
  sleep 0.2
done
t=$(now)
"${PODMAN[@]}" stop -t 30 "$JOB" >/dev/null
stop_s=$(since "$t")
code=$("${PODMAN[@]}" inspect -f '{{.State.ExitCode}}' "$JOB")
"${PODMAN[@]}" logs "$JOB" 2>&1 | grep -E '^(step|epoch|tailor|error)|SIGTERM' | tail -4 | sed 's/^/  train| /'
"${PODMAN[@]}" rm "$JOB" >/dev/null
echo "smoke: train stopped by SIGTERM in ${stop_s} s, exit code $code; output/failure: $(cat "$ML/output/failure" 2>/dev/null)"
grep -q SIGTERM "$ML/output/failure" || fail "no SIGTERM reason in output/failure"
[ -f "$ML/checkpoints/run/checkpoint/state.json" ] || fail "no checkpoint after SIGTERM"
[ ! -e "$ML/model/config.json" ] || fail "the job finished before SIGTERM came"

# 3. train again, as a restart (SageMaker gives it a fresh output/): resumes from checkpoints/.
rm -rf "$ML/output"
t=$(now)
"${RUN[@]}" --rm "$IMAGE" train > "$WORK/train.log" 2>&1 || { tail -20 "$WORK/train.log"; fail "train"; }
echo "smoke: train (restart) in $(since "$t") s"
{ grep -m1 'resumed at step' "$WORK/train.log"; grep -E '^epoch [0-9]+ Epoch Loss|^trained ' "$WORK/train.log" | tail -2; } |
  sed 's/^/  train| /'
grep -q 'resumed at step' "$WORK/train.log" || fail "the restart did not resume"
for f in config.json model.safetensors spiece.model tailor_task.json adapter/adapter_model.safetensors; do
  [ -f "$ML/model/$f" ] || fail "/opt/ml/model/$f missing"
done
[ ! -e "$ML/output/failure" ] || fail "output/failure: $(cat "$ML/output/failure")"

# 4. serve with no flags: /opt/ml/model on 8080, as SageMaker starts an endpoint.
t=$(now)
"${RUN[@]}" -d --name "$SRV" -p "127.0.0.1:$PORT:8080" "$IMAGE" serve >/dev/null
for _ in $(seq 300); do
  [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/ping" || true)" = 200 ] && break
  sleep 0.2
done
echo "smoke: serve ready in $(since "$t") s: GET /ping $(curl -s -w ' %{http_code}' "http://127.0.0.1:$PORT/ping")"
photo="$(ls "$ML"/input/data/train/images/*.jpg | head -1)"
answer="$(curl -sf -H 'Content-Type: image/jpeg' --data-binary "@$photo" "http://127.0.0.1:$PORT/invocations")" \
  || fail "POST /invocations"
echo "smoke: POST /invocations $(basename "$photo"): ${answer:0:300}"
t=$(now)
"${PODMAN[@]}" stop -t 30 "$SRV" >/dev/null
stop_s=$(since "$t")
code=$("${PODMAN[@]}" inspect -f '{{.State.ExitCode}}' "$SRV")
"${PODMAN[@]}" logs "$SRV" 2>&1 | tail -2 | sed 's/^/  serve| /'
echo "smoke: serve stopped by SIGTERM in ${stop_s} s, exit code $code"
[ "$code" = 0 ] || fail "serve exited $code on SIGTERM"
echo "smoke: OK ($IMAGE, $("${PODMAN[@]}" image inspect --format '{{.Size}}' "$IMAGE" | awk '{printf "%.0f MB", $1/1e6}'))"
