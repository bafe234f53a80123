#!/usr/bin/env bash
# Here: the catalog's Shirts and Tshirts prepared by `tailor prepare`, with their photos, into .gpu/real
# (git-ignored; carry it), image paths rewritten relative to the repository root.
set -euo pipefail
cd "$(dirname "$0")/../.."
TAILOR=${TAILOR:-build/tailor}
CATALOG=${CATALOG:-../shared/data/fashion-products}
[ -f "$CATALOG/styles.csv" ] || { echo "fetch_real: $CATALOG not found" >&2; exit 1; }
rm -rf .gpu/real && mkdir -p .gpu/real/images
"$TAILOR" prepare --catalog "$CATALOG" --out .gpu/real/dataset >/dev/null
for f in train val; do
  python3 - ".gpu/real/dataset/$f.jsonl" <<'PY'
import json, os, shutil, sys
path = sys.argv[1]
out = []
for line in open(path, encoding="utf-8"):
    j = json.loads(line)
    dst = ".gpu/real/images/" + os.path.basename(j["image"])
    if not os.path.exists(dst):
        shutil.copy(j["image"], dst)
    j["image"] = dst
    out.append(json.dumps(j, ensure_ascii=False, separators=(",", ":")))
open(path, "w", encoding="utf-8").write("\n".join(out) + "\n")
PY
done
du -sh .gpu/real
