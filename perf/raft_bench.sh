#!/usr/bin/env bash
# Durable admissions on a 3-node Raft cluster against etcd (issue 13), in one run:
#  - xerv: three `xerv serve` on loopback (XERV_DISPATCH_BACKEND=raft, each its own
#    data directory, XERV_WAL_SYNC=always, election timeout 1000 ms, heartbeat
#    100 ms), one pipeline whose async webhook answers 202 once the admission is
#    committed on a majority, its flow one std::log node; wrk POSTs a small JSON
#    body to it, so 2xx/s = durable admissions/s;
#  - baseline: a 3-member etcd (the same timeouts) on loopback, v3 puts through
#    its gRPC gateway (POST /v3/kv/put, base64 key and value), each 200 once the
#    put is committed on a majority and applied;
#  - failover: --failovers times (10), kill -9 of xerv's leader (raft_bench_probe
#    kills it and starts the clock), then the time until an admission through
#    each survivor answers 202 again and until every survivor's /health names a
#    new leader; the killed node restarts on its data directory and must have
#    caught up before the next kill.
# Both clusters are loaded the same way: three wrk processes (-t1), one per
# member, the connections split among them, for the same duration, on the same
# two CPUs as the servers; p50/p99 come from the three runs' merged latency
# histograms (wrk records each request to the µs). Prints one JSON line per
# measurement on stdout and a Markdown section on stderr, which a full run also
# writes into perf/RESULTS.md (between the raft_bench:begin/end markers, with its
# heading appended at the end the first time).
#
#   perf/raft_bench.sh [--smoke] [--rounds N] [--seconds N] [--connections "32 128"]
#                      [--failovers N] [--shards N] [--dir DIR] [--max-wait N]
#                      [--no-record] [--xerv PATH] [--probe PATH] [--wrk PATH]
#                      [--etcd PATH]
#
# Each round measures every connection count on both systems, the one that goes
# first alternating; medians over the rounds (3), [min..max] as the spread. A run
# with a socket error, a timeout or a non-2xx answer fails the script, and so
# does a run whose answers the servers' own counters (xerv's 202s on /metrics,
# etcd's revision) do not account for. Data directories live under --dir
# (/var/tmp: a real disk). Loopback only, kernel-free random ports; every process
# it starts is stopped by pid on exit, also on failure or Ctrl-C.
#
# Before each measured run it waits (up to --max-wait seconds, 300) while another
# heavy process runs, holds /tmp/xerv-bench.lock, and repeats a run (twice at
# most) when other processes (kernel threads not counted: kernel_ticks) took more than 5 % of the CPU time meanwhile.
# --smoke (1 round, 1 s runs, 6 connections, 1 failover, no RESULTS.md) skips
# those: it only checks that everything works and every figure comes out.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
. "$(dirname "$0")/lib.sh"
bench_name=raft_bench

smoke=0 rounds=3 seconds=10 conn_list="32 128" failovers=10 shards=1 warmup=1 record=1
max_wait=300 parent=/var/tmp wrk_timeout=5s
election_ms=1000 heartbeat_ms=100
xerv="$root/build/release/app/xerv"
probe="$root/build/release/perf/raft_bench_probe"
wrk=$(command -v wrk || echo /usr/bin/wrk)
etcd=$(command -v etcd || echo /usr/bin/etcd)
args=("$@")
while (($#)); do
  case $1 in
    --smoke) smoke=1 rounds=1 seconds=1 conn_list=6 failovers=1 warmup=0 record=0 ;;
    --rounds) rounds=$2; shift ;;
    --seconds) seconds=$2; shift ;;
    --connections) conn_list=$2; shift ;;
    --failovers) failovers=$2; shift ;;
    --shards) shards=$2; shift ;;
    --dir) parent=$2; shift ;;
    --max-wait) max_wait=$2; shift ;;
    --no-record) record=0 ;;
    --xerv) xerv=$2; shift ;;
    --probe) probe=$2; shift ;;
    --wrk) wrk=$2; shift ;;
    --etcd) etcd=$2; shift ;;
    *) echo "raft_bench: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
for tool in "$xerv" "$probe" "$wrk" "$etcd"; do
  [[ -x $tool ]] || { echo "raft_bench: $tool is missing (scripts/setup perf installs wrk and etcd-server; build the xerv and raft_bench_probe targets)" >&2; exit 1; }
done
for tool in curl jq; do
  command -v "$tool" >/dev/null || { echo "raft_bench: $tool is missing (scripts/setup installs it)" >&2; exit 1; }
done
read -ra conns <<<"$conn_list"
for c in "${conns[@]}"; do
  [[ $c =~ ^[0-9]+$ ]] && ((c >= 3)) || { echo "raft_bench: --connections takes counts of 3 or more (one wrk per member)" >&2; exit 2; }
