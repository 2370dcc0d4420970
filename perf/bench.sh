#!/usr/bin/env bash
# Builds Release, runs the full-size benchmarks and records them in perf/RESULTS.md:
# the part between the bench:begin/bench:end markers is regenerated (command, date,
# commit, CPU, kernel, a markdown table and the raw JSON lines); the hand-written
# interpretation outside the markers is kept. Raw output also goes to perf/out/.
# Run it on a quiet machine: the figures are only as good as the box is idle.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build="$root/build/release"
results="$root/perf/RESULTS.md"
out="$root/perf/out"

command -v jq >/dev/null || { echo "bench.sh: jq is missing (scripts/setup installs it)" >&2; exit 1; }
"$root/scripts/build" "$build" -DCMAKE_BUILD_TYPE=Release
mkdir -p "$out"
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
# The default echo load oversubscribes a two-core machine (two shards, four client
# threads); the second echo run, one shard and one client thread, does not.
runs=("build/release/perf/echo_bench"
  "build/release/perf/echo_bench --shards 1 --client-threads 1"
  "build/release/perf/msg_bench")
: >"$out/results.jsonl"
for cmd in "${runs[@]}"; do
  echo "bench.sh: $cmd" >&2
  (cd "$root" && $cmd) >>"$out/results.jsonl"
done
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

first=$(head -n1 "$out/results.jsonl")
commit=$(git -C "$root" rev-parse --short HEAD)
git -C "$root" diff --quiet HEAD -- io perf || commit="$commit (with uncommitted changes in io/ or perf/)"

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
  if jq -e 'select(has("ours_p50_us"))' "$out/results.jsonl" >/dev/null; then
    echo
    echo "| benchmark | xerv p50 / p99 µs | baseline p50 / p99 µs |"
    echo "|---|---|---|"
    jq -r 'select(has("ours_p50_us")) | "| \(.name) | \(.ours_p50_us) / \(.ours_p99_us) | \(.baseline_p50_us) / \(.baseline_p99_us) |"' "$out/results.jsonl"
  fi
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
awk -v gen="$gen" '
  /<!-- bench:begin -->/ { print; while ((getline line < gen) > 0) print line; skip = 1; next }
  /<!-- bench:end -->/ { skip = 0 }
  !skip { print }
' "$results" >"$out/RESULTS.md.new"
mv "$out/RESULTS.md.new" "$results"
echo "bench.sh: wrote $results" >&2
