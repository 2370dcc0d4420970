#!/usr/bin/env bash
# wrk against xerv and nginx on GET /health and POST /api/v1/debug/echo, both
# answering with the same body bytes (see perf/README.md). Prints one JSON line per
# route on stdout (the fields of perf/harness.h: xerv is "ours", nginx the
# baseline) and a readable summary on stderr.
#
#   perf/http_bench.sh [--smoke] [--rounds N] [--seconds N] [--connections N]
#                      [--threads N] [--shards N] [--xerv PATH] [--nginx PATH] [--wrk PATH]
#
# Each round starts a fresh xerv (N shards) and a fresh nginx (N workers, pinned with
# worker_cpu_affinity auto), both on 127.0.0.1, then runs wrk against each in turn:
# echo, echo, health, health, with the server that goes first alternating between
# rounds. Medians over the rounds are reported. Every wrk run must be free of
# non-2xx answers and socket errors, or the script exits 1. Loopback only; every
# process it starts is stopped by pid on exit, also on failure or Ctrl-C.
#
# Before each measured run it waits (up to --max-wait seconds, 300 by default) while
# another heavy process runs (tests, fuzzer, another benchmark, a compiler), and
# takes a lock so two benchmark scripts never measure at once. --smoke (1 round of
# 1 s runs, no warm-up) skips both: it only checks that everything works.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
. "$(dirname "$0")/lib.sh"
bench_name=http_bench

smoke=0 rounds=5 seconds=10 connections=64 threads=2 shards=2 max_wait=300 warmup=1 wrk_timeout=2s
xerv="$root/build/release/app/xerv"
nginx=$(command -v nginx || echo /usr/sbin/nginx)
wrk=$(command -v wrk || echo /usr/bin/wrk)
while (($#)); do
  case $1 in
    --smoke) smoke=1 rounds=1 seconds=1 warmup=0 ;;
    --rounds) rounds=$2; shift ;;
    --seconds) seconds=$2; shift ;;
    --connections) connections=$2; shift ;;
    --threads) threads=$2; shift ;;
    --shards) shards=$2; shift ;;
    --max-wait) max_wait=$2; shift ;;
    --xerv) xerv=$2; shift ;;
    --nginx) nginx=$2; shift ;;
    --wrk) wrk=$2; shift ;;
    *) echo "http_bench: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
for tool in "$xerv" "$nginx" "$wrk"; do
  [[ -x $tool ]] || { echo "http_bench: $tool is missing (scripts/setup perf installs wrk and nginx; build xerv first)" >&2; exit 1; }
done
command -v curl >/dev/null || { echo "http_bench: curl is missing" >&2; exit 1; }

tmp=$(mktemp -d /tmp/xerv-http-bench.XXXXXX)
pids=() # every process started here; stopped by pid in cleanup
xerv_pid="" nginx_pid=""
logs_on_failure=("$tmp"/xerv.log "$tmp"/nginx/error.log "$tmp"/wrk.out)
trap_cleanup

if ((!smoke)); then take_bench_lock "$max_wait"; fi

# Heavy processes another developer may run on this machine (see heavy_now).
heavy_patterns=(-f:http_fuzz -f:io_tests -f:http_tests -x:echo_bench -x:msg_bench -x:cc1plus)

# CPU time in USER_HZ ticks: the machine's task time (task_ticks: user, system,
# steal; not the interrupt ticks that land on an idle CPU and belong to no
# process), less what this script's processes used (own_ticks: the servers, read
# live, and reaped children: wrk, curl) and what kernel threads took
# (kernel_ticks), is what other processes took over a run.
servers_ticks() { own_ticks "$xerv_pid" "$nginx_pid" $(pgrep -P "$nginx_pid" 2>/dev/null); }

launch_xerv() {
  XERV_API_HOST=127.0.0.1 XERV_API_PORT=$1 XERV_SHARDS=$shards XERV_DEBUG_ROUTES=true \
    XERV_LOG=warn XERV_DATA_DIR="$tmp/data" "$xerv" serve 2>>"$tmp/xerv.log" &
}
start_xerv() {
  start_server xerv launch_xerv
  xerv_port=$server_port xerv_pid=$server_pid
}

