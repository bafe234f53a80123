#!/usr/bin/env bash
# Makes the pictures in docs/: review-queue.png, review-product.png, review-summary.png and
# demo-report-charts.png. Runs a small `tailor demo` (its report, training log and validation
# products), then tests/app/review_screenshots_test.cpp, which drives Debian's headless chromium over
# the DevTools protocol and saves Page.captureScreenshot PNGs. Needs a build (scripts/build.sh) and
# chromium (scripts/setup.sh). Usage: scripts/screenshots.sh [DEMO_DIR]  (kept between runs: delete
# it to train again).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
B="${TAILOR_BUILD_DIR:-$ROOT/build}"
DEMO="${1:-$B/screenshots-demo}"
cmake --build "$B" --target tailor test_app_review_screenshots >/dev/null
if [ ! -f "$DEMO/report.html" ]; then
  "$B/tailor" demo --out "$DEMO" --examples 24 --quiet  # the documented demo (docs/demo.md), a few minutes
fi
TAILOR_SCREENSHOTS_OUT="$ROOT/docs" TAILOR_SCREENSHOTS_DEMO="$(cd "$DEMO" && pwd)" \
  "$B/test_app_review_screenshots" --gtest_filter='Screenshots.*'
