#!/usr/bin/env bash
# Durable traces/s with the write-ahead log's group commit, against what the disk
# does one fsync at a time (see perf/README.md). In one run, on one directory:
#  - baseline: fio, 4 KiB O_DIRECT writes with an fdatasync after every write at
#    iodepth 1: its writes/s are the device's fsyncs/s;
#  - xerv with XERV_WAL_SYNC=always: wrk POSTs a small JSON body to an async webhook,
#    whose 202 only leaves once the trace's start record is durable (O_DIRECT +
#    RWF_DSYNC writes, many records per write), so 2xx/s = durable traces/s;
#  - the same with XERV_WAL_SYNC=none: what durability costs.
# Prints one JSON line on stdout (the fields of perf/harness.h: the baseline is fio)
# and a Markdown section on stderr, which a full run also writes into perf/RESULTS.md
# (between the wal_bench:begin/end markers, appended at the end the first time).
#
#   perf/wal_bench.sh [--smoke] [--rounds N] [--seconds N] [--fio-seconds N]
#                     [--connections N] [--threads N] [--shards N] [--dir DIR]
#                     [--no-record] [--xerv PATH] [--wrk PATH] [--fio PATH]
#
# Each round runs fio, then a fresh xerv (fresh data directory) per sync mode, the
# mode that goes first alternating between rounds; medians over the rounds (3 by
# default), [min..max] as the spread. Every wrk run must be free of non-2xx answers
# and socket errors, and xerv's own counters must show nothing but 202 on the
# webhook, or the script exits 1. The data directory (under --dir, /var/tmp by
# default) must be on a real disk: a full run refuses tmpfs. Loopback only; every
# process it starts is stopped by pid on exit, also on failure or Ctrl-C.
#
# Before each measured run it waits (up to --max-wait seconds, 300 by default) while
# another heavy process runs, holds /tmp/xerv-bench.lock so two benchmark scripts
# never measure at once, and repeats a run (twice at most) when other processes took
# more than 5 % of the CPU time meanwhile. --smoke (1 round of 1 s runs, 8
# connections, a 4 MiB fio file, no RESULTS.md) skips all three: it only checks that
# everything works and that every figure and ratio comes out as a positive number.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
. "$(dirname "$0")/lib.sh"
bench_name=wal_bench

smoke=0 rounds=3 seconds=10 fio_seconds=10 fio_size=64m connections=64 threads=2 shards=2
max_wait=300 warmup=1 record=1 parent=/var/tmp wrk_timeout=5s
xerv="$root/build/release/app/xerv"
wrk=$(command -v wrk || echo /usr/bin/wrk)
fio=$(command -v fio || echo /usr/bin/fio)
args=("$@")
while (($#)); do
  case $1 in
    --smoke) smoke=1 rounds=1 seconds=1 fio_seconds=1 fio_size=4m connections=8 warmup=0 record=0 ;;
    --rounds) rounds=$2; shift ;;
    --seconds) seconds=$2; shift ;;
    --fio-seconds) fio_seconds=$2; shift ;;
    --connections) connections=$2; shift ;;
    --threads) threads=$2; shift ;;
    --shards) shards=$2; shift ;;
    --dir) parent=$2; shift ;;
    --max-wait) max_wait=$2; shift ;;
    --no-record) record=0 ;;
    --xerv) xerv=$2; shift ;;
    --wrk) wrk=$2; shift ;;
    --fio) fio=$2; shift ;;
    *) echo "wal_bench: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
for tool in "$xerv" "$wrk" "$fio"; do
  [[ -x $tool ]] || { echo "wal_bench: $tool is missing (scripts/setup perf installs wrk and fio; build xerv first)" >&2; exit 1; }
done
for tool in curl jq; do
  command -v "$tool" >/dev/null || { echo "wal_bench: $tool is missing (scripts/setup installs it)" >&2; exit 1; }
done

