#!/usr/bin/env bash
# Builds Release, runs the full-size benchmarks and records them in perf/RESULTS.md:
# the part between the bench:begin/bench:end markers is regenerated (command, date,
# commit, CPU, kernel, a markdown table and the raw JSON lines); the hand-written
# interpretation outside the markers is kept. Raw output also goes to perf/out/.
# Run it on a quiet machine: the figures are only as good as the box is idle.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
. "$(dirname "$0")/lib.sh"
bench_name=bench.sh
build="$root/build/release"
results="$root/perf/RESULTS.md"
out="$root/perf/out"

command -v jq >/dev/null || { echo "bench.sh: jq is missing (scripts/setup installs it)" >&2; exit 1; }
"$root/scripts/build" "$build" -DCMAKE_BUILD_TYPE=Release
mkdir -p "$out"
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

# Busy CPU time of the whole machine, in seconds.
busy_seconds() { cpu_s "$(machine_ticks)"; }

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
# The default echo load oversubscribes a two-core machine (two shards, four client
# threads); the second echo run, one shard and one client thread, does not.
# http_bench.sh (wrk against xerv and nginx) needs `scripts/setup perf`.
runs=("build/release/perf/echo_bench"
  "build/release/perf/echo_bench --shards 1 --client-threads 1"
  "build/release/perf/msg_bench"
  "perf/http_bench.sh")
: >"$out/results.jsonl"
: >"$out/stderr.log"
noise="$out/noise.md"
: >"$noise"
for cmd in "${runs[@]}"; do
  echo "bench.sh: $cmd" >&2
  before=$(busy_seconds)
  start=$(date +%s.%N)
  # TIMEFORMAT reports the benchmark's own CPU time, so the rest of the machine's
  # busy time during the run is what other processes took: the noise.
  TIMEFORMAT='%U %S'
  own=$({ time (cd "$root" && $cmd >>"$out/results.jsonl" 2>"$out/last.log"); } 2>&1)
  cat "$out/last.log" | tee -a "$out/stderr.log" >&2
  awk -v cmd="$cmd" -v own="$own" -v b0="$before" -v b1="$(busy_seconds)" -v t0="$start" -v t1="$(date +%s.%N)" -v cpus="$(nproc)" \
    'BEGIN { split(own, o, " "); mine = o[1] + o[2]; other = b1 - b0 - mine; if (other < 0) other = 0;
             printf "| `%s` | %.0f | %.1f | %.1f | %.1f |\n", cmd, t1 - t0, (t1 - t0) * cpus, mine, other }' >>"$noise"
done
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

first=$(head -n1 "$out/results.jsonl")
commit=$(git -C "$root" rev-parse --short HEAD)
git -C "$root" diff --quiet HEAD -- io http app perf || commit="$commit (with uncommitted changes in io/, http/, app/ or perf/)"

gen="$out/generated.md"
{
  echo "Command: \`perf/bench.sh\`, which runs, from the repository root:"
  echo
  for cmd in "${runs[@]}"; do echo "    $cmd"; done
  echo
  echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "- commit: $commit"
  echo "- CPU: $(jq -r .cpu <<<"$first"), $(nproc) CPUs online"
  echo "- kernel: $(jq -r .kernel <<<"$first")"
  echo "- load average (1/5/15 min) before: $load_before, after: $load_after"
  echo
  echo "Medians of $(jq -r .runs <<<"$first") runs, [min..max] in brackets; xerv and baseline runs alternate."
  echo
  echo "| benchmark | unit | xerv | baseline | xerv/baseline |"
  echo "|---|---|---|---|---|"
  jq -r '"| \(.name) | \(.unit) | \(.median|round) [\(.min|round)..\(.max|round)] | \(.baseline_median|round) [\(.baseline_min|round)..\(.baseline_max|round)] | \(.ratio) |"' "$out/results.jsonl"
  if jq -s -e 'any(.[]; has("ours_p50_us"))' "$out/results.jsonl" >/dev/null; then
    echo
    echo "| benchmark | xerv p50 / p99 µs | baseline p50 / p99 µs |"
    echo "|---|---|---|"
    jq -r 'select(has("ours_p50_us")) | "| \(.name) | \(.ours_p50_us) / \(.ours_p99_us) | \(.baseline_p50_us) / \(.baseline_p99_us) |"' "$out/results.jsonl"
  fi
  echo
  echo "CPU time during each command, in seconds: what the benchmark used itself, and the"
  echo "rest of the machine's busy time meanwhile (other processes, plus interrupt time not"
  echo "charged to the benchmark, so an upper bound on the noise in these figures)."
  echo
  echo "| command | wall | CPU available | benchmark | other processes |"
  echo "|---|---|---|---|---|"
  cat "$noise"
  echo
  echo "JSON lines:"
  echo
  echo '```json'
  cat "$out/results.jsonl"
  echo '```'
} >"$gen"

if ! grep -q '<!-- bench:begin -->' "$results" 2>/dev/null; then
  printf '# perf results\n\n<!-- bench:begin -->\n<!-- bench:end -->\n\n## Interpretation\n\n(to be written)\n' >"$results"
fi
results_with_section bench "$gen" "$results" >"$out/RESULTS.md.new"
mv "$out/RESULTS.md.new" "$results"
echo "bench.sh: wrote $results" >&2