# nginx answers both routes with fixed bytes: the health body xerv returned (with a
# two-digit uptime, which xerv has for most of a round) and the posted body.
launch_nginx() {
  local port=$1 health_body=$2
  cat >"$tmp/nginx/nginx.conf" <<EOF
daemon off;
master_process on;
worker_processes $shards;
worker_cpu_affinity auto;
pid $tmp/nginx/nginx.pid;
error_log $tmp/nginx/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  server_tokens off;
  keepalive_requests 100000000;
  client_body_temp_path $tmp/nginx/tmp/body;
  proxy_temp_path $tmp/nginx/tmp/proxy;
  fastcgi_temp_path $tmp/nginx/tmp/fastcgi;
  uwsgi_temp_path $tmp/nginx/tmp/uwsgi;
  scgi_temp_path $tmp/nginx/tmp/scgi;
  server {
    listen 127.0.0.1:$port;
    location = /health { default_type application/json; return 200 '$health_body'; }
    location = /api/v1/debug/echo { default_type application/json; return 200 '$body'; }
  }
}
EOF
  "$nginx" -p "$tmp/nginx" -c "$tmp/nginx/nginx.conf" -e "$tmp/nginx/error.log" &
}
start_nginx() {
  mkdir -p "$tmp/nginx/logs" "$tmp/nginx/tmp"
  start_server nginx launch_nginx "$1"
  nginx_port=$server_port nginx_pid=$server_pid
}

