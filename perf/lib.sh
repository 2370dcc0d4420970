# Shell helpers the benchmark scripts share; sourced, never run:
#   . "$(dirname "$0")/lib.sh"
# It only defines functions and a few variables. What a helper reads from the script
# that sources it, it names in its comment:
#   bench_name      the prefix of every message ("http_bench")
#   tmp             the script's scratch directory, removed on exit
#   pids            every process the script started and has not stopped yet
#   smoke           1 for a smoke run: no waiting and no repeated runs
#   max_wait        how long to wait for heavy processes, in seconds
#   heavy_patterns  "pgrep-flag:pattern" items for the processes worth waiting for
#   logs_on_failure files whose tail is shown when the script fails
#   wrk threads connections wrk_timeout   wrk's path and -t, -c, --timeout

# USER_HZ: the unit of every *_ticks figure below (CPU time in /proc).
hz=$(getconf CLK_TCK)
# Counted by wait_until_quiet and repeat_noisy_run, for the JSON output.
busy_runs=0 repeated_runs=0

# SIGTERM, then SIGKILL after 5 s, for each pid given and for its children (nginx's
# workers, the wrk under a timeout); reaps the pids given. Empty arguments are skipped.
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

# The EXIT trap: stops every process in pids, shows the last 20 lines of each
# non-empty file in logs_on_failure when the exit status is not 0, removes $tmp and
# exits with the status the script had.
cleanup() {
  local rc=$? f
  trap - EXIT INT TERM
  ((${#pids[@]})) && stop "${pids[@]}"
  if ((rc != 0)); then
    for f in "${logs_on_failure[@]}"; do
      [[ -s $f ]] && { echo "--- $f" >&2; tail -n 20 "$f" >&2; }
    done
  fi
  rm -rf "$tmp"
  exit "$rc"
}

# Installs cleanup on exit; Ctrl-C exits 130 and SIGTERM 143, through cleanup.
trap_cleanup() {
  trap cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
}

# Takes /tmp/xerv-bench.lock on fd 9 for the rest of the script, so that two
# benchmark scripts never measure at the same time; waits up to $1 seconds for it,
# then exits 1.
take_bench_lock() {
  exec 9>/tmp/xerv-bench.lock
  flock -w "$1" 9 || { echo "$bench_name: another benchmark holds /tmp/xerv-bench.lock" >&2; exit 1; }
}

# Prints the heavy processes running now (those of heavy_patterns: tests, fuzzers,
# other benchmarks, a compiler), each followed by a space; nothing when there are
# none. Measuring next to them would measure them. pgrep never lists itself.
heavy_now() {
  local spec found=""
  for spec in "${heavy_patterns[@]}"; do
    if pgrep "${spec%%:*}" "${spec#*:}" >/dev/null 2>&1; then found+="${spec#*:} "; fi
  done
  echo "$found"
}

# Waits while heavy_now lists anything, up to max_wait seconds; after that measures
# anyway and counts the run in busy_runs. Returns 0 at once in a smoke run.
wait_until_quiet() {
  ((smoke)) && return 0
  local deadline=$((SECONDS + max_wait)) busy announced=""
  while busy=$(heavy_now) && [[ -n $busy ]]; do
    if ((SECONDS >= deadline)); then
      echo "$bench_name: still running after ${max_wait}s: ${busy}; measuring anyway (counted in busy_runs)" >&2
      busy_runs=$((busy_runs + 1))
      return 0
    fi
    [[ -n $announced ]] || { echo "$bench_name: waiting for ${busy}to finish" >&2; announced=1; }
    sleep 2
  done
}

# Prints the whole machine's busy CPU ticks so far (user, nice, system, irq, softirq,
# steal).
machine_ticks() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9 }' /proc/stat; }
# The same without irq and softirq: for telling other work apart, as interrupt
# ticks that land on an idle CPU belong to no process (a loopback-heavy cluster
# makes seconds of them) while those that land in a process are in its stime.
task_ticks() { awk '/^cpu / { print $2 + $3 + $4 + $9 }' /proc/stat; }
# Prints the CPU ticks process $1 used, its own and its reaped children's (utime,
# stime, cutime, cstime); 0 when it is gone.
proc_ticks() { awk '{ sub(/^.*\) /, ""); print $12 + $13 + $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0; }
# Prints the ticks the hypervisor gave other guests so far (steal: counted in
# machine_ticks, so in a run's "other processes" too; printed apart so that a
# noisy neighbour can be told from a process here).
steal_ticks() { awk '/^cpu / { print $9 }' /proc/stat; }
# Prints the CPU ticks all kernel threads used so far (PF_KTHREAD in the flags):
# writeback, the ext4 journal, kworkers and ksoftirqd, mostly working for the
# servers measured (their fdatasyncs, their loopback traffic), so not noise.
# (A process that exits during the scan makes cat fail: not an error here.)
kernel_ticks() {
  { cat /proc/[0-9]*/stat 2>/dev/null || true; } |
    awk '{ sub(/^.*\) /, ""); if (int($7 / 2097152) % 2) t += $12 + $13 } END { print t + 0 }'
}
# Prints the CPU ticks this script used: this shell with its reaped children (wrk,
# fio, curl), plus each live process given (the servers, read live). Empty arguments
# are skipped.
own_ticks() {
  local p t
  t=$(proc_ticks "$$")
  for p in "$@"; do
    if [[ -n $p ]]; then t=$((t + $(proc_ticks "$p"))); fi
  done
  echo "$t"
}
# Prints $1 ticks as CPU seconds, two decimals.
cpu_s() { awk -v t="$1" -v hz="$hz" 'BEGIN { printf "%.2f", t / hz }'; }
# Prints 5 % of the machine's CPU time in $1 seconds, in ticks: how much other
# processes may take during a run before it is repeated.
noise_limit() { echo $(($1 * $(nproc) * hz / 20)); }

# After attempt $3 (of 3) of a run during which other processes took $1 ticks:
# returns 0 when the run is to be repeated, because $1 exceeds the limit $2 and this
# is neither a smoke run nor the last attempt (says so and counts it in
# repeated_runs); returns 1 when the attempts are over.
repeat_noisy_run() {
  local other=$1 limit=$2 attempt=$3
  ((smoke || other <= limit)) && return 1
  ((attempt < 3)) || return 1
  echo "$bench_name: too much other work during that run; again" >&2
  repeated_runs=$((repeated_runs + 1))
}

# Prints a free TCP port on this machine: a random one from 20000..32767, below
# the kernel's ephemeral range (32768..60999 by default), so that no client
# connection of another run holds it as its local port.
free_port() {
  local p
  while :; do
    p=$((20000 + RANDOM % 12768))
    [[ -z $(ss -Hltn "sport = :$p" 2>/dev/null) ]] && { echo "$p"; return; }
  done
}

# Returns 0 once a GET of URL $2 succeeds, within 5 s; 1 when it does not or when
# process $1 dies first.
wait_ready() {
  local pid=$1 url=$2 i
  for ((i = 0; i < 100; i++)); do
    kill -0 "$pid" 2>/dev/null || return 1
    curl -sf -o /dev/null --max-time 1 "$url" && return 0
    sleep 0.05
  done
  return 1
}

# Starts a server on a free port, up to three times: function $2, called with the
# port and the further arguments, starts it in the background. Returns with
# server_port and server_pid set (the pid added to pids) once GET /health answers
# on 127.0.0.1; exits 1 with "$1 did not start" otherwise.
start_server() {
  local name=$1 launch=$2 attempt
  shift 2
  for attempt in 1 2 3; do
    server_port=$(free_port)
    "$launch" "$server_port" "$@"
    server_pid=$!
    pids+=("$server_pid")
    wait_ready "$server_pid" "http://127.0.0.1:$server_port/health" && return 0
    stop "$server_pid"
    unset 'pids[-1]'
  done
  echo "$bench_name: $name did not start" >&2
  exit 1
}

# Writes a wrk script to $1 that POSTs $2 (no single quotes in it) as JSON.
write_wrk_post() {
  cat >"$1" <<EOF
wrk.method = "POST"
wrk.body = '$2'
wrk.headers["Content-Type"] = "application/json"
EOF
}

# One wrk run on URL $1 for $2 seconds, further arguments to wrk after that; writes
# "req_per_s p50_us p99_us requests" to $tmp/wrk.parsed (wrk's own output in
# $tmp/wrk.out). Exits 1 on a wrk failure, a non-2xx answer, a socket error or no
# completed request. wrk runs in the background so that a signal reaches the trap at
# once.
run_wrk() {
  local url=$1 secs=$2 wrk_pid rc=0
  shift 2
  timeout $((secs + 30)) "$wrk" -t"$threads" -c"$connections" -d"${secs}s" --timeout "$wrk_timeout" --latency \
    "$@" "$url" >"$tmp/wrk.out" 2>&1 &
  wrk_pid=$!
  pids+=("$wrk_pid")
  wait "$wrk_pid" || rc=$?
  unset 'pids[-1]'
  ((rc == 0)) || { echo "$bench_name: wrk failed on $url (exit $rc)" >&2; exit 1; }
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
      if (n + 0 == 0 || rps == "" || p50 < 0 || p99 < 0) { print "error: no requests completed"; exit }
      printf "%.2f %.1f %.1f %d\n", rps, p50, p99, n
    }' "$tmp/wrk.out" >"$tmp/wrk.parsed"
  if grep -q '^error' "$tmp/wrk.parsed"; then
    echo "$bench_name: $url: $(cat "$tmp/wrk.parsed")" >&2
    cat "$tmp/wrk.out" >&2
    exit 1
  fi
}

# awk functions over an array a[1..n] of numbers, to put in front of an awk program
# ("$awk_stats"'...'): median(a, n), minv(a, n), maxv(a, n). median leaves a as it is.
awk_stats='
  function median(a, n,   i, j, t, c) {
    for (i = 1; i <= n; i++) c[i] = a[i]
    for (i = 2; i <= n; i++) { t = c[i]; for (j = i - 1; j >= 1 && c[j] > t; j--) c[j + 1] = c[j]; c[j + 1] = t }
    return n % 2 ? c[(n + 1) / 2] : (c[n / 2] + c[n / 2 + 1]) / 2
  }
  function minv(a, n,   i, m) { m = a[1]; for (i = 2; i <= n; i++) if (a[i] < m) m = a[i]; return m }
  function maxv(a, n,   i, m) { m = a[1]; for (i = 2; i <= n; i++) if (a[i] > m) m = a[i]; return m }
'

# Prints file $3 (perf/RESULTS.md) with what stands between its lines
# "<!-- $1:begin -->" and "<!-- $1:end -->" replaced by file $2; the markers stay.
results_with_section() {
  awk -v begin="<!-- $1:begin -->" -v end="<!-- $1:end -->" -v gen="$2" '
    index($0, begin) { print; while ((getline line < gen) > 0) print line; skip = 1; next }
    index($0, end) { skip = 0 }
    !skip { print }
  ' "$3"
}
