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

smoke=0 rounds=5 seconds=10 connections=64 threads=2 shards=2 max_wait=300 warmup=1
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

# SIGTERM, then SIGKILL after 5 s, for each pid given (and nginx's workers).
stop() {
  local p kids=() deadline
  for p in "$@"; do
    [[ -n $p ]] || continue
    mapfile -t -O "${#kids[@]}" kids < <(pgrep -P "$p" 2>/dev/null || true)
    kill -TERM "$p" 2>/dev/null || true
  done
  deadline=$((SECONDS + 5))
  for p in "$@" "${kids[@]}"; do
    [[ -n $p ]] || continue
    while kill -0 "$p" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.05; done
    kill -KILL "$p" 2>/dev/null || true
  done
  for p in "$@"; do [[ -n $p ]] && wait "$p" 2>/dev/null || true; done
}
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  ((${#pids[@]})) && stop "${pids[@]}"
  if ((rc != 0)); then
    for f in "$tmp"/xerv.log "$tmp"/nginx/error.log "$tmp"/wrk.out; do
      [[ -s $f ]] && { echo "--- $f" >&2; tail -n 20 "$f" >&2; }
    done
  fi
  rm -rf "$tmp"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Two benchmark scripts must never measure at the same time.
if ((!smoke)); then
  exec 9>/tmp/xerv-bench.lock
  flock -w "$max_wait" 9 || { echo "http_bench: another benchmark holds /tmp/xerv-bench.lock" >&2; exit 1; }
fi

# Heavy processes another developer may run on this machine; measuring next to them
# would measure them. pgrep never lists itself.
heavy_patterns=(-f:http_fuzz -f:io_tests -f:http_tests -x:echo_bench -x:msg_bench -x:cc1plus)
heavy_now() {
  local spec found=""
  for spec in "${heavy_patterns[@]}"; do
    if pgrep "${spec%%:*}" "${spec#*:}" >/dev/null 2>&1; then found+="${spec#*:} "; fi
  done
  echo "$found"
}
busy_runs=0
wait_until_quiet() {
  ((smoke)) && return 0
  local deadline=$((SECONDS + max_wait)) busy announced=""
  while busy=$(heavy_now) && [[ -n $busy ]]; do
    if ((SECONDS >= deadline)); then
      echo "http_bench: still running after ${max_wait}s: ${busy}; measuring anyway (counted in busy_runs)" >&2
      busy_runs=$((busy_runs + 1))
      return 0
    fi
    [[ -n $announced ]] || { echo "http_bench: waiting for ${busy}to finish" >&2; announced=1; }
    sleep 2
  done
}

# CPU time in USER_HZ ticks: the whole machine's busy time (user, nice, system, irq,
# softirq, steal: a task's stime includes the interrupt ticks that land while it
# runs, and loopback TCP spends ~30 % of all CPU in softirq), and what this script's
# processes used: the servers, read live, and reaped children (wrk, curl) from this
# shell's cutime+cstime. The difference over a run is what other processes took.
machine_ticks() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9 }' /proc/stat; }
proc_ticks() { awk '{ sub(/^.*\) /, ""); print $12 + $13 + $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0; }
own_ticks() {
  local p t
  t=$(proc_ticks "$$")
  for p in "$xerv_pid" "$nginx_pid" $(pgrep -P "$nginx_pid" 2>/dev/null); do t=$((t + $(proc_ticks "$p"))); done
  echo "$t"
}
hz=$(getconf CLK_TCK)

free_port() {
  local p
  while :; do
    p=$((20000 + RANDOM % 40000))
    [[ -z $(ss -Hltn "sport = :$p" 2>/dev/null) ]] && { echo "$p"; return; }
  done
}

# Up to 5 s for a server to answer on a URL; fails if its process died.
wait_ready() {
  local pid=$1 url=$2 i
  for ((i = 0; i < 100; i++)); do
    kill -0 "$pid" 2>/dev/null || return 1
    curl -sf -o /dev/null --max-time 1 "$url" && return 0
    sleep 0.05
  done
  return 1
}

start_xerv() {
  local attempt
  for attempt in 1 2 3; do
    xerv_port=$(free_port)
    XERV_API_HOST=127.0.0.1 XERV_API_PORT=$xerv_port XERV_SHARDS=$shards XERV_DEBUG_ROUTES=true \
      XERV_LOG=warn XERV_DATA_DIR="$tmp/data" "$xerv" serve 2>>"$tmp/xerv.log" &
    xerv_pid=$!
    pids+=("$xerv_pid")
    wait_ready "$xerv_pid" "http://127.0.0.1:$xerv_port/health" && return 0
    stop "$xerv_pid"
    unset 'pids[-1]'
  done
  echo "http_bench: xerv did not start" >&2
  exit 1
}

# nginx answers both routes with fixed bytes: the health body xerv returned (with a
# two-digit uptime, which xerv has for most of a round) and the posted body.
start_nginx() {
  local health_body=$1 attempt
  mkdir -p "$tmp/nginx/logs" "$tmp/nginx/tmp"
  for attempt in 1 2 3; do
    nginx_port=$(free_port)
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
    listen 127.0.0.1:$nginx_port;
    location = /health { default_type application/json; return 200 '$health_body'; }
    location = /api/v1/debug/echo { default_type application/json; return 200 '$body'; }
  }
}
EOF
    "$nginx" -p "$tmp/nginx" -c "$tmp/nginx/nginx.conf" -e "$tmp/nginx/error.log" &
    nginx_pid=$!
    pids+=("$nginx_pid")
    wait_ready "$nginx_pid" "http://127.0.0.1:$nginx_port/health" && return 0
    stop "$nginx_pid"
    unset 'pids[-1]'
  done
  echo "http_bench: nginx did not start" >&2
  exit 1
}

# The POST body: 128 bytes of JSON, fixed.
body='{"id":4711,"kind":"bench","payload":"'
while ((${#body} < 126)); do body+=x; done
body+='"}'
printf '%s' "$body" >"$tmp/body.json"
cat >"$tmp/post.lua" <<EOF
wrk.method = "POST"
wrk.body = '$body'
wrk.headers["Content-Type"] = "application/json"
EOF

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

# One wrk run; writes "req_per_s p50_us p99_us requests" to $tmp/wrk.parsed. Exits
# on any error. wrk runs in the background so that a signal reaches the trap at once.
run_wrk() {
  local url=$1 secs=$2 wrk_pid rc=0
  shift 2
  timeout $((secs + 30)) "$wrk" -t"$threads" -c"$connections" -d"${secs}s" --timeout 2s --latency "$@" "$url" >"$tmp/wrk.out" 2>&1 &
  wrk_pid=$!
  pids+=("$wrk_pid")
  wait "$wrk_pid" || rc=$?
  unset 'pids[-1]'
  ((rc == 0)) || { echo "http_bench: wrk failed on $url (exit $rc)" >&2; exit 1; }
  awk '
    function us(v) {
      if (v ~ /us$/) return v + 0
      if (v ~ /ms$/) return v * 1000
      if (v ~ /m$/) return v * 60e6
      if (v ~ /s$/) return v * 1e6
      return -1
    }
    $1 == "50%" { p50 = us($2) }
    $1 == "99%" { p99 = us($2) }
    / requests in / { n = $1 }
    /^Requests\/sec:/ { rps = $2 }
    /Non-2xx or 3xx responses:/ { bad = $NF }
    /Socket errors:/ { errs = $0 }
    END {
      if (bad + 0 > 0) { print "error: " bad " non-2xx answers"; exit }
      if (errs != "") { print "error: " errs; exit }
      if (n + 0 == 0 || rps == "") { print "error: no requests completed"; exit }
      printf "%.2f %.1f %.1f %d\n", rps, p50, p99, n
    }' "$tmp/wrk.out" >"$tmp/wrk.parsed"
  if grep -q '^error' "$tmp/wrk.parsed"; then
    echo "http_bench: $url: $(cat "$tmp/wrk.parsed")" >&2
    cat "$tmp/wrk.out" >&2
    exit 1
  fi
}

results="$tmp/runs.txt" # lines: route server rps p50 p99 requests
: >"$results"
bytes_line=""
measure() {
  local route=$1 server=$2 port path args=() rps p50 p99 n
  [[ $server == xerv ]] && port=$xerv_port || port=$nginx_port
  if [[ $route == echo ]]; then path=/api/v1/debug/echo args=(-s "$tmp/post.lua"); else path=/health; fi
  local attempt m0 o0 other limit best="" best_other=-1
  # A run during which other processes took more than 5 % of the CPU time is
  # repeated, twice at most; the quietest attempt counts.
  limit=$((seconds * $(nproc) * hz / 20))
  for attempt in 1 2 3; do
    wait_until_quiet
    m0=$(machine_ticks) o0=$(own_ticks)
    run_wrk "http://127.0.0.1:$port$path" "$seconds" "${args[@]}"
    other=$(($(machine_ticks) - m0 - ($(own_ticks) - o0)))
    ((other > 0)) || other=0
    read -r rps p50 p99 n <"$tmp/wrk.parsed"
    printf 'http_bench: round %d %-6s %-5s %10.0f req/s  p50 %7.0f us  p99 %7.0f us  other processes %.2f CPU-s\n' \
      "$round" "$route" "$server" "$rps" "$p50" "$p99" "$(awk -v t="$other" -v hz="$hz" 'BEGIN { print t / hz }')" >&2
    if ((best_other < 0 || other < best_other)); then best="$rps $p50 $p99 $n $other" best_other=$other; fi
    ((smoke || other <= limit)) && break
    if ((attempt < 3)); then
      echo "http_bench: too much other work during that run; again" >&2
      repeated_runs=$((repeated_runs + 1))
    fi
  done
  echo "$route $server $best" >>"$results"
}
repeated_runs=0

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
    -v busy="$busy_runs" -v repeated="$repeated_runs" -v hz="$hz" '
    function median(a, n,   i, j, t) {
      for (i = 2; i <= n; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
      return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
    }
    function minv(a, n,   i, m) { m = a[1]; for (i = 2; i <= n; i++) if (a[i] < m) m = a[i]; return m }
    function maxv(a, n,   i, m) { m = a[1]; for (i = 2; i <= n; i++) if (a[i] > m) m = a[i]; return m }
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
