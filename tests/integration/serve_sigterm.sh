#!/usr/bin/env bash
# `xerv serve` with 2 shards: SIGTERM stops every shard and the process exits 0.
set -euo pipefail
xerv=$1
log=$(mktemp)
data=$(mktemp -d)
trap 'rm -rf "$log" "$data"' EXIT
XERV_SHARDS=2 XERV_API_HOST=127.0.0.1 XERV_API_PORT=0 XERV_DATA_DIR="$data" "$xerv" serve 2>"$log" &
pid=$!
for _ in $(seq 100); do
  grep -q "serving on 2 shards" "$log" && break
  sleep 0.05
done
grep -q "serving on 2 shards" "$log" || { cat "$log"; echo "FAIL: server did not start"; exit 1; }
kill -TERM "$pid"
rc=0
timeout 10 tail --pid="$pid" -f /dev/null || { echo "FAIL: still running 10 s after SIGTERM"; kill -9 "$pid"; exit 1; }
wait "$pid" || rc=$?
cat "$log"
[[ $rc -eq 0 ]] || { echo "FAIL: exit code $rc"; exit 1; }
for s in 0 1; do
  grep -q "shard $s stopped" "$log" || { echo "FAIL: shard $s did not stop cleanly"; exit 1; }
done
grep -q "xerv stopped" "$log" || { echo "FAIL: no final log line"; exit 1; }
echo "PASS: SIGTERM stopped both shards, exit 0"
