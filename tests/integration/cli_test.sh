#!/usr/bin/env bash
# The CLI against the real binary: validate, deploy (dry run and real), list, bench.
set -euo pipefail
xerv=$1
examples=$2
work=$(mktemp -d)
pid=""
cleanup() {
  [[ -n $pid ]] && kill -9 "$pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; exit 1; }

"$xerv" validate "$examples/order_processing.yaml" >/dev/null || fail "a valid example did not validate"
printf 'name: Bad\ntriggers: [{id: t, type: manual}]\nnodes:\n  a: {type: std::nope}\nedges:\n  - {from: t, to: zz}\n' >"$work/bad.yaml"
set +e
out=$("$xerv" validate "$work/bad.yaml" 2>&1)
rc=$?
set -e
[[ $rc -eq 1 ]] || fail "validate of a bad flow exited $rc, want 1"
grep -q "bad.yaml:1:7: pipeline name 'Bad'" <<<"$out" || fail "no name error with its line: $out"
grep -q "bad.yaml:4:.*unknown node type 'std::nope'" <<<"$out" || fail "no node type error with its line: $out"
grep -q "bad.yaml:6:.*edge to unknown node 'zz'" <<<"$out" || fail "not every error listed: $out"

XERV_SHARDS=2 XERV_API_HOST=127.0.0.1 XERV_API_PORT=0 XERV_DATA_DIR="$work/data" "$xerv" serve 2>"$work/log" &
pid=$!
for _ in $(seq 100); do grep -q "serving on" "$work/log" && break; sleep 0.05; done
port=$(grep -o 'http://127.0.0.1:[0-9]*' "$work/log" | head -1 | cut -d: -f3)
[[ -n $port ]] || fail "server did not start: $(cat "$work/log")"
url="http://127.0.0.1:$port"

"$xerv" deploy -f "$examples/order_processing.yaml" --dry-run --url "$url" | grep -q "dry run" || fail "dry run"
"$xerv" list --url "$url" | grep -q order_processing && fail "dry run deployed something"
"$xerv" deploy -f "$examples/order_processing.yaml" --url "$url" | grep -q "^deployed" || fail "deploy"
"$xerv" list --url "$url" | grep -q "^order_processing .* running" || fail "list: $("$xerv" list --url "$url")"
set +e
"$xerv" deploy -f "$work/bad.yaml" --url "$url" 2>"$work/err"
rc=$?
set -e
[[ $rc -eq 1 ]] || fail "deploying a bad flow exited $rc"
grep -q "bad.yaml:4:" "$work/err" || fail "deploy errors lack lines: $(cat "$work/err")"
kill -TERM "$pid"
wait "$pid" || fail "server exit code $?"
pid=""

bench=$("$xerv" bench "$examples/order_processing.yaml" --seconds 0.3 --concurrency 4 --input '{"order_id":"b","risk_score":0.3}')
grep -q "traces/s" <<<"$bench" || fail "bench printed: $bench"
grep -q "(0 failed)" <<<"$bench" || fail "bench traces failed: $bench"
echo "PASS: cli"
