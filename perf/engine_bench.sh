#!/usr/bin/env bash
# The engine's throughput, two ways, written to stdout as Markdown:
#  (a) `xerv bench` on examples/order_processing.yaml in process on every shard,
#      against a one-node flow in the same run (the per-trace floor);
#  (b) wrk POSTing orders to the sync webhook /orders of a running xerv (the whole
#      path: HTTP, admission, the order flow, the 200 with the output) against
#      nginx returning the same bytes, same connections, same run.
#
#   perf/engine_bench.sh [--seconds N] [--connections N] [--shards N]
#
# Loopback only; every process it starts is stopped by pid on exit. Takes the
# shared benchmark lock so it never measures while another benchmark does.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
. "$(dirname "$0")/lib.sh"
bench_name=engine_bench
seconds=10 connections=64 shards=2
while (($#)); do
  case $1 in
    --seconds) seconds=$2; shift ;;
    --connections) connections=$2; shift ;;
    --shards) shards=$2; shift ;;
    *) echo "engine_bench: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
xerv=${XERV_BIN:-$root/build/release/app/xerv}
for tool in "$xerv" wrk nginx curl; do
  command -v "$tool" >/dev/null || [[ -x $tool ]] || { echo "engine_bench: $tool missing (scripts/setup perf)" >&2; exit 1; }
done
take_bench_lock 600

tmp=$(mktemp -d /tmp/xerv-engine-bench.XXXXXX)
pids=()
# Not lib.sh's cleanup: a fixed 0.3 s of grace, no logs shown.
stop_all() {
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  sleep 0.3
  for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap stop_all EXIT

order='{"order_id":"A-1","risk_score":0.42,"amount":125.5}'
cat >"$tmp/noop.yaml" <<'YAML'
name: noop
triggers: [{id: m, type: memory}]
nodes: {only: {type: std::log}}
edges: [{from: m, to: only}]
YAML

echo "## Engine: in-process traces (xerv bench), $shards shards, ${seconds} s"
echo
echo '```'
echo "\$ xerv bench examples/order_processing.yaml --seconds $seconds --shards $shards --input '$order'"
XERV_LOG=warn "$xerv" bench "$root/examples/order_processing.yaml" --seconds "$seconds" --shards "$shards" --input "$order" | tee "$tmp/order.txt"
echo "\$ xerv bench noop.yaml (trigger -> one std::log) --seconds $seconds --shards $shards"
XERV_LOG=warn "$xerv" bench "$tmp/noop.yaml" --seconds "$seconds" --shards "$shards" | tee "$tmp/noop.txt"
echo '```'
echo

# (b) webhook vs nginx
xport=$(free_port)
XERV_SHARDS=$shards XERV_API_HOST=127.0.0.1 XERV_API_PORT=$xport XERV_LOG=warn XERV_DATA_DIR="$tmp/data" \
  XERV_PIPELINES_DIR="$root/examples" "$xerv" serve 2>"$tmp/xerv.log" &
pids+=($!)
for _ in $(seq 100); do curl -sf "127.0.0.1:$xport/ready" >/dev/null 2>&1 && break; sleep 0.05; done
body=$(curl -s -X POST "127.0.0.1:$xport/orders" -d "$order")
[[ $body == *process_safe* ]] || { echo "engine_bench: unexpected webhook answer: $body" >&2; exit 1; }
nport=$(free_port)
escaped=${body//\'/\\\'}
cat >"$tmp/nginx.conf" <<CONF
worker_processes $shards;
worker_cpu_affinity auto;
pid $tmp/nginx.pid;
error_log $tmp/nginx.err;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $tmp;
  proxy_temp_path $tmp; fastcgi_temp_path $tmp; uwsgi_temp_path $tmp; scgi_temp_path $tmp;
  server {
    listen 127.0.0.1:$nport reuseport;
    location = /orders { default_type application/json; return 200 '$escaped'; }
  }
}
CONF
nginx -p "$tmp" -c "$tmp/nginx.conf" -g 'daemon off;' 2>>"$tmp/nginx.err" &
pids+=($!)
for _ in $(seq 100); do curl -sf -X POST "127.0.0.1:$nport/orders" -d "$order" >/dev/null 2>&1 && break; sleep 0.05; done
write_wrk_post "$tmp/post.lua" "$order"
# Prints "req/s p50 p99" of a wrk run against port $1, the latencies with wrk's own
# units (not lib.sh's run_wrk, which turns them into µs).
wrk_orders() {
  wrk -t2 -c"$connections" -d"${seconds}s" --latency -s "$tmp/post.lua" "http://127.0.0.1:$1/orders" >"$tmp/wrk.txt" 2>&1
  grep -q "Non-2xx\|Socket errors" "$tmp/wrk.txt" && { cat "$tmp/wrk.txt" >&2; echo "engine_bench: errors during the run" >&2; exit 1; }
  local rps p50 p99
  rps=$(awk '/Requests\/sec/ {print $2}' "$tmp/wrk.txt")
  p50=$(awk '$1=="50%" {print $2}' "$tmp/wrk.txt")
  p99=$(awk '$1=="99%" {print $2}' "$tmp/wrk.txt")
  echo "$rps $p50 $p99"
}
read -r x_rps x_p50 x_p99 < <(wrk_orders "$xport")
read -r n_rps n_p50 n_p99 < <(wrk_orders "$nport")
ratio=$(awk -v a="$x_rps" -v b="$n_rps" 'BEGIN { printf "%.2f", a / b }')
echo "## Webhook: wrk -t2 -c$connections -d${seconds}s POST /orders (sync, order flow) vs nginx, $shards shards / $shards workers"
echo
echo "| server | req/s | p50 | p99 |"
echo "|---|---|---|---|"
echo "| xerv (webhook → order flow → 200 with the output) | $x_rps | $x_p50 | $x_p99 |"
echo "| nginx (the same bytes, static) | $n_rps | $n_p50 | $n_p99 |"
echo
echo "xerv/nginx = **$ratio** (goal ≥ 0.5). Command: \`perf/engine_bench.sh --seconds $seconds --connections $connections --shards $shards\`, commit $(git -C "$root" rev-parse --short HEAD), $(date -u +%Y-%m-%d), $(uname -r), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)."