done
((failovers >= 1 && rounds >= 1 && seconds >= 1)) || { echo "raft_bench: --rounds, --seconds and --failovers take 1 or more" >&2; exit 2; }

mkdir -p "$parent"
tmp=$(mktemp -d "$parent/xerv-raft-bench.XXXXXX")
# What is measured: a copy (a rebuild during the run changes nothing), and where it
# came from, as wal_bench.sh says it.
xerv_src=$(readlink -f "$xerv")
xerv_desc="$xerv_src, built $(date -u -r "$xerv_src" '+%Y-%m-%d %H:%M UTC'), sha256 $(sha256sum "$xerv_src" | cut -c1-12)"
if [[ $xerv_src == "$root"/* ]]; then
  if [[ -n $(cd "$root" && find core io http flows app raft backends -newer "$xerv_src" -print -quit 2>/dev/null) ]]; then
    xerv_desc+=", older than some of its sources"
  elif git -C "$root" diff --quiet HEAD -- core io http flows app raft backends 2>/dev/null; then
    xerv_desc+=", sources as in $(git -C "$root" rev-parse --short HEAD 2>/dev/null)"
  else
    xerv_desc+=", from sources with uncommitted changes"
  fi
else
  xerv_desc+=", built outside this checkout"
fi
cp "$xerv_src" "$tmp/xerv"
xerv="$tmp/xerv"
etcd_version=$("$etcd" --version 2>/dev/null | awk '/^etcd Version/ { print $3 }')
pids=() # every process started here and not yet reaped; stopped by pid in cleanup
logs_on_failure=("$tmp"/xerv-1.log "$tmp"/xerv-2.log "$tmp"/xerv-3.log "$tmp"/etcd-1.log "$tmp"/etcd-2.log
  "$tmp"/etcd-3.log "$tmp"/wrk-1.out "$tmp"/wrk-2.out "$tmp"/wrk-3.out "$tmp"/probe.err)
trap_cleanup
fail() { echo "raft_bench: $*" >&2; exit 1; }
# Drops pid $1 from pids once it has been reaped (its number may be reused).
forget_pid() {
  local keep=() p
  for p in "${pids[@]}"; do [[ $p == "$1" ]] || keep+=("$p"); done
  pids=("${keep[@]}")
}
now_ms() { echo $(($(date +%s%N) / 1000000)); }

fstype=$(findmnt -no FSTYPE -T "$tmp" 2>/dev/null || stat -f -c %T "$tmp")
if [[ $fstype == tmpfs || $fstype == ramfs ]]; then
  ((smoke)) || fail "$parent is on $fstype; pass --dir with a directory on a real disk"
  echo "raft_bench: $parent is on $fstype: the smoke run only checks that everything works" >&2
fi
if ((!smoke)); then take_bench_lock "$max_wait"; fi
heavy_patterns=(-f:'_fuzz( |$)' -f:io_tests -f:http_tests -f:unit_tests -f:crash_tests -x:echo_bench -x:msg_bench -x:cc1plus)

# Twelve distinct free ports: raft and API for each xerv node, peer and client for
# each etcd member.
pool=()
while ((${#pool[@]} < 12)); do
  p=$(free_port)
  [[ " ${pool[*]} " == *" $p "* ]] || pool+=("$p")
done
xraft=(0 "${pool[@]:0:3}") xapi=(0 "${pool[@]:3:3}") epeer=(0 "${pool[@]:6:3}") eclient=(0 "${pool[@]:9:3}")
xpid=(0 "" "" "") epid=(0 "" "" "")

# ---- xerv ----------------------------------------------------------------------
launch_xerv() {
  local i=$1 j peers=""
  for j in 1 2 3; do ((j == i)) || peers+="${peers:+,}$j:127.0.0.1:${xraft[j]}"; done
  XERV_DATA_DIR="$tmp/xerv-$i" XERV_DISPATCH_BACKEND=raft XERV_DISPATCH_RAFT_NODE_ID=$i \
    XERV_DISPATCH_RAFT_LISTEN_ADDR="127.0.0.1:${xraft[i]}" XERV_DISPATCH_RAFT_PEERS="$peers" \
    XERV_DISPATCH_RAFT_ELECTION_TIMEOUT_MS=$election_ms XERV_DISPATCH_RAFT_HEARTBEAT_MS=$heartbeat_ms \
    XERV_API_HOST=127.0.0.1 XERV_API_PORT="${xapi[i]}" XERV_SHARDS=$shards XERV_WAL_SYNC=always XERV_LOG=warn \
    "$xerv" serve >>"$tmp/xerv-$i.log" 2>&1 &
  xpid[i]=$!
  pids+=("$!")
}
# Waits (up to 30 s) until node $1 answers GET /ready with 200: the group has a
# leader and this node has caught up.
wait_xerv_ready() {
  local i=$1 deadline=$((SECONDS + 30))
  while ((SECONDS < deadline)); do
    kill -0 "${xpid[i]}" 2>/dev/null || fail "xerv node $i exited"
    [[ $(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "http://127.0.0.1:${xapi[i]}/ready") == 200 ]] && return 0
    sleep 0.05
  done
  fail "xerv node $i not ready within 30 s"
}
xhealth() { curl -sf --max-time 2 "http://127.0.0.1:${xapi[$1]}/health"; }
# Prints the leader every node in $@ names (up to 15 s), or fails.
xerv_leader() {
  local deadline=$((SECONDS + 15)) i named l ls
  while ((SECONDS < deadline)); do
    named=""
    for i in "$@"; do
      l=$(xhealth "$i" | jq -r '.raft.leader_id' 2>/dev/null) || l=x
      named+="$l "
    done
    read -ra ls <<<"$named"
    if [[ ${ls[0]} =~ ^[1-3]$ ]] && [[ $(printf '%s\n' "${ls[@]}" | sort -u | wc -l) == 1 ]]; then
      echo "${ls[0]}"
      return 0
    fi
    sleep 0.05
  done
  fail "the xerv nodes $* name no common leader within 15 s (named: $named)"
}
# The 202s node $1 answered on webhooks so far (its /metrics).
x202() {
  curl -sf --max-time 5 "http://127.0.0.1:${xapi[$1]}/metrics" |
    awk '/^xerv_http_requests_total\{.*route="webhook"/ && /code="202"/ { n += $NF } END { print n + 0 }'
}

# ---- etcd ----------------------------------------------------------------------
launch_etcd() {
  local i=$1 j cluster=""
  for j in 1 2 3; do cluster+="${cluster:+,}m$j=http://127.0.0.1:${epeer[j]}"; done
  "$etcd" --name "m$i" --data-dir "$tmp/etcd-$i" \
    --listen-client-urls "http://127.0.0.1:${eclient[i]}" --advertise-client-urls "http://127.0.0.1:${eclient[i]}" \
    --listen-peer-urls "http://127.0.0.1:${epeer[i]}" --initial-advertise-peer-urls "http://127.0.0.1:${epeer[i]}" \
    --initial-cluster "$cluster" --initial-cluster-state new --initial-cluster-token "raft-bench-$$" \
    --heartbeat-interval $heartbeat_ms --election-timeout $election_ms \
    --logger zap --log-level warn >>"$tmp/etcd-$i.log" 2>&1 &
  epid[i]=$!
  pids+=("$!")
}
wait_etcd_ready() {
  local i=$1 deadline=$((SECONDS + 30))
  while ((SECONDS < deadline)); do
    kill -0 "${epid[i]}" 2>/dev/null || fail "etcd member $i exited"
    curl -s --max-time 1 "http://127.0.0.1:${eclient[i]}/health" 2>/dev/null | grep -q '"health":"true"' && return 0
    sleep 0.05
  done
  fail "etcd member $i not healthy within 30 s"
}
etcd_key=$(printf bench | base64) etcd_value=$(printf x | base64)
# etcd's current revision (one more per put), read through member $1.
erev() {
  curl -sf --max-time 5 -X POST -d "{\"key\":\"$etcd_key\"}" "http://127.0.0.1:${eclient[$1]}/v3/kv/range" |
    jq -r '.header.revision'
}

# ---- load ----------------------------------------------------------------------
# The wrk scripts: a constant POST each; done() writes the latency histogram
# ("µs count" per line) and a summary line to $HIST.
wrk_lua() {
  cat <<EOF
wrk.method = "POST"
wrk.body = '$1'
wrk.headers["Content-Type"] = "application/json"
function done(summary, latency, requests)
  local f = assert(io.open(os.getenv("HIST"), "w"))
  for i = 1, #latency do
    local v, c = latency(i)
    f:write(string.format("%d %d\n", v, c))
  end
  local e = summary.errors
  f:write(string.format("# %d %d %d\n", summary.requests, summary.duration,
    e.connect + e.read + e.write + e.status + e.timeout))
  f:close()
end
EOF
}
xbody='{"key":"bench","value":"x"}'
wrk_lua "$xbody" >"$tmp/admit.lua"
wrk_lua "{\"key\":\"$etcd_key\",\"value\":\"$etcd_value\"}" >"$tmp/put.lua"

# One load of system $1 (xerv|etcd) with $2 connections in all for $3 seconds: one
# wrk per member, in the background (a signal reaches the trap at once). Writes
# "req_per_s p50_us p99_us requests" to $tmp/load.parsed; fails on a wrk failure,
# any socket error, timeout or non-2xx answer, or no request completed.
run_load() {
  local sys=$1 total=$2 secs=$3 i c url lua rc wp=(0 "" "" "")
  for i in 1 2 3; do
    c=$((total / 3 + (i <= total % 3 ? 1 : 0)))
    if [[ $sys == xerv ]]; then url="http://127.0.0.1:${xapi[i]}/hooks/bench" lua=$tmp/admit.lua
    else url="http://127.0.0.1:${eclient[i]}/v3/kv/put" lua=$tmp/put.lua; fi
    rm -f "$tmp/hist-$i"
    HIST="$tmp/hist-$i" timeout $((secs + 30)) "$wrk" -t1 -c"$c" -d"${secs}s" --timeout "$wrk_timeout" -s "$lua" "$url" \
      >"$tmp/wrk-$i.out" 2>&1 &
    wp[i]=$!
    pids+=("$!")
  done
  for i in 1 2 3; do
    rc=0
    wait "${wp[i]}" || rc=$?
    forget_pid "${wp[i]}"
    ((rc == 0)) && [[ -s $tmp/hist-$i ]] || { cat "$tmp/wrk-$i.out" >&2; fail "wrk failed on $sys member $i (exit $rc)"; }
  done
  awk '
    /^#/ { n += $2; rps += $2 / ($3 / 1e6); errs += $4; next }
    { v[++k] = $1; c[k] = $2; total += $2 }
    END {
      if (errs > 0) { print "error: " errs " socket errors, timeouts or non-2xx answers"; exit }
      if (n == 0 || total == 0) { print "error: no request completed"; exit }
      # wrk returns the buckets in order of value; merge the three runs: sort.
      for (i = 2; i <= k; i++) { tv = v[i]; tc = c[i]; for (j = i - 1; j >= 1 && v[j] > tv; j--) { v[j + 1] = v[j]; c[j + 1] = c[j] } v[j + 1] = tv; c[j + 1] = tc }
      for (i = 1; i <= k; i++) { s += c[i]; if (p50 == "" && s >= 0.50 * total) p50 = v[i]; if (p99 == "" && s >= 0.99 * total) p99 = v[i] }
      printf "%.2f %d %d %d\n", rps, p50, p99, n
    }' "$tmp"/hist-1 "$tmp"/hist-2 "$tmp"/hist-3 >"$tmp/load.parsed"
  if grep -q '^error' "$tmp/load.parsed"; then
    cat "$tmp"/wrk-*.out >&2
    fail "$sys, $total connections: $(cat "$tmp/load.parsed")"
  fi
}

# Sum of the CPU ticks of the processes given.
ticks_of() {
  local p t=0
  for p in "$@"; do t=$((t + $(proc_ticks "$p"))); done
  echo "$t"
}

runs="$tmp/runs.txt" # per kept run: round sys conns rps p50 p99 n server_us_per_req busy_share loader_share other_ticks
: >"$runs"
# Measures system $2 with $3 connections in round $1 (repeated when noisy).
measure() {
  local round=$1 sys=$2 c=$3 attempt limit m0 s0 w0 m1 s1 w1 before after ok other best="" best_other=-1 srv
  local i avail rps p50 p99 n server_us busy loader t0 t1 k0 k1 st0 st1 q0 q1
  limit=$(noise_limit "$seconds")
  if [[ $sys == xerv ]]; then srv=("${xpid[@]:1}"); else srv=("${epid[@]:1}"); fi
  for attempt in 1 2 3; do
    ((warmup)) && run_load "$sys" "$c" "$warmup"
    wait_until_quiet
    if [[ $sys == xerv ]]; then before=0; for i in 1 2 3; do before=$((before + $(x202 "$i"))); done
    else before=$(erev 1); fi
    m0=$(machine_ticks) q0=$(task_ticks) s0=$(ticks_of "${srv[@]}") w0=$(proc_ticks "$$") k0=$(kernel_ticks) st0=$(steal_ticks) t0=$(now_ms)
    run_load "$sys" "$c" "$seconds"
    m1=$(machine_ticks) q1=$(task_ticks) s1=$(ticks_of "${srv[@]}") w1=$(proc_ticks "$$") k1=$(kernel_ticks) st1=$(steal_ticks) t1=$(now_ms)
    read -r rps p50 p99 n <"$tmp/load.parsed"
    if [[ $sys == xerv ]]; then after=0; for i in 1 2 3; do after=$((after + $(x202 "$i"))); done
    else after=$(erev 1); fi
    ok=$((after - before))
    # Every answer wrk counted is one the servers made (they may count a few more:
    # answers in flight when wrk stopped, and the revision read itself for etcd).
    ((ok + c >= n && ok <= n + 2 * c + 2)) ||
      fail "$sys: wrk counted $n answers, the servers $ok ($([[ $sys == xerv ]] && echo "202s on /metrics" || echo "etcd revisions"))"
    other=$(((q1 - q0) - (s1 - s0) - (w1 - w0) - (k1 - k0)))
    ((other > 0)) || other=0
    avail=$(((t1 - t0) * $(nproc) * hz / 1000)) # CPU ticks the machine had meanwhile
    server_us=$(awk -v t=$((s1 - s0)) -v hz="$hz" -v n="$n" 'BEGIN { printf "%.1f", t / hz / n * 1e6 }')
    busy=$(awk -v t=$((m1 - m0)) -v a="$avail" 'BEGIN { printf "%.2f", t / a }')
    loader=$(awk -v t=$((w1 - w0)) -v a="$avail" 'BEGIN { printf "%.2f", t / a }')
    printf 'raft_bench: round %d %-4s c%-4d %9.0f /s  p50 %7d us  p99 %7d us  %d requests  server CPU %s us/request  machine busy %s, loader %s, other processes %s CPU-s (steal %s)\n' \
      "$round" "$sys" "$c" "$rps" "$p50" "$p99" "$n" "$server_us" "$busy" "$loader" "$(cpu_s "$other")" "$(cpu_s $((st1 - st0)))" >&2
    if ((best_other < 0 || other < best_other)); then
      best="$rps $p50 $p99 $n $server_us $busy $loader $other" best_other=$other
    fi
    repeat_noisy_run "$other" "$limit" "$attempt" || break
  done
  echo "$round $sys $c $best" >>"$runs"
}

# ---- start both clusters ---------------------------------------------------------
for i in 1 2 3; do launch_xerv "$i"; done
for i in 1 2 3; do wait_xerv_ready "$i"; done
leader=$(xerv_leader 1 2 3)
cat >"$tmp/bench.yaml" <<'YAML'
name: bench
version: "1"
triggers:
  - {id: hook, type: webhook, params: {path: /hooks/bench, method: POST, respond: async}}
nodes:
  out: {type: std::log, config: {message: "x", level: debug}}
edges:
  - {from: hook, to: out}
settings: {max_concurrent_executions: 10000}
YAML
got=$(curl -s -o "$tmp/answer" -w '%{http_code}' --max-time 10 -X POST -H 'Content-Type: application/yaml' \
  --data-binary @"$tmp/bench.yaml" "http://127.0.0.1:${xapi[1]}/api/v1/pipelines") || true
[[ $got == 201 ]] || fail "deploying the pipeline answered $got: $(cat "$tmp/answer")"
for i in 1 2 3; do
  deadline=$((SECONDS + 10))
  until [[ $(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "http://127.0.0.1:${xapi[i]}/api/v1/pipelines/bench") == 200 ]]; do
    ((SECONDS < deadline)) || fail "node $i does not have the pipeline 10 s after the deploy"
    sleep 0.05
  done
  got=$(curl -s -o "$tmp/answer" -w '%{http_code}' --max-time 5 -H 'Content-Type: application/json' --data-binary "$xbody" \
    "http://127.0.0.1:${xapi[i]}/hooks/bench") || true
  [[ $got == 202 ]] && grep -q '"trace_id"' "$tmp/answer" || fail "POST /hooks/bench on node $i answered $got: $(cat "$tmp/answer")"
done
for i in 1 2 3; do launch_etcd "$i"; done
for i in 1 2 3; do wait_etcd_ready "$i"; done
for i in 1 2 3; do
  got=$(curl -s -o "$tmp/answer" -w '%{http_code}' --max-time 5 -X POST \
    -d "{\"key\":\"$etcd_key\",\"value\":\"$etcd_value\"}" "http://127.0.0.1:${eclient[i]}/v3/kv/put") || true
  [[ $got == 200 ]] && grep -q '"revision"' "$tmp/answer" || fail "etcd put on member $i answered $got: $(cat "$tmp/answer")"
done
echo "raft_bench: xerv nodes on API ports ${xapi[*]:1} (leader: node $leader), etcd $etcd_version members on ${eclient[*]:1}" >&2

# ---- throughput ----------------------------------------------------------------
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
for ((round = 1; round <= rounds; round++)); do
  for ((k = 0; k < ${#conns[@]}; k++)); do
    if (((round + k) % 2)); then order=(xerv etcd); else order=(etcd xerv); fi
    for sys in "${order[@]}"; do measure "$round" "$sys" "${conns[k]}"; done
  done
done
# etcd is stopped for the failovers: they measure xerv alone.
stop "${epid[@]:1}"
for i in 1 2 3; do forget_pid "${epid[i]}"; done

# ---- failover ------------------------------------------------------------------
fo="$tmp/failover.txt" # per kill: k old new admit_first_ms admit_all_ms leader_ms restart_ready_ms requests
: >"$fo"
for ((k = 1; k <= failovers; k++)); do
  wait_until_quiet
  old=$(xerv_leader 1 2 3)
  surv=()
  for i in 1 2 3; do ((i == old)) || surv+=("$i"); done
  # The probe kills the leader; the shell's "Killed" notice for it is dropped (it
  # comes after the next command, while stderr points to /dev/null).
  rc=0
  {
    "$probe" --kill "${xpid[old]}" --old-leader "$old" --path /hooks/bench \
      --post "${xapi[surv[0]]},${xapi[surv[1]]}" --health "${xapi[surv[0]]},${xapi[surv[1]]}" \
      --interval-ms 10 --request-timeout-ms 1000 --limit-ms 15000 >"$tmp/probe.out" 2>"$tmp/probe.err" || rc=$?
    wait "${xpid[old]}" || true
  } 2>/dev/null
  forget_pid "${xpid[old]}"
  ((rc == 0)) || fail "failover $k (node $old killed): $(cat "$tmp/probe.err")"
  read -r first all lead new sent <"$tmp/probe.out"
  ((new != old)) || fail "failover $k: node $old still named leader"
  # Restart the killed node on its data directory; it serves once it has caught
  # up, and must reach the leader's commit index before the next kill.
  t0=$(now_ms)
  launch_xerv "$old"
  wait_xerv_ready "$old"
  ready=$(($(now_ms) - t0))
  lead_now=$(xerv_leader 1 2 3)
  target=$(xhealth "$lead_now" | jq -r '.raft.commit_index')
  deadline=$((SECONDS + 30))
  until xhealth "$old" | jq -e --argjson t "$target" '.raft.caught_up and .raft.applied_index >= $t' >/dev/null; do
    ((SECONDS < deadline)) || fail "node $old restarted but did not reach commit index $target within 30 s"
    sleep 0.05
  done
  caught=$(($(now_ms) - t0))
  echo "$k $old $new $first $all $lead $ready $caught $sent" >>"$fo"
  printf 'raft_bench: failover %d: node %d killed, node %d leads; first 202 after %s ms (both survivors %s ms), new leader named after %s ms; restarted node serving after %d ms, caught up after %d ms\n' \
    "$k" "$old" "$new" "$first" "$all" "$lead" "$ready" "$caught" >&2
done
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

# ---- report --------------------------------------------------------------------
commit=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)
cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo | sed 's/ [0-9]*-Core Processor//; s/ *$//')
kernel="$(uname -s) $(uname -r)"
when=$(date -u '+%Y-%m-%d %H:%M UTC')
cmd="perf/raft_bench.sh"
for a in "${args[@]}"; do if [[ $a == *" "* ]]; then cmd+=" \"$a\""; else cmd+=" $a"; fi; done
awk -v json="$tmp/json" -v md="$tmp/md" -v conns="${conns[*]}" -v rounds="$rounds" -v seconds="$seconds" \
  -v shards="$shards" -v etcdv="$etcd_version" -v cpu="$cpu" -v kernel="$kernel" -v fo="$fo" \
  -v failovers="$failovers" -v nproc="$(nproc)" -v election_ms="$election_ms" -v heartbeat_ms="$heartbeat_ms" "$awk_stats"'
  # What bounds a figure: the two CPUs when the machine was busy 90 % of the run or
  # more, else the time a request takes (connections / p50 near the rate: each
  # connection waits for its answer, the commit round on a majority).
  function bound(b, r, c, p) {
    if (b >= 0.9) return sprintf("CPU-bound (the machine %.0f %% busy: servers, loaders and any other process)", 100 * b)
    return sprintf("latency-bound, the CPUs %.0f %% busy (connections / p50 = %.0f /s against %.0f /s measured)", 100 * b, c / (p / 1e6), r)
  }
  function spread(a, n, f) { return sprintf(f " [" f ".." f "]", median(a, n), minv(a, n), maxv(a, n)) }
  function group(s, c,   i, r) {
    m = 0
    for (i = 1; i <= nr; i++) if (sys[i] == s && con[i] == c) {
      m++; g_rps[m] = rps[i]; g_p50[m] = p50[i]; g_p99[m] = p99[i]; g_n[m] = n[i]; g_cpu[m] = scpu[i]
      g_busy[m] = busy[i]; g_load[m] = load[i]; g_other[m] = other[i]; g_round[m] = round[i]
    }
    return m
  }
  { nr++; round[nr] = $1; sys[nr] = $2; con[nr] = $3; rps[nr] = $4; p50[nr] = $5; p99[nr] = $6; n[nr] = $7
    scpu[nr] = $8; busy[nr] = $9; load[nr] = $10; other[nr] = $11 }
  END {
    nc = split(conns, cs, " ")
    printf "| connections (3 wrk -t1, one per member) | xerv admissions/s | p50 / p99 ms | etcd puts/s | p50 / p99 ms | xerv/etcd | goal: ≥ 10k/s, p99 < 10 ms |\n|---|---|---|---|---|---|---|\n" > md
    for (k = 1; k <= nc; k++) {
      c = cs[k]
      m = group("xerv", c); for (i = 1; i <= m; i++) { xr[i] = g_rps[i]; x5[i] = g_p50[i]; x9[i] = g_p99[i]; xn[i] = g_n[i]; xc[i] = g_cpu[i]; xb[i] = g_busy[i]; xl[i] = g_load[i]; xo[i] = g_other[i] }
      m2 = group("etcd", c); for (i = 1; i <= m2; i++) { er[i] = g_rps[i]; e5[i] = g_p50[i]; e9[i] = g_p99[i]; en[i] = g_n[i]; ec[i] = g_cpu[i]; eb[i] = g_busy[i]; el[i] = g_load[i]; eo[i] = g_other[i] }
      if (m == 0 || m2 == 0) { print "raft_bench: runs missing" > "/dev/stderr"; exit 1 }
      xm = median(xr, m); em = median(er, m2); ratio = xm / em
      xp50 = median(x5, m); xp99 = median(x9, m); ep50 = median(e5, m2); ep99 = median(e9, m2)
      xtot = 0; etot = 0; xomax = 0; eomax = 0
      for (i = 1; i <= m; i++) { xtot += xn[i]; if (xo[i] > xomax) xomax = xo[i] }
      for (i = 1; i <= m2; i++) { etot += en[i]; if (eo[i] > eomax) eomax = eo[i] }
      goal = (xm >= 10000 && xp99 < 10000) ? "met" : "not met"
      if (!(xm > 0 && em > 0 && xp50 > 0 && xp99 > 0 && ep50 > 0 && ep99 > 0)) { print "raft_bench: a figure is not positive" > "/dev/stderr"; exit 1 }
      printf "| %d | %s | %.2f / %.2f | %s | %.2f / %.2f | **%.2f** | %s |\n", c, spread(xr, m, "%.0f"), xp50 / 1000, xp99 / 1000, spread(er, m2, "%.0f"), ep50 / 1000, ep99 / 1000, ratio, goal > md
      notes = notes sprintf("- %d connections: xerv %s; etcd %s.\n", c, bound(median(xb, m), xm, c, xp50), bound(median(eb, m2), em, c, ep50))
      notes = notes sprintf("- %d connections: server CPU per request xerv %.0f µs (3 nodes together), etcd %.0f µs; machine busy %.0f %% (xerv runs) / %.0f %% (etcd runs) of %d CPUs, of which the wrk processes %.0f %% / %.0f %%.\n", c, median(xc, m), median(ec, m2), 100 * median(xb, m), 100 * median(eb, m2), nproc, 100 * median(xl, m), 100 * median(el, m2))
      printf "{\"name\":\"raft_admissions_c%d_n3_s%d\",\"unit\":\"admissions/s\",\"runs\":%d,\"median\":%.2f,\"min\":%.2f,\"max\":%.2f,\"baseline\":\"etcd %s v3 put (gRPC gateway), 3 members\",\"baseline_median\":%.2f,\"baseline_min\":%.2f,\"baseline_max\":%.2f,\"ratio\":%.4f,\"ours_p50_us\":%d,\"ours_p99_us\":%d,\"baseline_p50_us\":%d,\"baseline_p99_us\":%d,\"requests\":%d,\"baseline_requests\":%d,\"ours_server_cpu_us_per_request\":%.1f,\"baseline_server_cpu_us_per_request\":%.1f,\"ours_machine_busy\":%.2f,\"baseline_machine_busy\":%.2f,\"ours_other_cpu_ticks_max\":%d,\"baseline_other_cpu_ticks_max\":%d,\"connections\":%d,\"wrk_processes\":3,\"wrk_threads\":1,\"seconds\":%d,\"nodes\":3,\"shards\":%d,\"wal_sync\":\"always\",\"cpu\":\"%s\",\"kernel\":\"%s\"}\n", c, shards, m, xm, minv(xr, m), maxv(xr, m), etcdv, em, minv(er, m2), maxv(er, m2), ratio, xp50, xp99, ep50, ep99, xtot, etot, median(xc, m), median(ec, m2), median(xb, m), median(eb, m2), xomax, eomax, c, seconds, shards, cpu, kernel > json
    }
    printf "\nPer run (round: xerv /s, p50 / p99 ms; etcd /s, p50 / p99 ms):\n\n" > md
    for (i = 1; i <= nr; i++) if (sys[i] == "xerv")
      for (j = 1; j <= nr; j++) if (sys[j] == "etcd" && round[j] == round[i] && con[j] == con[i])
        printf "- round %d, %d connections: xerv %.0f, %.2f / %.2f; etcd %.0f, %.2f / %.2f; xerv/etcd %.2f\n", round[i], con[i], rps[i], p50[i] / 1000, p99[i] / 1000, rps[j], p50[j] / 1000, p99[j] / 1000, rps[i] / rps[j] > md
    nf = 0
    while ((getline line < fo) > 0) {
      split(line, f, " "); nf++
      fk[nf] = f[1]; fold[nf] = f[2]; fnew[nf] = f[3]; ff[nf] = f[4]; fa[nf] = f[5]; fl[nf] = f[6]; fr[nf] = f[7]; fc[nf] = f[8]
    }
    if (nf != failovers) { print "raft_bench: failovers missing" > "/dev/stderr"; exit 1 }
    fgoal = maxv(fa, nf) < 2000 ? "met" : "not met"
    printf "\nFailover, %d kill -9 of the leader (no load; a probe every 10 ms through each survivor), ms after the kill: min / median / max\n\n", nf > md
    printf "| measurement | min | median | max |\n|---|---|---|---|\n" > md
    printf "| first 202 through a survivor | %.0f | %.0f | %.0f |\n", minv(ff, nf), median(ff, nf), maxv(ff, nf) > md
    printf "| both survivors answer 202 (goal < 2 s: %s) | %.0f | %.0f | %.0f |\n", fgoal, minv(fa, nf), median(fa, nf), maxv(fa, nf) > md
    printf "| every survivor'"'"'s /health names the new leader | %.0f | %.0f | %.0f |\n", minv(fl, nf), median(fl, nf), maxv(fl, nf) > md
    printf "| killed node restarted: serving (/ready 200) | %.0f | %.0f | %.0f |\n", minv(fr, nf), median(fr, nf), maxv(fr, nf) > md
    printf "| ... caught up with the commit index | %.0f | %.0f | %.0f |\n", minv(fc, nf), median(fc, nf), maxv(fc, nf) > md
    kills = ""; for (i = 1; i <= nf; i++) kills = kills sprintf("%s%d→%d", i > 1 ? ", " : "", fold[i], fnew[i])
    printf "\nLeaders killed → elected: %s.\n", kills > md
    printf "\nNotes (measured in this run; medians over the rounds):\n\n%s", notes > md
    printf "- failover: the election timeout is %s ms, randomized up to twice that, so a new leader comes after 1–2 timeouts plus a vote round; both clusters use the same timeouts.\n", election_ms > md
    printf "{\"name\":\"raft_failover_n3\",\"unit\":\"ms_until_both_survivors_admit\",\"runs\":%d,\"median\":%.1f,\"min\":%.1f,\"max\":%.1f,\"first_202_median\":%.1f,\"first_202_min\":%.1f,\"first_202_max\":%.1f,\"new_leader_median\":%.1f,\"new_leader_min\":%.1f,\"new_leader_max\":%.1f,\"restart_ready_median_ms\":%.0f,\"restart_caught_up_median_ms\":%.0f,\"election_timeout_ms\":%s,\"heartbeat_ms\":%s,\"cpu\":\"%s\",\"kernel\":\"%s\"}\n", nf, median(fa, nf), minv(fa, nf), maxv(fa, nf), median(ff, nf), minv(ff, nf), maxv(ff, nf), median(fl, nf), minv(fl, nf), maxv(fl, nf), median(fr, nf), median(fc, nf), election_ms, heartbeat_ms, cpu, kernel > json
  }' "$runs" || fail "cannot summarize the runs"

section="$tmp/section.md"
{
  echo "Command: \`$cmd\` (from the repository root; it holds /tmp/xerv-bench.lock)"
  echo
  echo "- date: $when"
  echo "- commit: $commit"
  echo "- xerv: $xerv_desc; 3 nodes, $shards shard(s) each, \`XERV_WAL_SYNC=always\`, election timeout $election_ms ms, heartbeat $heartbeat_ms ms"
  echo "- baseline: etcd $etcd_version ($etcd), 3 members, the same timeouts, v3 put through the gRPC gateway (\`POST /v3/kv/put\`); $("$wrk" -v 2>&1 | head -1 | cut -d' ' -f1-2)"
  echo "- load: three wrk processes (-t1, --timeout $wrk_timeout), one per member, the connections split among them, $seconds s per run after a ${warmup} s warm-up; $rounds rounds, the system that goes first alternating; the loaders share the $(nproc) CPUs with the servers"
  echo "- CPU: ${cpu:-unknown}, $(nproc) CPUs online; kernel: $kernel; data directories: $parent ($fstype)"
  echo "- load average (1/5/15 min) before: $load_before, after: $load_after"
  echo
  cat "$tmp/md"
  echo
  echo '```json'
  cat "$tmp/json"
  echo '```'
} >"$section"
cat "$tmp/json"
cat "$section" >&2

if ((record)); then
  results="$root/perf/RESULTS.md"
  if ! grep -q '<!-- raft_bench:begin -->' "$results"; then
    printf '\n## Raft: durable admissions on 3 nodes against etcd, failover (issue 13)\n\nGenerated by `perf/raft_bench.sh` between the markers; the interpretation below them is written by hand.\n\n<!-- raft_bench:begin -->\n<!-- raft_bench:end -->\n' >>"$results"
  fi
  results_with_section raft_bench "$section" "$results" >"$tmp/RESULTS.md.new"
  cp "$tmp/RESULTS.md.new" "$results"
  echo "raft_bench: wrote $results" >&2
fi
