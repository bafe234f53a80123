#!/usr/bin/env bash
# Issue 21 on the GPU machine: small models trained from scratch on the real catalog's Shirts and
# Tshirts, each evaluated on its validation photos as they are and framed as another source would
# (`tailor eval --shift portrait,other-source`), for a split by product and a split by brand. Runs after
# tools/gpu/build.sh; the catalog travels in .gpu/catalog (tools/gpu/fetch_catalog.sh) and is prepared
# here. RUNS: "recipe:split ..." run side by side on the one GPU (each with a share of the cores), so
# their times are not the recipe's alone; TIMED=1 runs them one after another.
#   RUNS="base:product reframe:brand" bash tools/gpu/shift_train.sh
# The same on the CPU, with the whole catalog (recipe "all" pre-trains on every product's fields):
#   TAILOR=build/tailor DEVICE=cpu CATALOG=../shared/data/fashion-products PT=12 EP=3 BS=32 TIMED=1 \
#     RUNS="base:product all:brand" OUT=/tmp/shift bash tools/gpu/shift_train.sh
set -uo pipefail
cd "$(dirname "$0")/../.."
export LD_LIBRARY_PATH=/tmp/tailor-deps/usr/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}
T=${TAILOR:-/tmp/tailor-build/tailor}
DEVICE=${DEVICE:-cuda}
CATALOG=${CATALOG:-.gpu/catalog}
PT=${PT:-30} EP=${EP:-6} BS=${BS:-64}  # pre-training epochs, epochs, batch size (both stages)
PREP=${PREP:-/tmp/prep}
OUT=${OUT:-/tmp/shift-out}
RUNS=${RUNS:-"base:product base:brand"}
TIMED=${TIMED:-0}
mkdir -p "$OUT"
[ -f $CATALOG/styles.csv ] || { echo "shift_train: $CATALOG is missing (tools/gpu/fetch_catalog.sh, then carry it)" >&2; exit 1; }
for split in product brand; do
  [ -f $PREP-$split/train.jsonl ] && continue
  extra=""; [ $split = brand ] && extra="--split-by brand"
  $T prepare --catalog $CATALOG --out $PREP-$split $extra --quiet | grep -E "split" || exit 1
done
# Recipe "all": every product of the catalog with sixteen of its fields, for the pre-training alone.
if [[ " $RUNS " == *" all:"* ]] && [ ! -f $PREP-all/train.jsonl ]; then
  $T prepare --catalog $CATALOG --article-types all --task docs/tasks/pretrain_all_fields.json --out $PREP-all --quiet | grep -E "split" || exit 1
fi

# One recipe on one split: init, train, evaluate as-is and shifted. The commands are the recipe.
run_one() {
  local recipe=$1 split=$2 dir=/tmp/shift-$1-$2
  local init="--preset tiny" train="--pretrain-epochs $PT --epochs $EP"
  case $recipe in
    base) ;;
    reframe) train="$train --pretrain-reframe" ;;
    all) train="$train --pretrain-reframe --pretrain-data $PREP-all" ;;
    long) train="--pretrain-epochs $((PT * 2)) --epochs $EP --pretrain-reframe" ;;
    px96) init="$init --image-size 96"; train="$train --pretrain-reframe" ;;
    patch4) init="$init --patch-size 4"; train="$train --pretrain-reframe" ;;
    small) init="--preset small"; train="$train --pretrain-reframe" ;;
    *) echo "unknown recipe $recipe" >&2; return 1 ;;
  esac
  rm -rf $dir && mkdir -p $dir
  $T init $init --init fan-in --out $dir/model0 > /dev/null || return 1
  local start=$(date +%s)
  $T train --model $dir/model0 --data $PREP-$split --out $dir/run --device $DEVICE --full $train \
    --pretrain-batch-size $BS --freeze vision,qformer --lr 1e-3 --batch-size $BS --log-lines > $dir/train.txt 2>&1 || { tail -5 $dir/train.txt; return 1; }
  local took=$(( $(date +%s) - start ))
  $T eval --model $dir/run/model --data $PREP-$split --device $DEVICE --batch-size 64 --shift portrait,other-source \
    --report $OUT/${recipe}_${split}.json > $dir/eval.txt 2>&1 || { tail -5 $dir/eval.txt; return 1; }
  cp $dir/run/train_log.jsonl $OUT/${recipe}_${split}_train_log.jsonl
  # DIAG="recipe:split ...": each part of the other-source framing alone, to see which costs what.
  if [[ " ${DIAG:-} " == *" $recipe:$split "* ]]; then
    $T eval --model $dir/run/model --data $PREP-$split --device $DEVICE --batch-size 64 --shift zoom,background,jpeg \
      --report $OUT/${recipe}_${split}_diag.json > $dir/eval_diag.txt 2>&1 || tail -3 $dir/eval_diag.txt
  fi
  echo "$recipe:$split train ${took} s (tailor init $init --init fan-in; tailor train --full $train --pretrain-batch-size $BS --freeze vision,qformer --lr 1e-3 --batch-size $BS)" | tee $OUT/${recipe}_${split}.time
}

n=$(echo $RUNS | wc -w)
threads=$(( $(nproc) / n )); [ $threads -lt 1 ] && threads=1
for r in $RUNS; do
  if [ "$TIMED" = 1 ]; then run_one ${r%%:*} ${r##*:}
  else TAILOR_THREADS=$threads run_one ${r%%:*} ${r##*:} & fi
done
wait
python3 - "$OUT" $RUNS <<'PY'
import json, os, sys
out, runs = sys.argv[1], sys.argv[2:]
attrs = ["Sleeve Length", "Pattern", "Neck", "baseColour", "Fabric", "Fit", "Collar"]
print("run".ljust(18) + "".join(a[:13].rjust(14) for a in attrs) + "   all (as-is / other-source; then portrait, majority)")
for r in runs:
    recipe, split = r.split(":")
    base = os.path.join(out, f"{recipe}_{split}")
    try:
        a, s = json.load(open(base + ".json")), json.load(open(base + "_other-source.json"))
    except OSError:
        print(r.ljust(18) + "  (no report)"); continue
    acc = lambda rep: {x["attribute"]: x for x in rep["attributes"]}
    ra, rs = acc(a), acc(s)
    cells = "".join((f"{ra[x]['accuracy']:.3f}/{rs[x]['accuracy']:.3f}" if x in ra else "-").rjust(14) for x in attrs)
    print(r.ljust(18) + cells + f"   {a['accuracy']:.3f} / {s['accuracy']:.3f}")
    try:
        p = acc(json.load(open(base + "_portrait.json")))
        print("  portrait".ljust(18) + "".join((f"{p[x]['accuracy']:.3f}" if x in p else "-").rjust(14) for x in attrs))
    except OSError:
        pass
    print("  majority".ljust(18) + "".join((f"{ra[x]['majority_accuracy']:.3f}" if x in ra else "-").rjust(14) for x in attrs))
    for part in ("zoom", "background", "jpeg"):
        try:
            d = acc(json.load(open(base + f"_diag_{part}.json")))
        except OSError:
            continue
        print(f"  {part}".ljust(18) + "".join((f"{d[x]['accuracy']:.3f}" if x in d else "-").rjust(14) for x in attrs))
PY