mkdir -p "$parent"
tmp=$(mktemp -d "$parent/xerv-wal-bench.XXXXXX")
# What is measured: a copy, so that a rebuild during the run changes nothing, and
# where it came from. A binary of this checkout's build directory counts as built
# from this commit unless the sources differ from it.
xerv_src=$(readlink -f "$xerv")
xerv_desc="$xerv_src, built $(date -u -r "$xerv_src" '+%Y-%m-%d %H:%M UTC'), sha256 $(sha256sum "$xerv_src" | cut -c1-12)"
if [[ $xerv_src == "$root"/* ]]; then
  if [[ -n $(cd "$root" && find core io http flows app -newer "$xerv_src" -print -quit 2>/dev/null) ]]; then
    xerv_desc+=", older than some of its sources"
  elif git -C "$root" diff --quiet HEAD -- core io http flows app 2>/dev/null; then
    xerv_desc+=", sources as in $(git -C "$root" rev-parse --short HEAD 2>/dev/null)"
  else
    xerv_desc+=", from sources with uncommitted changes in core/, io/, http/, flows/ or app/"
  fi
else
  xerv_desc+=", built outside this checkout"
fi
cp "$xerv_src" "$tmp/xerv"
xerv="$tmp/xerv"
pids=() # every process started here; stopped by pid in cleanup
xerv_pid=""
logs_on_failure=("$tmp"/xerv.log "$tmp"/wrk.out "$tmp"/fio.out)
trap_cleanup

# The point is the disk: tmpfs would measure memory copies.
fstype=$(findmnt -no FSTYPE -T "$tmp" 2>/dev/null || stat -f -c %T "$tmp")
if [[ $fstype == tmpfs || $fstype == ramfs ]]; then
  if ((!smoke)); then
    echo "wal_bench: $parent is on $fstype; pass --dir with a directory on a real disk" >&2
    exit 1
  fi
  echo "wal_bench: $parent is on $fstype: the smoke run only checks that everything works" >&2
fi
# The block device under the directory, for /proc/diskstats (partitions and device
# mapper included); empty when there is none (a network or overlay file system).
devnum=$(stat -c '%Hd %Ld' "$tmp")
devname=$(awk -v ma="${devnum% *}" -v mi="${devnum#* }" '$1 == ma && $2 == mi { print $3 }' /proc/diskstats)
disk_desc="$fstype"
if [[ -n $devname ]]; then
  disk_desc+=" on /dev/$devname"
  parent_dev=$(basename "$(readlink -f "/sys/class/block/$devname/..")")
  for q in "/sys/class/block/$devname/queue" "/sys/class/block/$parent_dev/queue"; do
    if [[ -r $q/write_cache ]]; then
      disk_desc+=" (write cache: $(cat "$q/write_cache"), rotational: $(cat "$q/rotational"))"
      break
    fi
  done
fi
# "writes flushes sectors_written" completed on that device so far (flushes: 0 on
# kernels before 5.5, which do not count them).
disk_counters() {
  [[ -n $devname ]] || { echo "0 0 0"; return; }
  awk -v d="$devname" '$3 == d { print $8, ($19 == "" ? 0 : $19), $10 }' /proc/diskstats
}

if ((!smoke)); then take_bench_lock "$max_wait"; fi

# Heavy processes another developer may run on this machine (see heavy_now; as in
# http_bench.sh, and any fuzzer binary, *_fuzz, too).
heavy_patterns=(-f:'_fuzz( |$)' -f:io_tests -f:http_tests -f:unit_tests -f:crash_tests -x:echo_bench -x:msg_bench -x:cc1plus)

# CPU time in USER_HZ ticks, as in http_bench.sh: the machine's busy time, this
# script's (own_ticks: xerv read live, reaped children such as wrk, fio and curl),
# and the kernel's own: interrupts, softirqs and kernel threads (the file system's
# journal, I/O completion workers), which work for xerv and fio at least as much as
# for anyone else. What remains over a run is what other processes took: the noise.
# "machine own kernel" ticks so far.
cpu_now() {
  local m irq k
  read -r m irq < <(awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9, $7 + $8 }' /proc/stat)
  k=$(cat /proc/[0-9]*/stat 2>/dev/null | awk '{ sub(/^.*\) /, ""); if ($2 == 2 || $2 == 0) t += $12 + $13 } END { print t + 0 }')
  echo "$m $(own_ticks "$xerv_pid") $((irq + k))"
}
# "other_processes kernel" ticks since the cpu_now snapshot $1.
cpu_since() {
  local m0 o0 k0 m1 o1 k1 other
  read -r m0 o0 k0 <<<"$1"
  read -r m1 o1 k1 <<<"$(cpu_now)"
  other=$((m1 - m0 - (o1 - o0) - (k1 - k0)))
  ((other > 0)) || other=0
  echo "$other $((k1 - k0))"
}

