// cron_bench: cron fire jitter (issue 12): how late after its scheduled instant
// a cron trigger fires, in ms. Ours: the real `xerv serve` as a child process
// (2 shards, a fresh data directory under /var/tmp) with K generated pipelines
// cron_0..cron_{K-1}, each an every-second cron trigger -> std::log (debug, so
// into the trace only). After N seconds it is stopped with SIGTERM and every
// trace is read back with `xerv inspect --all`; jitter = input.fired_at -
// input.scheduled_at. Each pipeline must have fired N-2..N+1 times, never twice
// for one instant, or the run fails.
//
// Baseline, in this process while xerv is not running: the floor for "wake at a
// wall-clock instant": for the same N seconds, clock_nanosleep(CLOCK_REALTIME,
// TIMER_ABSTIME) to each next whole second, then K readings of CLOCK_REALTIME,
// each one sample of lateness (one wake serves K timers, as one scheduler wake
// per shard serves its triggers). Rounds alternate which side goes first.
//
// xerv's fired_at is CLOCK_REALTIME truncated to whole ms, so most fires read
// 0 ms late. Both sides are therefore compared with that instrument: the
// baseline's readings are truncated the same way, and each sample on both sides
// counts as the middle of its millisecond (whole ms + 0.5): ratio 1 means "no
// later than the floor, at 1 ms resolution". The baseline's untruncated figures
// (baseline_raw_*) and the share of samples 1 ms or more late are reported too.
// Lower is better: ratio = ours p50 / baseline p50 (p99_ratio likewise).
//
//   cron_bench [--smoke] [--xerv PATH] [--dir DIR] [--triggers K] [--seconds N]
//              [--rounds R] [--shards S]

#include <signal.h>
#include <time.h>

#include <cmath>
#include <memory>
#include <set>

#include "perf/harness.h"
#include "perf/serve.h"
#include "tests/integration/xerv_process.h"

using namespace xerv;
namespace xt = xerv::testing;
using perf::arg_string;
using perf::field_of;
using namespace xerv::perf::serve;

