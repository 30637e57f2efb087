#!/usr/bin/env bash
# The peak resident memory of `sealpost serve` while one document is uploaded and downloaded
# through the Cloud API media endpoints (docs/benchmarks.md, "Media memory"). A 1 MiB round
# trip runs first, so the figure is the object's and not the first use of the code; the peak is
# reset just before (`/proc/<pid>/clear_refs` 5) and read after (`VmHWM`).
#
#   scripts/media-memory.sh BINARY SIZE_MIB [PORT]
#
# Prints one line: the binary, the size, the resident memory before, the peak, the growth.
# Needs curl, jq and cmp.
set -euo pipefail
BIN=$(realpath "$1")
MIB=$2
PORT=${3:-8091}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/sealpost-media-memory.XXXXXX")
PID=
cleanup() {
  if [[ -n $PID ]]; then kill "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT
cd "$WORK"
"$BIN" serve --listen "127.0.0.1:$PORT" >server.log 2>&1 &
PID=$!
for _ in $(seq 1 120); do
  grep -q "sealpost serving on" server.log && break
  sleep 0.5
done
grep -q "sealpost serving on" server.log || { echo "the server did not start" >&2; exit 1; }
TOKEN=$(jq -r .access_token sealpost-data/bootstrap.json)
PHONE=$(jq -r .phone_number_id sealpost-data/bootstrap.json)
BASE="http://127.0.0.1:$PORT"

document() { { printf '%%PDF-1.7\n'; head -c $(($1 * 1024 * 1024 - 9)) /dev/urandom; } >"$2"; }
upload() {
  curl -fsS -H "Authorization: Bearer $TOKEN" -F messaging_product=whatsapp \
    -F "file=@$1;type=application/pdf" "$BASE/v21.0/$PHONE/media" | jq -r .id
}
fetch() {
  local url
  url=$(curl -fsS -H "Authorization: Bearer $TOKEN" "$BASE/v21.0/$1" | jq -r .url)
  curl -fsS -H "Authorization: Bearer $TOKEN" "$url" -o "$2"
}
kib() { awk -v f="$1:" '$1 == f { print $2 }' "/proc/$PID/status"; }

document 1 warm.pdf
fetch "$(upload warm.pdf)" warm.back
cmp -s warm.pdf warm.back
document "$MIB" doc.pdf
echo 5 >"/proc/$PID/clear_refs"
before=$(kib VmRSS)
fetch "$(upload doc.pdf)" doc.back
cmp -s doc.pdf doc.back || { echo "the download differs from the upload" >&2; exit 1; }
peak=$(kib VmHWM)
echo "$(basename "$(dirname "$(dirname "$(dirname "$BIN")")")") ${MIB} MiB: RSS ${before} KiB, peak ${peak} KiB, growth $((peak - before)) KiB"
