#!/usr/bin/env bash
# Measures how long `sealpost serve` takes to stop on SIGTERM with a backlog of N accepted sends
# (docs/benchmarks.md, "Shutdown with a backlog"). Needs curl, jq and a built binary:
#   cargo build --release && N=10000 scripts/shutdown-backlog.sh
set -euo pipefail
B=${SEALPOST_BIN:-target/release/sealpost}
W=$(mktemp -d); D=$W/data
trap 'kill $P 2>/dev/null || true; rm -rf "$W"' EXIT
# Throughput limits raised so the sends are not refused with 130429 (the pair limit still holds:
# 250 phones, 40 messages each).
printf 'throughput_per_second = 100000.0\nupgraded_throughput_per_second = 100000.0\n' > $W/cfg.toml
serve() {
  RUST_LOG=sealpost::pipeline=info SEALPOST_LOG_FORMAT=json \
    $B serve --config $W/cfg.toml --listen 127.0.0.1:0 --sim-clock --data-dir $D > $W/out 2>> $W/err &
  P=$!
  while ! grep -q serving $W/out 2>/dev/null; do sleep 0.05; done
}
stop() {
  local t0; t0=$(date +%s%N); kill -TERM $P; wait $P && code=0 || code=$?
  echo "$1: exit $code after $(( ($(date +%s%N) - t0) / 1000000 )) ms"
}
serve
BASE=$(awk '{print $NF}' $W/out); DISP=$(jq -r .display_phone_number $D/bootstrap.json)
T=$(jq -r .access_token $D/bootstrap.json); ID=$(jq -r .phone_number_id $D/bootstrap.json)
# Every phone writes first (its service window opens).
seq 1 250 | xargs -P 8 -I{} sh -c "curl -s -o /dev/null -X POST $BASE/sim/v1/devices/\$(printf '4915170%06d' {})/messages -H 'content-type: application/json' -d '{\"to\":\"$DISP\",\"type\":\"text\",\"text\":{\"body\":\"hi\"}}'"
sleep 10
start=$(date +%s)
seq 1 "${N:-10000}" | xargs -P 16 -I{} sh -c "curl -s -o /dev/null -w '%{http_code}\n' -X POST $BASE/v21.0/$ID/messages -H 'authorization: Bearer $T' -H 'content-type: application/json' -d '{\"messaging_product\":\"whatsapp\",\"to\":\"'\$(printf '4915170%06d' \$(( {} % 250 + 1 )))'\",\"type\":\"text\",\"text\":{\"body\":\"m{}\"}}'" | sort | uniq -c
echo "sends took $(( $(date +%s) - start )) s"
echo "handed to the transport before the stop: $(grep -o '"sent":[0-9]*' $W/err | cut -d: -f2 | awk '{s+=$1} END {print s+0}')"
stop "stop with the backlog"
serve
sleep 1
stop "stop 1 s after the next start (backlog still waiting)"
