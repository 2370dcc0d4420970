#!/usr/bin/env bash
# Before/after a change on the webhook path: two xerv binaries and nginx in one
# run, wrk POSTing orders to the sync webhook /orders (examples/order_processing,
# durable, XERV_WAL_SYNC=always) and nginx answering the same bytes. Prints a
# Markdown table per round and the medians on stdout.
#
#   perf/webhook_ab.sh --old BIN --new BIN [--rounds N] [--seconds N]
#                      [--connections N] [--shards N]
#
# Each round starts fresh servers and runs old, nginx, new (the next round new,
# nginx, old), so drift on the machine hits both binaries alike; each binary is
# compared with the nginx run of its own round. It also reports the CPU time each
# xerv spent per request (/proc utime+stime over its run). Every run must be free
# of non-2xx answers and socket errors. A 2 s warm-up run before each measured
# one keeps the first run of a fresh binary (cold caches) out of the figures.
# Loopback only; every process is stopped by pid on exit.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
. "$(dirname "$0")/lib.sh"
bench_name=webhook_ab
old="" new="" rounds=6 seconds=10 connections=64 shards=2 threads=2 wrk_timeout=2s smoke=0
wrk=$(command -v wrk || echo /usr/bin/wrk)
nginx=$(command -v nginx || echo /usr/sbin/nginx)
while (($#)); do
  case $1 in
    --old) old=$2; shift ;;
    --new) new=$2; shift ;;
    --rounds) rounds=$2; shift ;;
    --seconds) seconds=$2; shift ;;
    --connections) connections=$2; shift ;;
    --shards) shards=$2; shift ;;
    *) echo "webhook_ab: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
[[ -n $old && -n $new ]] || { echo "usage: perf/webhook_ab.sh --old BIN --new BIN [--rounds N] [--seconds N]" >&2; exit 2; }
for tool in "$old" "$new" "$wrk" "$nginx"; do
  [[ -x $tool ]] || { echo "webhook_ab: $tool missing (scripts/setup perf; build both binaries)" >&2; exit 1; }
done

tmp=$(mktemp -d /tmp/xerv-webhook-ab.XXXXXX)
pids=()
logs_on_failure=("$tmp"/xerv.log "$tmp"/wrk.out)
trap_cleanup
take_bench_lock 600

order='{"order_id":"A-1","risk_score":0.42,"amount":125.5}'
write_wrk_post "$tmp/post.lua" "$order"

launch_xerv() {
  XERV_SHARDS=$shards XERV_API_HOST=127.0.0.1 XERV_API_PORT=$1 XERV_LOG=warn XERV_DATA_DIR="$tmp/data" \
    XERV_PIPELINES_DIR="$root/examples" "$2" serve 2>"$tmp/xerv.log" &
}
# The answer nginx serves: the one xerv gives, taken from the first binary.
start_server xerv launch_xerv "$new"
answer=$(curl -s -X POST "127.0.0.1:$server_port/orders" -d "$order")
[[ $answer == *process_safe* ]] || { echo "webhook_ab: unexpected webhook answer: $answer" >&2; exit 1; }
stop "$server_pid"
unset 'pids[-1]'
rm -rf "$tmp/data"

launch_nginx() {
  mkdir -p "$tmp/nginx"
  cat >"$tmp/nginx/nginx.conf" <<CONF
worker_processes $shards;
worker_cpu_affinity auto;
pid $tmp/nginx/nginx.pid;
error_log $tmp/nginx/error.log;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000000;
  client_body_temp_path $tmp/nginx; proxy_temp_path $tmp/nginx; fastcgi_temp_path $tmp/nginx;
  uwsgi_temp_path $tmp/nginx; scgi_temp_path $tmp/nginx;
  server {
    listen 127.0.0.1:$1 reuseport;
    location = /health { return 200 'ok'; }
    location = /orders { default_type application/json; return 200 '${answer//\'/\\\'}'; }
  }
}
CONF
  "$nginx" -p "$tmp/nginx" -c "$tmp/nginx/nginx.conf" -g 'daemon off;' &
}

# Runs a warm-up and then the measured wrk run on a fresh server; sets m_rps,
# m_p50 (µs) and m_cpu (CPU µs per request, 0 for nginx). Not in a subshell, so
# that a failure stops every server through the EXIT trap.
measure() {
  local what=$1 bin=${2:-} t0 t1 n
  if [[ $what == nginx ]]; then start_server nginx launch_nginx; else start_server xerv launch_xerv "$bin"; fi
  run_wrk "http://127.0.0.1:$server_port/orders" 2 -s "$tmp/post.lua"
  t0=$(proc_ticks "$server_pid")
  run_wrk "http://127.0.0.1:$server_port/orders" "$seconds" -s "$tmp/post.lua"
  t1=$(proc_ticks "$server_pid")
  stop "$server_pid"
  unset 'pids[-1]'
  rm -rf "$tmp/data"
  read -r m_rps m_p50 _ n <"$tmp/wrk.parsed"
  m_cpu=0
  [[ $what == nginx ]] || m_cpu=$(awk -v t=$((t1 - t0)) -v hz="$hz" -v n="$n" 'BEGIN { printf "%.1f", t / hz * 1e6 / n }')
}
run_old() { measure old "$old"; o_rps=$m_rps o_p50=$m_p50 o_cpu=$m_cpu; }
run_new() { measure new "$new"; w_rps=$m_rps w_p50=$m_p50 w_cpu=$m_cpu; }
run_nginx() { measure nginx; n_rps=$m_rps; }

echo "## Webhook A/B: wrk -t$threads -c$connections -d${seconds}s POST /orders, $shards shards, $rounds rounds"
echo
echo "old: \`$old\`, new: \`$new\`."
echo
echo "| round | old req/s | old/nginx | new req/s | new/nginx | nginx req/s | new/old | CPU µs/req old, new | p50 µs old, new |"
echo "|---|---|---|---|---|---|---|---|---|"
: >"$tmp/rows"
for ((r = 1; r <= rounds; r++)); do
  if ((r % 2)); then run_old; run_nginx; run_new; else run_new; run_nginx; run_old; fi
  echo "$o_rps $w_rps $n_rps $o_cpu $w_cpu" >>"$tmp/rows"
  awk -v r="$r" -v o="$o_rps" -v w="$w_rps" -v n="$n_rps" -v oc="$o_cpu" -v wc="$w_cpu" -v op="$o_p50" -v wp="$w_p50" \
    'BEGIN { printf "| %d | %.0f | %.3f | %.0f | %.3f | %.0f | %.3f | %s, %s | %s, %s |\n", r, o, o / n, w, w / n, n, w / o, oc, wc, op, wp }'
done
awk "$awk_stats"'
  { o[NR] = $1 / $3; w[NR] = $2 / $3; q[NR] = $2 / $1; oc[NR] = $4; wc[NR] = $5; if ($2 >= $1) ahead++ }
  END {
    printf "| median | | **%.3f** | | **%.3f** | | **%.3f** | %.1f, %.1f | |\n", median(o, NR), median(w, NR), median(q, NR), median(oc, NR), median(wc, NR)
    printf "\nnew ahead of old in %d of %d rounds; new/old per round %.3f–%.3f.\n", ahead, NR, minv(q, NR), maxv(q, NR)
  }' "$tmp/rows"
echo
echo "Command: \`perf/webhook_ab.sh --old $old --new $new --rounds $rounds --seconds $seconds --connections $connections --shards $shards\`, $(date -u +%Y-%m-%d), $(uname -r), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)."
