#!/usr/bin/env bash
# Run in the Dockerfile's build stage: copies the shared libraries a program loads (ldd's closure) that
# the base image does not already have into DEST/lib, named by soname, with each one's Debian package
# and version in DEST/lib/PACKAGES ("- -" and the path for one no package owns) and the packages'
# copyright files in DEST/share/doc. Why not `apt-get install libtorch1.13` in the runtime stage: its
# Depends bring Mesa with LLVM, Qt, GDAL and their data that no code path of tailor loads (measured:
# 1.16 GB without tailor, against 647 MB for the whole image; docs/sagemaker.md).
# Usage: collect_libs.sh PROGRAM DEST BASE_PACKAGES (the base image's `dpkg-query -W` package names).
set -euo pipefail
PROG="$1"; DEST="$2"; BASE_PKGS="$3"
mkdir -p "$DEST/lib" "$DEST/share/doc"
: > "$DEST/lib/PACKAGES.tmp"

# "libblas.so.3 => /lib/x86_64-linux-gnu/libblas.so.3 (0x...)": the soname and where it resolves now.
ldd "$PROG" | awk '$2 == "=>" && $3 ~ /^\// {print $1, $3}' | sort -u | while read -r soname path; do
  real="$(realpath "$path")"
  # Debian 12's merged /usr: a package may own the file under /lib rather than /usr/lib.
  # No owner: a library from outside Debian (a libtorch zip or wheel, as a CUDA build would use).
  owner="$(dpkg -S "$real" 2>/dev/null || dpkg -S "${real#/usr}" 2>/dev/null || dpkg -S "$path" 2>/dev/null || true)"
  pkg="${owner%%:*}"
  if [ -n "$pkg" ] && grep -qx "$pkg" "$BASE_PKGS"; then continue; fi   # the runtime base has it already
  cp -L "$path" "$DEST/lib/$soname"
  if [ -z "$pkg" ]; then
    echo "- - $soname $real" >> "$DEST/lib/PACKAGES.tmp"; continue
  fi
  echo "$pkg $(dpkg-query -W -f='${Version}' "$pkg") $soname" >> "$DEST/lib/PACKAGES.tmp"
  if [ -f "/usr/share/doc/$pkg/copyright" ]; then
    mkdir -p "$DEST/share/doc/$pkg"
    cp "/usr/share/doc/$pkg/copyright" "$DEST/share/doc/$pkg/"
  fi
done
sort "$DEST/lib/PACKAGES.tmp" > "$DEST/lib/PACKAGES"; rm "$DEST/lib/PACKAGES.tmp"
echo "collect_libs: $(wc -l < "$DEST/lib/PACKAGES") libraries, $(du -sh "$DEST/lib" | cut -f1)"
