#!/usr/bin/env bash
# Queue messages/s through std::enqueue (issue 12): wrk POSTs to a sync webhook
# whose flow is one std::enqueue node, so each 200 is one message admitted
# durably (XERV_WAL_SYNC=always) as a trace of the consumer (a queue trigger ->
# std::log at debug level). Baseline in the same run: the same webhook flow with
# a std::log node instead of the std::enqueue: one durable trace per request,
# where the enqueue adds a second one (and its idempotency key). Afterwards every
# message must have been consumed: the consumer's completed traces = the
# producer's 200s. Prints one JSON line (perf/harness.h fields) and a summary.
#
#   perf/queue_bench.sh [--smoke] [--rounds N] [--seconds N] [--connections N]
#                       [--shards N] [--xerv PATH]
#
# Rounds alternate which side goes first; medians over the rounds. Fresh server
# and data directory (under /var/tmp) per run; loopback only; every process is
# stopped by pid on exit.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
. "$(dirname "$0")/lib.sh"
bench_name=queue_bench
smoke=0 rounds=3 seconds=10 connections=32 threads=2 shards=2 wrk_timeout=5s
xerv="$root/build/release/app/xerv"
wrk=$(command -v wrk || echo /usr/bin/wrk)
while (($#)); do
  case $1 in
    --smoke) smoke=1 rounds=1 seconds=1 connections=4 ;;
    --rounds) rounds=$2; shift ;;
    --seconds) seconds=$2; shift ;;
    --connections) connections=$2; shift ;;
    --shards) shards=$2; shift ;;
    --xerv) xerv=$2; shift ;;
    --wrk) wrk=$2; shift ;;
    *) echo "queue_bench: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
for tool in "$xerv" "$wrk"; do [[ -x $tool ]] || { echo "queue_bench: $tool missing (scripts/setup perf)" >&2; exit 1; }; done
tmp=$(mktemp -d /var/tmp/xerv-queue-bench.XXXXXX)
pids=()
logs_on_failure=("$tmp"/xerv.log "$tmp"/wrk.out)
trap_cleanup
mkdir -p "$tmp/flows"
cat >"$tmp/flows/consumer.yaml" <<'EOF'
name: consumer
version: "1"
triggers:
  - {id: inbox, type: queue, params: {queue: jobs, capacity: 1000000}}
nodes:
  note: {type: std::log, config: {message: "job", level: debug}}
edges:
  - {from: inbox, to: note}
settings: {max_concurrent_executions: 1000}
EOF
flow() {  # $1: the webhook path, $2: the node
  cat <<EOF
name: ${1}
version: "1"
triggers:
  - {id: hook, type: webhook, params: {path: /${1}, method: POST, respond: sync}}
nodes:
  work: $2
edges:
  - {from: hook, to: work}
settings: {max_concurrent_executions: 10000}
EOF
}
flow producer '{type: std::enqueue, config: {queue: jobs}}' >"$tmp/flows/producer.yaml"
flow plain '{type: std::log, config: {message: "job", level: debug}}' >"$tmp/flows/plain.yaml"
write_wrk_post "$tmp/post.lua" '{"job":1}'

launch_xerv() {
  XERV_SHARDS=$shards XERV_API_HOST=127.0.0.1 XERV_API_PORT=$1 XERV_LOG=warn XERV_DATA_DIR="$tmp/data" \
    XERV_PIPELINES_DIR="$tmp/flows" XERV_TRACE_STORE_MAX=2000000 "$xerv" serve 2>"$tmp/xerv.log" &
}

completed() { curl -s "127.0.0.1:$server_port/api/v1/pipelines/$1" | grep -o '"traces_completed":[0-9]*' | cut -d: -f2; }

# One measured run on a fresh server; sets m_rps, m_p50, m_n.
measure() {
  local path=$1 done_n i
  rm -rf "$tmp/data"
  start_server xerv launch_xerv
  run_wrk "http://127.0.0.1:$server_port/$path" "$seconds" -s "$tmp/post.lua"
  read -r m_rps m_p50 _ m_n <"$tmp/wrk.parsed"
  if [[ $path == producer ]]; then
    # Every message consumed, exactly once: the consumer's completed traces equal
    # the producer's (wrk does not count the requests in flight when it stops).
    local produced=-1
    for ((i = 0; i < 300; i++)); do
      produced=$(completed producer)
      done_n=$(completed consumer)
      ((done_n == produced && produced >= m_n)) && break
      sleep 0.1
    done
    ((done_n == produced && produced >= m_n)) ||
      { echo "queue_bench: $produced messages sent ($m_n counted by wrk), $done_n consumed" >&2; exit 1; }
  fi
  stop "$server_pid"
  unset 'pids[-1]'
}

ours=() base=() ours_p50=() base_p50=() sent=0
for ((r = 1; r <= rounds; r++)); do
  order=(producer plain)
  ((r % 2 == 0)) && order=(plain producer)
  for side in "${order[@]}"; do
    measure "$side"
    if [[ $side == producer ]]; then ours+=("$m_rps") ours_p50+=("$m_p50"); sent=$((sent + m_n)); else base+=("$m_rps") base_p50+=("$m_p50"); fi
    echo "queue_bench: round $r $side: $m_rps req/s, p50 $m_p50 us ($m_n requests)" >&2
  done
done
stats() { printf '%s\n' "$@" | awk "$awk_stats"'{ a[++n] = $1 } END { printf "%s %s %s\n", median(a, n), minv(a, n), maxv(a, n) }'; }
read -r om omin omax < <(stats "${ours[@]}")
read -r bm bmin bmax < <(stats "${base[@]}")
read -r op50 _ _ < <(stats "${ours_p50[@]}")
read -r bp50 _ _ < <(stats "${base_p50[@]}")
ratio=$(awk -v a="$om" -v b="$bm" 'BEGIN { printf "%.4f", a / b }')
printf '{"name":"queue_enqueue_c%d_s%d","unit":"messages/s","runs":%d,"median":%s,"min":%s,"max":%s,"baseline":"plain durable trace","baseline_median":%s,"baseline_min":%s,"baseline_max":%s,"ratio":%s,"messages_consumed":%d,"connections":%d,"seconds":%d,"shards":%d,"ours_p50_us":%s,"baseline_p50_us":%s}\n' \
  "$connections" "$shards" "$rounds" "$om" "$omin" "$omax" "$bm" "$bmin" "$bmax" "$ratio" "$sent" "$connections" "$seconds" "$shards" "$op50" "$bp50"
echo "queue_bench: std::enqueue $om messages/s (p50 $op50 us) vs plain durable traces $bm/s (p50 $bp50 us): ratio $ratio; $sent messages, all consumed" >&2