namespace {

struct config {
  std::string xerv = XERV_BINARY;
  std::string dir = "/var/tmp";
  int triggers = 20, seconds = 30, rounds = 1, shards = 2;
};



int64_t realtime_ns() {
  timespec t{};
  clock_gettime(CLOCK_REALTIME, &t);
  return int64_t(t.tv_sec) * 1'000'000'000 + t.tv_nsec;
}

// "2026-12-03T09:50:32.001Z" -> Unix ms, or -1.
int64_t rfc3339_ms(const std::string& s) {
  tm t{};
  int ms = 0;
  if (sscanf(s.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d.%3dZ", &t.tm_year, &t.tm_mon, &t.tm_mday, &t.tm_hour, &t.tm_min,
             &t.tm_sec, &ms) != 7)
    return -1;
  t.tm_year -= 1900;
  t.tm_mon -= 1;
  return int64_t(timegm(&t)) * 1000 + ms;
}

// Nearest-rank percentile of sorted values.
double percentile(const std::vector<double>& sorted, double p) {
  if (sorted.empty()) return 0;
  size_t rank = size_t(std::ceil(p * double(sorted.size())));
  return sorted[std::min(sorted.size() - 1, rank == 0 ? 0 : rank - 1)];
}

// Whole-ms lateness samples -> p50/p99/max at the middle of their millisecond.
perf::run_result summarize(std::vector<int64_t> ms, uint64_t checksum, double early) {
  std::vector<double> mid;
  double late = 0;
  for (int64_t v : ms) {
    mid.push_back(double(v) + 0.5);
    late += v >= 1;
  }
  std::sort(mid.begin(), mid.end());
  perf::run_result r;
  r.value = percentile(mid, 0.5);
  r.checksum = checksum;
  r.extra = {{"p99_ms", percentile(mid, 0.99)}, {"max_ms", mid.empty() ? 0 : mid.back()},
             {"samples", double(mid.size())}, {"late_1ms_share", mid.empty() ? 0 : late / double(mid.size())},
             {"early", early}};
  return r;
}

perf::run_result baseline_run(const config& cfg) {
  std::vector<int64_t> whole;
  std::vector<double> raw;
  int64_t next_s = realtime_ns() / 1'000'000'000 + 1;
  for (int i = 0; i < cfg.seconds; ++i, ++next_s) {
    timespec at{time_t(next_s), 0};
    while (clock_nanosleep(CLOCK_REALTIME, TIMER_ABSTIME, &at, nullptr) == EINTR) check_signal();
    for (int k = 0; k < cfg.triggers; ++k) {
      int64_t t = realtime_ns();
      raw.push_back(double(t - next_s * 1'000'000'000) / 1e6);
      whole.push_back(t / 1'000'000 - next_s * 1000);  // truncated as xerv's fired_at
    }
  }
  uint64_t n = raw.size();
  auto r = summarize(std::move(whole), n, 0);
  std::sort(raw.begin(), raw.end());
  r.extra.push_back({"raw_p50_ms", percentile(raw, 0.5)});
  r.extra.push_back({"raw_p99_ms", percentile(raw, 0.99)});
  r.extra.push_back({"raw_max_ms", raw.back()});
  return r;
}

std::string cron_flow(int i) {
  std::string name = "cron_" + std::to_string(i);
  return "name: " + name + R"(
version: "1"
triggers:
  - {id: every, type: cron, params: {schedule: "* * * * * *"}}
nodes:
  note: {type: std::log, config: {message: "tick", level: debug}}
edges:
  - {from: every, to: note}
)";
}

perf::run_result xerv_run(const config& cfg) {
  std::string tmpl = cfg.dir + "/xerv-cron-bench-XXXXXX";
  if (!mkdtemp(tmpl.data())) fail("mkdtemp under " + cfg.dir + ": " + strerror(errno));
  g_run_dir = tmpl;
  std::string data = g_run_dir + "/data", flows = g_run_dir + "/pipelines";
  std::filesystem::create_directories(data);
  std::filesystem::create_directories(flows);
  for (int i = 0; i < cfg.triggers; ++i) std::ofstream(flows + "/cron_" + std::to_string(i) + ".yaml") << cron_flow(i);
  // XERV_LOG=info, not warn: the "serving on" line (info) is how xerv_process
  // learns that it is ready; xerv logs nothing per cron fire at info.
  g_server = std::make_unique<xt::xerv_process>(std::vector<std::string>{
      "XERV_DATA_DIR=" + data, "XERV_SHARDS=" + std::to_string(cfg.shards), "XERV_LOG=info",
      "XERV_PIPELINES_DIR=" + flows, "XERV_API_HOST=127.0.0.1", "XERV_API_PORT=0"});
  if (!g_server->spawned()) fail("cannot start " + cfg.xerv);
  if (g_server->wait_ready(std::chrono::seconds(30)) == 0) fail("xerv did not become ready within 30 s");
  auto end = std::chrono::steady_clock::now() + std::chrono::seconds(cfg.seconds);
  while (std::chrono::steady_clock::now() < end) {
    check_signal();
    if (g_server->exited()) fail("xerv exited while running");
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  g_server->signal(SIGTERM);
  auto code = g_server->wait_exit(std::chrono::seconds(15));
  if (!code || *code != 0) fail(code ? "xerv exited with " + std::to_string(*code) : "xerv ignored SIGTERM for 15 s");
  std::string warnings = g_server->log();
  g_server.reset();

  std::string cmd = "'" + cfg.xerv + "' inspect --all --data-dir '" + data + "'";
  FILE* in = popen(cmd.c_str(), "r");
  if (!in) fail("cannot run " + cmd);
  std::map<std::string, std::set<int64_t>> instants;  // pipeline -> its fires' scheduled instants
  std::vector<int64_t> jitter;
  double early = 0, not_completed = 0;
  uint64_t checksum = 0;
  char* buf = nullptr;
  size_t cap = 0;
  for (ssize_t len; (len = getline(&buf, &cap, in)) > 0;) {
    std::string line(buf, size_t(len)), pipeline = xt::json_field(line, "pipeline_id");
    std::string at = xt::json_field(line, "scheduled_at");
    int64_t sched = rfc3339_ms(at), fired = rfc3339_ms(xt::json_field(line, "fired_at"));
    if (sched < 0 || fired < 0 || line.find("\"trigger\":\"" + pipeline + ".every\"") == std::string::npos)
      fail("not a cron trace of this run: " + line.substr(0, 300));
    if (sched % 1000 != 0) fail("scheduled_at is not a whole second: " + line.substr(0, 300));
    if (!instants[pipeline].insert(sched).second) fail(pipeline + " fired twice for " + at);
    if (xt::json_field(line, "status") != "completed") ++not_completed;
    if (fired < sched) ++early;
    jitter.push_back(fired - sched);
    checksum = checksum * 31 + uint64_t(sched / 1000);
  }
  free(buf);
  int rc = pclose(in);
  if (rc != 0) fail(cmd + " failed (" + std::to_string(rc) + ")");
  cleanup();
  for (int i = 0; i < cfg.triggers; ++i) {
    std::string p = "cron_" + std::to_string(i);
    int n = int(instants[p].size());
    if (n < cfg.seconds - 2 || n > cfg.seconds + 1)
      fail(p + " fired " + std::to_string(n) + " times in " + std::to_string(cfg.seconds) + " s");
  }
  if (instants.size() != size_t(cfg.triggers)) fail("traces of " + std::to_string(instants.size()) + " pipelines");
  if (warnings.find("WARN") != std::string::npos || warnings.find("ERROR") != std::string::npos)
    fprintf(stderr, "cron_bench: xerv logged warnings:\n%s\n", warnings.c_str());
  auto r = summarize(std::move(jitter), checksum, early);
  r.extra.push_back({"not_completed", not_completed});
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  g_bench = "cron_bench";
  signal(SIGINT, on_signal);
  signal(SIGTERM, on_signal);
  config cfg;
  if (perf::has_flag(argc, argv, "--smoke")) cfg.triggers = 2, cfg.seconds = 3;
  cfg.xerv = arg_string(argc, argv, "--xerv", cfg.xerv);
  cfg.dir = arg_string(argc, argv, "--dir", cfg.dir);
  cfg.triggers = int(perf::arg_number(argc, argv, "--triggers", cfg.triggers));
  cfg.seconds = int(perf::arg_number(argc, argv, "--seconds", cfg.seconds));
  cfg.rounds = int(perf::arg_number(argc, argv, "--rounds", cfg.rounds));
  cfg.shards = int(perf::arg_number(argc, argv, "--shards", cfg.shards));
  if (cfg.triggers < 1 || cfg.triggers > 10'000 || cfg.seconds < 3 || cfg.rounds < 1 || cfg.shards < 1 ||
      cfg.shards > 64 || cfg.xerv.find('\'') != std::string::npos || cfg.dir.find('\'') != std::string::npos) {
    fprintf(stderr, "cron_bench: bad arguments\n");
    return 2;
  }
  if (access(cfg.xerv.c_str(), X_OK) != 0) fail(cfg.xerv + " is not an executable xerv binary");
  setenv("XERV_TEST_BINARY", cfg.xerv.c_str(), 1);  // xerv_process starts this binary
  fprintf(stderr, "cron_bench: %s, %d shards, %d triggers, %d s per side, %d rounds, data under %s\n",
          cfg.xerv.c_str(), cfg.shards, cfg.triggers, cfg.seconds, cfg.rounds, cfg.dir.c_str());
  std::vector<perf::run_result> ours, base;
  double fires = 0;
  for (int round = 0; round < cfg.rounds; ++round) {
    for (int side = 0; side < 2; ++side) {
      if ((side == 0) == (round % 2 == 1)) {
        ours.push_back(xerv_run(cfg));
        fires += ours.back().extra[2].second;
        const auto& e = ours.back().extra;
        fprintf(stderr, "  round %d xerv:     p50 %.1f ms  p99 %.1f ms  max %.1f ms  %.0f fires\n", round + 1,
                ours.back().value, e[0].second, e[1].second, e[2].second);
      } else {
        base.push_back(baseline_run(cfg));
        const auto& e = base.back().extra;
        fprintf(stderr, "  round %d baseline: p50 %.1f ms  p99 %.1f ms  max %.1f ms  %.0f samples (untruncated: p50 "
                "%.3f  p99 %.3f  max %.3f ms)\n", round + 1, base.back().value, e[0].second, e[1].second,
                e[2].second, e[5].second, e[6].second, e[7].second);
      }
    }
  }
  auto c = perf::compare_runs("cron_jitter_k" + std::to_string(cfg.triggers) + "_s" + std::to_string(cfg.shards),
                              "ms_p50", ours, base);
  double b99 = field_of(c, "baseline_p99_ms");
  c.extra.insert(c.extra.begin(), {{"p99_ratio", b99 > 0 ? field_of(c, "ours_p99_ms") / b99 : 0},
                                   {"fires", fires},
                                   {"triggers", double(cfg.triggers)},
                                   {"seconds", double(cfg.seconds)},
                                   {"shards", double(cfg.shards)}});
  perf::emit(c);
  return 0;
}
