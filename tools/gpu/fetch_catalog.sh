#!/usr/bin/env bash
# Here: the real catalog's Shirts and Tshirts as a small Kaggle-layout catalog in .gpu/catalog
# (git-ignored; carry it), for runs that prepare on the GPU machine itself (STAGE=shift): styles.csv's
# rows of those types, each product's JSON cut to the fields tailor reads (id, articleType, baseColour,
# brandName, articleAttributes), and the photos as they are. About 22 MB: the whole catalog's photos
# (71 MB) would not fit the 64 MiB a call carries.
set -euo pipefail
cd "$(dirname "$0")/../.."
CATALOG=${CATALOG:-../shared/data/fashion-products}
[ -f "$CATALOG/styles.csv" ] || { echo "fetch_catalog: $CATALOG/styles.csv not found" >&2; exit 1; }
rm -rf .gpu/catalog && mkdir -p .gpu/catalog/styles .gpu/catalog/images
python3 - "$CATALOG" .gpu/catalog <<'PY'
import csv, json, os, shutil, sys
src, dst = sys.argv[1], sys.argv[2]
keep = ("id", "articleType", "baseColour", "brandName", "articleAttributes")
with open(os.path.join(src, "styles.csv"), newline="", encoding="utf-8") as f:
    rows = list(csv.reader(f))
header, out = rows[0], [rows[0]]
type_col = header.index("articleType")
for row in rows[1:]:
    if len(row) <= type_col or row[type_col] not in ("Shirts", "Tshirts"):
        continue
    pid = row[0]
    data = json.load(open(os.path.join(src, "styles", pid + ".json"), encoding="utf-8"))["data"]
    slim = {"data": {k: data[k] for k in keep if k in data}}
    json.dump(slim, open(os.path.join(dst, "styles", pid + ".json"), "w", encoding="utf-8"), ensure_ascii=False)
    shutil.copy(os.path.join(src, "images", pid + ".jpg"), os.path.join(dst, "images", pid + ".jpg"))
    out.append(row)
with open(os.path.join(dst, "styles.csv"), "w", newline="", encoding="utf-8") as f:
    csv.writer(f, lineterminator="\n").writerows(out)
print(f"fetch_catalog: {len(out) - 1} products")
PY
du -sh .gpu/catalog
