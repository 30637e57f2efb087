#!/usr/bin/env bash
# Renders the DPO retention report of a 35-day simulated run (the test
# thirty_five_days_of_traffic_give_a_retention_report_that_reconciles) to
# docs/retention-report.png with Debian's headless Chromium, the picture the README shows.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v chromium >/dev/null 2>&1; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-dejavu-core
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
SEALPOST_REPORT_OUT="$work/report.html" \
  cargo test --locked --test http thirty_five_days_of_traffic_give_a_retention_report_that_reconciles
test -s "$work/report.html" || { echo "the test wrote no report"; exit 1; }

chromium --headless --no-sandbox --disable-gpu --hide-scrollbars \
  --window-size=1100,2400 --screenshot="$work/report.png" "file://$work/report.html" 2>/dev/null
test -s "$work/report.png" || { echo "chromium rendered nothing"; exit 1; }
cp "$work/report.png" docs/retention-report.png
echo "docs/retention-report.png"