# The flow: an async webhook and one node. The body is the trace input, so every
# start record carries it.
mkdir -p "$tmp/flows"
cat >"$tmp/flows/wal_ingest.yaml" <<'YAML'
name: wal_ingest
triggers:
  - id: hook
    type: webhook
    params: { path: /ingest, method: POST, respond: async }
nodes:
  only: { type: std::log, config: { message: "event ${hook.id}", level: debug } }
edges:
  - { from: hook, to: only }
YAML
body='{"id":4711,"kind":"bench","payload":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}'
write_wrk_post "$tmp/post.lua" "$body"

# xerv on port $1 with XERV_WAL_SYNC=$2 and a fresh data directory, in the background.
launch_xerv() {
  rm -rf "$tmp/data"
  XERV_API_HOST=127.0.0.1 XERV_API_PORT=$1 XERV_SHARDS=$shards XERV_LOG=warn \
    XERV_DATA_DIR="$tmp/data" XERV_PIPELINES_DIR="$tmp/flows" XERV_WAL_SYNC=$2 \
    XERV_TRACE_RETENTION=60s "$xerv" serve 2>>"$tmp/xerv.log" &
}
start_xerv() {
  start_server xerv launch_xerv "$1"
  xerv_port=$server_port xerv_pid=$server_pid
}
stop_xerv() {
  stop "$xerv_pid"
  unset 'pids[-1]'
  xerv_pid=""
  rm -rf "$tmp/data"
}

