#!/bin/bash
# Lease takeover after SIGKILL, measured from outside (issue 13, docs/benchmarks.md): two
# `sealpost serve` nodes with the default lease over one Postgres schema, the pipeline's lanes
# shared out between them; the first (which holds the housekeeping and half the lanes) is
# killed; `sealpost nodes` is asked every 100 ms until the other holds every lease it held.
# Usage: tools/measure-takeover.sh [path to sealpost] (default target/debug/sealpost).
set -e
BIN=${1:-target/debug/sealpost}
psql -h 127.0.0.1 -U postgres -d postgres -qc "DROP SCHEMA IF EXISTS takeover CASCADE; CREATE SCHEMA takeover;" 2>/dev/null
URL="postgres://postgres@127.0.0.1:5432/postgres?options=-csearch_path%3Dtakeover"
export SEALPOST_ROOT_KEY_EU=$(head -c32 /dev/urandom | base64)
D=$(mktemp -d)
mkdir -p $D/a $D/b
$BIN serve --listen 127.0.0.1:0 --data-dir $D/a --database-url "$URL" > $D/a.out 2>$D/a.log &
A=$!
for i in $(seq 100); do grep -q serving $D/a.out 2>/dev/null && break; sleep 0.2; done
cp $D/a/bootstrap.json $D/b/
$BIN serve --listen 127.0.0.1:0 --data-dir $D/b --database-url "$URL" > $D/b.out 2>$D/b.log &
B=$!
for i in $(seq 100); do grep -q serving $D/b.out 2>/dev/null && break; sleep 0.2; done
# Until both hold lanes (the first hands half on within two lease rounds).
for i in $(seq 100); do
  [ "$($BIN nodes --database-url "$URL" | awk '$1 ~ /^pipeline:/ && $3 == "held" {print $4}' | sort -u | wc -l)" = 2 ] && break
  sleep 0.5
done
$BIN nodes --database-url "$URL"
ANODE=$($BIN nodes --database-url "$URL" | awk '$1 == "housekeeping" {print $4}')
kill -9 $A
T0=$(date +%s%N)
while true; do
  L=$($BIN nodes --database-url "$URL")
  HELD=$(echo "$L" | awk '($1 ~ /^pipeline:/ || $1 == "housekeeping") && $3 == "held"' | wc -l)
  if [ "$HELD" = 9 ] && ! echo "$L" | awk -v n="$ANODE" '$3 == "held" && $4 == n' | grep -q .; then break; fi
  sleep 0.1
done
T1=$(date +%s%N)
echo "takeover after SIGKILL with the default lease (10 s, renewed every 3 s): $(( (T1-T0)/1000000 )) ms"
$BIN nodes --database-url "$URL"
kill -TERM $B; wait $B || true
psql -h 127.0.0.1 -U postgres -d postgres -qc "DROP SCHEMA takeover CASCADE;" 2>/dev/null
rm -rf $D