# The POST body: 128 bytes of JSON, fixed.
body='{"id":4711,"kind":"bench","payload":"'
while ((${#body} < 126)); do body+=x; done
body+='"}'
printf '%s' "$body" >"$tmp/body.json"
write_wrk_post "$tmp/post.lua" "$body"

# Bytes on the wire per response (status line, headers, body) for a route.
response_bytes() {
  local url=$1
  shift
  curl -s -o /dev/null -w '%{size_header} %{size_download}' "$@" "$url" | awk '{ print $1 + $2 }'
}
echo_args=(-H 'Content-Type: application/json' --data-binary "@$tmp/body.json")

check_answers() {
  local got
  got=$(curl -s "${echo_args[@]}" "http://127.0.0.1:$xerv_port/api/v1/debug/echo") || true
  [[ $got == "$body" ]] || { echo "http_bench: xerv echo answered '$got'" >&2; exit 1; }
  got=$(curl -s "${echo_args[@]}" "http://127.0.0.1:$nginx_port/api/v1/debug/echo") || true
  [[ $got == "$body" ]] || { echo "http_bench: nginx echo answered '$got'" >&2; exit 1; }
  got=$(curl -s "http://127.0.0.1:$nginx_port/health") || true
  [[ $got == "$1" ]] || { echo "http_bench: nginx health answered '$got'" >&2; exit 1; }
}

results="$tmp/runs.txt" # lines: route server rps p50 p99 requests
: >"$results"
bytes_line=""
measure() {
  local route=$1 server=$2 port path args=() rps p50 p99 n
  [[ $server == xerv ]] && port=$xerv_port || port=$nginx_port
  if [[ $route == echo ]]; then path=/api/v1/debug/echo args=(-s "$tmp/post.lua"); else path=/health; fi
  local attempt m0 o0 k0 other limit best="" best_other=-1
  # A run during which other processes took more than 5 % of the CPU time is
  # repeated, twice at most; the quietest attempt counts.
  limit=$(noise_limit "$seconds")
  for attempt in 1 2 3; do
    wait_until_quiet
    m0=$(task_ticks) o0=$(servers_ticks) k0=$(kernel_ticks)
    run_wrk "http://127.0.0.1:$port$path" "$seconds" "${args[@]}"
    other=$(($(task_ticks) - m0 - ($(servers_ticks) - o0) - ($(kernel_ticks) - k0)))
    ((other > 0)) || other=0
    read -r rps p50 p99 n <"$tmp/wrk.parsed"
    printf 'http_bench: round %d %-6s %-5s %10.0f req/s  p50 %7.0f us  p99 %7.0f us  other processes %.2f CPU-s\n' \
      "$round" "$route" "$server" "$rps" "$p50" "$p99" "$(cpu_s "$other")" >&2
    if ((best_other < 0 || other < best_other)); then best="$rps $p50 $p99 $n $other" best_other=$other; fi
    repeat_noisy_run "$other" "$limit" "$attempt" || break
  done
  echo "$route $server $best" >>"$results"
}

for ((round = 1; round <= rounds; round++)); do
  start_xerv
  xerv_health=$(curl -s "http://127.0.0.1:$xerv_port/health") || true
  [[ $xerv_health == *'"status":"healthy"'*'"uptime_secs":'* ]] || { echo "http_bench: xerv health answered '$xerv_health'" >&2; exit 1; }
  nginx_health=$(sed -E 's/"uptime_secs":[0-9]+/"uptime_secs":42/' <<<"$xerv_health")
  start_nginx "$nginx_health"
  check_answers "$nginx_health"
  if ((round % 2)); then order=(xerv nginx); else order=(nginx xerv); fi
  if ((warmup)); then
    for s in "${order[@]}"; do
      [[ $s == xerv ]] && port=$xerv_port || port=$nginx_port
      run_wrk "http://127.0.0.1:$port/api/v1/debug/echo" "$warmup" -s "$tmp/post.lua"
    done
  fi
  for s in "${order[@]}"; do measure echo "$s"; done
  # xerv's uptime has two digits, like nginx's copy, from 10 s to 99 s; a full round
  # gets there by itself, a smoke round does not (one byte of difference).
  if ((!smoke)); then
    up=$(curl -sf "http://127.0.0.1:$xerv_port/health" | sed -E 's/.*"uptime_secs":([0-9]+).*/\1/')
    ((up >= 10)) || sleep $((10 - up))
  fi
  bytes_line="$(response_bytes "http://127.0.0.1:$xerv_port/health") $(response_bytes "http://127.0.0.1:$nginx_port/health")"
  bytes_line+=" $(response_bytes "http://127.0.0.1:$xerv_port/api/v1/debug/echo" "${echo_args[@]}")"
  bytes_line+=" $(response_bytes "http://127.0.0.1:$nginx_port/api/v1/debug/echo" "${echo_args[@]}")"
  for s in "${order[@]}"; do measure health "$s"; done
  stop "$xerv_pid" "$nginx_pid"
  pids=()
done

read -r xh nh xe ne <<<"$bytes_line"
cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
kernel="$(uname -s) $(uname -r)"
for route in echo health; do
  if [[ $route == echo ]]; then name="http_echo_128B_c${connections}_t${threads}" xb=$xe nb=$ne
  else name="http_health_c${connections}_t${threads}" xb=$xh nb=$nh; fi
  awk -v route="$route" -v name="$name" -v runs="$rounds" -v cpu="${cpu:-unknown}" -v kernel="$kernel" \
    -v conns="$connections" -v thr="$threads" -v secs="$seconds" -v shards="$shards" -v xb="$xb" -v nb="$nb" \
    -v busy="$busy_runs" -v repeated="$repeated_runs" -v hz="$hz" "$awk_stats"'
    $1 == route && $2 == "xerv" { x++; xr[x] = $3; xp50[x] = $4; xp99[x] = $5; xn += $6; xo[x] = $7 / hz }
    $1 == route && $2 == "nginx" { g++; gr[g] = $3; gp50[g] = $4; gp99[g] = $5; gn += $6; go[g] = $7 / hz }
    END {
      xmin = minv(xr, x); xmax = maxv(xr, x); gmin = minv(gr, g); gmax = maxv(gr, g)
      xm = median(xr, x); gm = median(gr, g); ratio = gm > 0 ? xm / gm : 0
      printf "{\"name\":\"%s\",\"unit\":\"requests/s\",\"runs\":%d,\"median\":%.10g,\"min\":%.10g,\"max\":%.10g,", name, runs, xm, xmin, xmax
      printf "\"baseline\":\"nginx\",\"baseline_median\":%.10g,\"baseline_min\":%.10g,\"baseline_max\":%.10g,\"ratio\":%.4f,", gm, gmin, gmax, ratio
      printf "\"requests\":%d,\"baseline_requests\":%d,\"connections\":%d,\"wrk_threads\":%d,\"seconds\":%d,\"shards\":%d,\"nginx_workers\":%d,", xn, gn, conns, thr, secs, shards, shards
      printf "\"response_bytes\":%d,\"baseline_response_bytes\":%d,\"busy_runs\":%d,\"repeated_runs\":%d,", xb, nb, busy, repeated
      printf "\"ours_other_cpu_s_max\":%.2f,\"baseline_other_cpu_s_max\":%.2f,", maxv(xo, x), maxv(go, g)
      printf "\"ours_p50_us\":%.10g,\"ours_p99_us\":%.10g,\"baseline_p50_us\":%.10g,\"baseline_p99_us\":%.10g,", median(xp50, x), median(xp99, x), median(gp50, g), median(gp99, g)
      printf "\"cpu\":\"%s\",\"kernel\":\"%s\"}\n", cpu, kernel
      printf "%-28s xerv %.4g requests/s [%.4g..%.4g]  nginx %.4g [%.4g..%.4g]  ratio %.3f\n", name, xm, xmin, xmax, gm, gmin, gmax, ratio > "/dev/stderr"
    }' "$results"
done