# The counters this benchmark reads from /metrics, one "name value" per line.
scrape() {
  curl -sf --max-time 5 "http://127.0.0.1:$xerv_port/metrics" | awk '
    /^xerv_http_requests_total\{.*route="webhook"/ {
      if ($0 ~ /code="202"/) ok += $NF; else bad += $NF; next }
    $1 ~ /^xerv_wal_(batch_records_sum|batch_records_count|syncs_total|sync_seconds_sum|sync_seconds_count|bytes_total|write_errors_total|segments)$/ { print $1, $2 }
    $1 == "xerv_completed_traces_total" || $1 == "xerv_failed_traces_total" { print $1, $2 }
    END { print "webhook_202", ok + 0; print "webhook_other", bad + 0 }' >"$1"
  [[ -s $1 ]] || { echo "wal_bench: GET /metrics failed" >&2; exit 1; }
}

# One wrk run of $1 seconds POSTing the body to the webhook (see run_wrk).
run_wrk_ingest() { run_wrk "http://127.0.0.1:$xerv_port/ingest" "$1" -s "$tmp/post.lua"; }

runs="$tmp/runs.txt" # one line per kept run, see measure_fio and measure_xerv
: >"$runs"

# fio's sync job; appends "round fio iops fsync_p50_us fsync_p99_us writes dev_writes
# dev_flushes other_cpu_ticks" to $runs.
measure_fio() {
  local round=$1 attempt c0 d0 d1 other kernel best="" best_other=-1 line limit
  limit=$(noise_limit "$fio_seconds")
  for attempt in 1 2 3; do
    wait_until_quiet
    rm -f "$tmp/fio.dat"
    c0=$(cpu_now) d0=$(disk_counters)
    "$fio" --name=sync --filename="$tmp/fio.dat" --rw=write --bs=4k --direct=1 --fdatasync=1 \
      --size="$fio_size" --runtime="$fio_seconds" --time_based --ioengine=sync \
      --output-format=json --output="$tmp/fio.json" >"$tmp/fio.out" 2>&1 ||
      { echo "wal_bench: fio failed" >&2; cat "$tmp/fio.out" "$tmp/fio.json" >&2 2>/dev/null; exit 1; }
    d1=$(disk_counters)
    read -r other kernel <<<"$(cpu_since "$c0")"
    rm -f "$tmp/fio.dat"
    line=$(jq -r '.jobs[0] | select(.error == 0) |
      "\(.write.iops) \(.sync.lat_ns.percentile["50.000000"] / 1000) \(.sync.lat_ns.percentile["99.000000"] / 1000) \(.write.total_ios)"' \
      "$tmp/fio.json") || true
    [[ -n $line ]] || { echo "wal_bench: cannot read fio's output" >&2; cat "$tmp/fio.json" >&2; exit 1; }
    line+=" $(awk -v a="$d0" -v b="$d1" 'BEGIN { split(a, x, " "); split(b, y, " "); print y[1] - x[1], y[2] - x[2] }')"
    read -r iops p50 p99 n dw df <<<"$line"
    printf 'wal_bench: round %d fio    %8.0f writes+fdatasync/s  fdatasync p50 %5.0f us  p99 %5.0f us  device writes %d flushes %d  kernel %s, other processes %s CPU-s\n' \
      "$round" "$iops" "$p50" "$p99" "$dw" "$df" "$(cpu_s "$kernel")" "$(cpu_s "$other")" >&2
    if ((best_other < 0 || other < best_other)); then best="$line $other" best_other=$other; fi
    repeat_noisy_run "$other" "$limit" "$attempt" || break
  done
  echo "$round fio $best" >>"$runs"
}

# xerv in one sync mode, fresh per attempt; appends "round MODE traces_per_s p50_us
# p99_us requests d_202 d_records d_batches d_syncs d_sync_s d_bytes d_segments
# dev_writes dev_flushes other_cpu_ticks" to $runs (d_: deltas of xerv's counters
# over the measured run).
measure_xerv() {
  local round=$1 mode=$2 attempt got c0 d0 d1 other kernel best="" best_other=-1 line limit
  limit=$(noise_limit "$seconds")
  for attempt in 1 2 3; do
    start_xerv "$mode"
    got=$(curl -s -o "$tmp/answer" -w '%{http_code}' -H 'Content-Type: application/json' --data-binary "$body" \
      "http://127.0.0.1:$xerv_port/ingest") || true
    if [[ $got != 202 ]] || ! grep -q '^{"trace_id":"[0-9a-f-]*"}$' "$tmp/answer"; then
      echo "wal_bench: POST /ingest answered $got '$(cat "$tmp/answer")', expected 202 {\"trace_id\":...}" >&2
      exit 1
    fi
    ((warmup)) && run_wrk_ingest "$warmup"
    wait_until_quiet
    scrape "$tmp/m0"
    c0=$(cpu_now) d0=$(disk_counters)
    run_wrk_ingest "$seconds"
    d1=$(disk_counters)
    read -r other kernel <<<"$(cpu_since "$c0")"
    scrape "$tmp/m1"
    stop_xerv
    line=$(awk -v d0="$d0" -v d1="$d1" '
      FNR == NR { a[$1] = $2; next }
      { b[$1] = $2 }
      function d(k) { return b[k] - a[k] }
      END {
        split(d0, x, " "); split(d1, y, " ")
        printf "%d %d %d %d %.6f %d %d %d %d %d %d\n", d("webhook_202"), d("xerv_wal_batch_records_sum"),
          d("xerv_wal_batch_records_count"), d("xerv_wal_syncs_total"), d("xerv_wal_sync_seconds_sum"),
          d("xerv_wal_bytes_total"), d("xerv_wal_segments"), y[1] - x[1], y[2] - x[2],
          d("webhook_other"), d("xerv_wal_write_errors_total") + d("xerv_failed_traces_total")
      }' "$tmp/m0" "$tmp/m1")
    read -r ok records batches syncs sync_s bytes segs dw df bad errs <<<"$line"
    read -r rps p50 p99 n <"$tmp/wrk.parsed"
    # wrk's count of 2xx and xerv's count of 202s must agree (xerv may count a few
    # more: answers still in flight when wrk stopped).
    ((bad == 0)) || { echo "wal_bench: xerv answered $bad webhook requests with something else than 202" >&2; exit 1; }
    ((errs == 0)) || { echo "wal_bench: $errs WAL write errors or failed traces" >&2; exit 1; }
    ((ok + connections >= n && ok <= n + 2 * connections)) ||
      { echo "wal_bench: wrk saw $n answers, xerv counted $ok 202s" >&2; exit 1; }
    ((records >= ok && batches > 0)) ||
      { echo "wal_bench: $records WAL records in $batches writes for $ok traces" >&2; exit 1; }
    [[ $mode == none ]] || ((syncs >= batches)) ||
      { echo "wal_bench: $syncs durable writes for $batches WAL writes with XERV_WAL_SYNC=$mode" >&2; exit 1; }
    printf 'wal_bench: round %d %-6s %8.0f traces/s  p50 %6.0f us  p99 %6.0f us  %5.1f records/write  %6d syncs  kernel %s, other processes %s CPU-s\n' \
      "$round" "$mode" "$rps" "$p50" "$p99" "$(awk -v r="$records" -v b="$batches" 'BEGIN { print r / b }')" "$syncs" \
      "$(cpu_s "$kernel")" "$(cpu_s "$other")" >&2
    if ((best_other < 0 || other < best_other)); then
      best="$rps $p50 $p99 $n $ok $records $batches $syncs $sync_s $bytes $segs $dw $df $other" best_other=$other
    fi
    repeat_noisy_run "$other" "$limit" "$attempt" || break
  done
  echo "$round $mode $best" >>"$runs"
}

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
for ((round = 1; round <= rounds; round++)); do
  measure_fio "$round"
  if ((round % 2)); then order=(always none); else order=(none always); fi
  for mode in "${order[@]}"; do measure_xerv "$round" "$mode"; done
done
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
kernel="$(uname -s) $(uname -r)"
commit=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)
for f in perf/wal_bench.sh perf/lib.sh; do
  git -C "$root" diff --quiet HEAD -- "$f" 2>/dev/null || commit+=" ($f modified)"
done
cmd="perf/wal_bench.sh${args[*]:+ ${args[*]}}"

# Every figure: the median, min and max over the rounds, and the ratios per round.
# Fails (no output) when a figure is missing, not a number or not positive.
awk -v runs="$rounds" -v cpu="${cpu:-unknown}" -v kernel="$kernel" -v conns="$connections" -v thr="$threads" \
  -v secs="$seconds" -v fsecs="$fio_seconds" -v shards="$shards" -v hz="$hz" -v busy="$busy_runs" \
  -v repeated="$repeated_runs" -v disk="$disk_desc" -v xdesc="$xerv_desc" -v bodylen="${#body}" -v out="$tmp" "$awk_stats"'
  BEGIN { jf = out "/json"; mf = out "/md" }
  function check(name, a, n,   i) {
    if (n != runs) { print "wal_bench: " n " runs of " name ", expected " runs > "/dev/stderr"; bad = 1; return }
    for (i = 1; i <= n; i++)
      if (a[i] "" !~ /^[0-9.]+(e[-+]?[0-9]+)?$/ || !(a[i] + 0 > 0) || a[i] + 0 > 1e15) {
        print "wal_bench: " name " of round " i " is \"" a[i] "\", not a positive number" > "/dev/stderr"; bad = 1
      }
  }
  # name: median [min..max], as text with the given format
  function spread(a, n, f) { return sprintf(f " [" f ".." f "]", median(a, n), minv(a, n), maxv(a, n)) }
  $2 == "fio" { r = $1; fio[r] = $3; fp50[r] = $4; fp99[r] = $5; fw[r] = $7 / $6; ff[r] = $8 / $6; fo[r] = $9 / hz; nf++ }
  $2 == "always" || $2 == "none" {
    r = $1; m = $2; n[m]++
    rps[m, r] = $3; p50[m, r] = $4; p99[m, r] = $5; req[m, r] = $6
    recs[m, r] = $8 / $9; tpw[m, r] = $7 / $9; wps[m, r] = $9 / secs; kib[m, r] = $12 / $9 / 1024
    syncms[m, r] = $10 > 0 ? $11 / $10 * 1000 : 0; rpt[m, r] = $8 / $7; segs[m, r] = $13
    dwpw[m, r] = $14 / $9; dfpw[m, r] = $15 / $9; oth[m, r] = $16 / hz
  }
  END {
    for (r = 1; r <= runs; r++) {
      ta[r] = rps["always", r]; tn[r] = rps["none", r]
      a50[r] = p50["always", r]; a99[r] = p99["always", r]; n50[r] = p50["none", r]; n99[r] = p99["none", r]
      rec[r] = recs["always", r]; tw[r] = tpw["always", r]; ws[r] = wps["always", r]; sm[r] = syncms["always", r]
      kb[r] = kib["always", r]; rt[r] = rpt["always", r]; dw[r] = dwpw["always", r]; df[r] = dfpw["always", r]
      nrec[r] = recs["none", r]; sg[r] = segs["always", r]
      gain[r] = fio[r] > 0 ? ta[r] / fio[r] : 0; cost[r] = tn[r] > 0 ? ta[r] / tn[r] : 0
      syncf[r] = fio[r] > 0 ? ws[r] / fio[r] : 0
      o = fo[r]; if (oth["always", r] > o) o = oth["always", r]; if (oth["none", r] > o) o = oth["none", r]
      if (r == 1 || o > omax) omax = o
      nreq += req["always", r]; nreqn += req["none", r]
    }
    check("fio writes/s", fio, nf); check("fio fdatasync p50", fp50, nf); check("fio fdatasync p99", fp99, nf)
    check("always traces/s", ta, n["always"]); check("none traces/s", tn, n["none"])
    check("always p50", a50, runs); check("always p99", a99, runs); check("none p50", n50, runs); check("none p99", n99, runs)
    check("records per write", rec, runs); check("traces per write", tw, runs); check("WAL writes/s", ws, runs)
    check("WAL write time", sm, runs); check("KiB per write", kb, runs); check("records per trace", rt, runs)
    check("durable traces/s / fio writes/s", gain, runs); check("always/none", cost, runs)
    if (bad) exit 1
    gm = median(ta, runs) / median(fio, runs); cm = median(ta, runs) / median(tn, runs)
    name = "wal_durable_traces_c" conns "_t" thr "_s" shards
    printf "{\"name\":\"%s\",\"unit\":\"traces/s\",\"runs\":%d,\"median\":%.10g,\"min\":%.10g,\"max\":%.10g,", name, runs, median(ta, runs), minv(ta, runs), maxv(ta, runs) > jf
    printf "\"baseline\":\"fio 4KiB O_DIRECT write+fdatasync iodepth 1\",\"baseline_unit\":\"writes/s\",\"baseline_median\":%.10g,\"baseline_min\":%.10g,\"baseline_max\":%.10g,\"ratio\":%.4f,", median(fio, runs), minv(fio, runs), maxv(fio, runs), gm > jf
    printf "\"ratio_min\":%.4f,\"ratio_max\":%.4f,\"none_median\":%.10g,\"none_min\":%.10g,\"none_max\":%.10g,\"always_over_none\":%.4f,\"always_over_none_min\":%.4f,\"always_over_none_max\":%.4f,", minv(gain, runs), maxv(gain, runs), median(tn, runs), minv(tn, runs), maxv(tn, runs), cm, minv(cost, runs), maxv(cost, runs) > jf
    printf "\"ours_p50_us\":%.10g,\"ours_p99_us\":%.10g,\"none_p50_us\":%.10g,\"none_p99_us\":%.10g,\"baseline_fdatasync_p50_us\":%.10g,\"baseline_fdatasync_p99_us\":%.10g,", median(a50, runs), median(a99, runs), median(n50, runs), median(n99, runs), median(fp50, runs), median(fp99, runs) > jf
    printf "\"records_per_write\":%.4g,\"traces_per_write\":%.4g,\"records_per_trace\":%.4g,\"wal_writes_per_s\":%.10g,\"wal_write_ms\":%.4g,\"kib_per_write\":%.4g,\"device_writes_per_wal_write\":%.4g,\"device_flushes_per_wal_write\":%.4g,", median(rec, runs), median(tw, runs), median(rt, runs), median(ws, runs), median(sm, runs), median(kb, runs), median(dw, runs), median(df, runs) > jf
    printf "\"requests\":%d,\"none_requests\":%d,\"connections\":%d,\"wrk_threads\":%d,\"seconds\":%d,\"fio_seconds\":%d,\"shards\":%d,\"body_bytes\":%d,\"busy_runs\":%d,\"repeated_runs\":%d,\"other_cpu_s_max\":%.2f,", nreq, nreqn, conns, thr, secs, fsecs, shards, bodylen, busy, repeated, omax > jf
    printf "\"xerv\":\"%s\",\"disk\":\"%s\",\"cpu\":\"%s\",\"kernel\":\"%s\"}\n", xdesc, disk, cpu, kernel > jf

    printf "| measurement | median [min..max] of %d rounds |\n|---|---|\n", runs > mf
    printf "| fio: 4 KiB O_DIRECT writes + fdatasync, iodepth 1, writes/s (= fsyncs/s) | %s |\n", spread(fio, runs, "%.0f") > mf
    printf "| fio: fdatasync p50 / p99, µs | %s / %s |\n", spread(fp50, runs, "%.0f"), spread(fp99, runs, "%.0f") > mf
    printf "| fio: device writes / flushes per write (/proc/diskstats) | %s / %s |\n", spread(fw, runs, "%.2f"), spread(ff, runs, "%.2f") > mf
    printf "| xerv `XERV_WAL_SYNC=always`: durable traces/s (202s/s) | %s |\n", spread(ta, runs, "%.0f") > mf
    printf "| ... p50 / p99, µs | %s / %s |\n", spread(a50, runs, "%.0f"), spread(a99, runs, "%.0f") > mf
    printf "| ... records per WAL write (`xerv_wal_batch_records` _sum / _count) | %s |\n", spread(rec, runs, "%.1f") > mf
    printf "| ... traces per WAL write (202s / writes); records per trace | %s; %s |\n", spread(tw, runs, "%.1f"), spread(rt, runs, "%.2f") > mf
    printf "| ... WAL writes/s, all shards (`xerv_wal_batch_records_count`, each one RWF_DSYNC write) | %s |\n", spread(ws, runs, "%.0f") > mf
    printf "| ... time per durable write, ms (`xerv_wal_sync_seconds` _sum / _count) | %s |\n", spread(sm, runs, "%.3f") > mf
    printf "| ... KiB per write (`xerv_wal_bytes_total` / writes) | %s |\n", spread(kb, runs, "%.1f") > mf
    printf "| ... device writes / flushes per WAL write (/proc/diskstats) | %s / %s |\n", spread(dw, runs, "%.2f"), spread(df, runs, "%.2f") > mf
    printf "| ... WAL segments created during the run | %s |\n", spread(sg, runs, "%.0f") > mf
    printf "| xerv `XERV_WAL_SYNC=none`: traces/s (202s/s) | %s |\n", spread(tn, runs, "%.0f") > mf
    printf "| ... p50 / p99, µs | %s / %s |\n", spread(n50, runs, "%.0f"), spread(n99, runs, "%.0f") > mf
    printf "| ... records per WAL write | %s |\n", spread(nrec, runs, "%.1f") > mf
    printf "| **durable traces/s ÷ fio fsyncs/s** (ratio of medians [per-round min..max]) | **%.2f** [%.2f..%.2f] |\n", gm, minv(gain, runs), maxv(gain, runs) > mf
    printf "| xerv WAL writes/s ÷ fio fsyncs/s | %.2f [%.2f..%.2f] |\n", median(ws, runs) / median(fio, runs), minv(syncf, runs), maxv(syncf, runs) > mf
    printf "| **always ÷ none traces/s** (cost of durability) | **%.2f** [%.2f..%.2f] |\n", cm, minv(cost, runs), maxv(cost, runs) > mf
    printf "\nPer round (fio, then xerv in both modes; the first mode alternates):\n\n" > mf
    printf "| round | fio writes/s | always traces/s | p50 / p99 µs | records/write | none traces/s | p50 / p99 µs | always÷fio | always÷none |\n|---|---|---|---|---|---|---|---|---|\n" > mf
    for (r = 1; r <= runs; r++)
      printf "| %d | %.0f | %.0f | %.0f / %.0f | %.1f | %.0f | %.0f / %.0f | %.2f | %.2f |\n", r, fio[r], ta[r], a50[r], a99[r], rec[r], tn[r], n50[r], n99[r], gain[r], cost[r] > mf
    printf "\nwrk: %d threads, %d connections, %d s per run, %d-byte JSON body; fio: %d s per run; xerv: %d shards; " \
      "%d + %d requests in total; runs repeated for foreign CPU work: %d, measured while busy: %d; foreign CPU at most %.2f CPU-s in a kept run.\n", thr, conns, secs, bodylen, fsecs, shards, nreq, nreqn, repeated, busy, omax > mf
    if (gm <= 1) print "wal_bench: WARNING: durable traces/s do not exceed the disk'"'"'s fsyncs/s: group commit is not working" > "/dev/stderr"
  }' "$runs" || { echo "wal_bench: the figures above do not add up (see the messages)" >&2; exit 1; }

section="$tmp/section.md"
{
  echo "Command: \`$cmd\` (from the repository root; it holds /tmp/xerv-bench.lock)"
  echo
  echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "- commit: $commit"
  echo "- xerv: $xerv_desc"
  echo "- CPU: ${cpu:-unknown}, $(nproc) CPUs online"
  echo "- kernel: $kernel"
  echo "- data directory: $parent ($disk_desc); fio $("$fio" --version)"
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
  if ! grep -q '<!-- wal_bench:begin -->' "$results"; then
    printf '\n## WAL: durable traces/s with group commit against fsyncs/s\n\nGenerated by `perf/wal_bench.sh` between the markers; the interpretation below them is written by hand.\n\n<!-- wal_bench:begin -->\n<!-- wal_bench:end -->\n' >>"$results"
  fi
  results_with_section wal_bench "$section" "$results" >"$tmp/RESULTS.md.new"
  cp "$tmp/RESULTS.md.new" "$results"
  echo "wal_bench: wrote $results" >&2
fi
