#!/usr/bin/env bash
# Runs one fuzz target for as long as asked, or every target briefly (CI):
#   fuzz/run.sh <target> <seconds>     e.g. fuzz/run.sh serve 600
#   fuzz/run.sh --all <seconds>        each target in turn
# Targets: the names of fuzz/*_fuzz.cpp without _fuzz. Seeds come from fuzz/corpus/<target>/ (read
# only); what a run finds new goes to build-fuzz/corpus/<target>/, crashes to build-fuzz/findings/.
# Exits non-zero on a finding. Builds first (fuzz/build.sh).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
B="${TAILOR_FUZZ_BUILD_DIR:-$ROOT/build-fuzz}"
[ $# -eq 2 ] || { echo "usage: fuzz/run.sh <target>|--all <seconds>" >&2; exit 2; }
bash "$ROOT/fuzz/build.sh" >/dev/null
# Targets whose parser takes a path write each input to a file: keep that in memory when we can.
if [ -z "${TMPDIR:-}" ] && [ -d /dev/shm ] && [ -w /dev/shm ]; then export TMPDIR=/dev/shm; fi
targets="$1"
if [ "$1" = --all ]; then
  targets="$(cd "$ROOT/fuzz" && ls *_fuzz.cpp | sed 's/_fuzz\.cpp$//')"
fi
for t in $targets; do
  exe="$B/${t}_fuzz"
  [ -x "$exe" ] || { echo "fuzz/run.sh: no target $t (fuzz/${t}_fuzz.cpp)" >&2; exit 2; }
  mkdir -p "$B/corpus/$t" "$B/findings/$t"
  echo "fuzz: $t for $2 s" >&2
  # -rss_limit_mb: a parser that allocates without bound is a finding, not an OOM of the machine.
  "$exe" -max_total_time="$2" -timeout=20 -rss_limit_mb=2048 -max_len=1048576 -print_final_stats=1 \
    -artifact_prefix="$B/findings/$t/" "$B/corpus/$t" "$ROOT/fuzz/corpus/$t" 2>"$B/findings/$t/log.txt" \
    || { tail -50 "$B/findings/$t/log.txt" >&2; echo "fuzz: $t found a problem (log and input in $B/findings/$t/)" >&2; exit 1; }
  grep -E "^(stat::number_of_executed_units|stat::peak_rss_mb|#[0-9]+ *DONE)" "$B/findings/$t/log.txt" | tr '\n' ' ' >&2
  echo >&2
done
