// dispatch_bench: the engine's own path in process, per shard, no HTTP and no
// disk. Each of 2 shards keeps `concurrency` traces of examples/order_processing
// in flight through engine::admit → the memory backend's queue → the engine's
// consumer → execute → ack → wait_finished. The baseline runs the same flow
// with execute_trace directly (no engine, no dispatch): the ratio is what the
// engine and the dispatch seam cost per trace.
//
// Two variants of ours, in the same run: the compiled flow shared by both
// shards (what the control plane installs: compiled once on shard 0) and a copy
// compiled on each shard (the design before issue 10), to see whether reading
// one compiled flow from two shards costs anything.
//
//   dispatch_bench [--smoke] [--seconds S] [--runs R] [--concurrency N]

#include <chrono>
#include <memory>

#include "backends/memory/trace_queue.h"
#include "flows/control.h"
#include "flows/engine.h"
#include "flows/executor.h"
#include "io/file.h"
#include "io/log.h"
#include "io/ops.h"
#include "io/runtime.h"
#include "io/when_all.h"
#include "perf/harness.h"

using namespace xerv;

namespace {

struct config {
  double seconds = 3;
  int runs = 5;
  unsigned concurrency = 64;
  std::string yaml;
};

const char* k_input = R"({"order_id":"A-1","risk_score":0.42,"amount":125.5})";

enum class mode { shared_flow, own_flow, executor_only };

struct shard_setup {
  std::unique_ptr<backends::memory::trace_queue> queue;
  std::unique_ptr<flows::engine> engine;
  std::shared_ptr<const flows::compiled_flow> flow;  // executor_only
};

std::shared_ptr<const flows::compiled_flow> compile(const std::string& yaml) {
  auto r = flows::compile_flow(yaml);
  return std::move(std::get<std::unique_ptr<flows::compiled_flow>>(r));
}

io::task<uint64_t> client(shard_setup* s, mode m, uint64_t end_ns) {
  uint64_t n = 0;
  core::value input = std::get<core::value>(core::parse_json(k_input));
  while (io::monotonic_ns() < end_ns) {
    if (m == mode::executor_only) {
      auto running = flows::execute_trace(*s->flow, core::value(input.bytes()), "t", s->flow->triggers[1].vertex,
                                          nullptr, flows::execution_options{});
      auto out = co_await std::move(running);
      n += out.status == flows::trace_status::completed;
    } else {
      flows::admission a = s->engine->admit("order_processing", "manual", core::value(input.bytes()));
      if (!a.trace) {
        co_await io::yield();
        continue;
      }
      auto done = s->engine->wait_finished(a.trace);
      n += co_await std::move(done) && a.trace->status == flows::trace_status::completed;
    }
    // Keep the store small: the bench measures the path, not eviction.
  }
  co_return n;
}

// On each shard: builds what the mode needs, runs the clients, tears down.
io::task<uint64_t> run_here(mode m, std::shared_ptr<const flows::compiled_flow> shared, std::string yaml,
                            unsigned concurrency, uint64_t duration_ns) {
  shard_setup s;
  s.queue = std::make_unique<backends::memory::trace_queue>(nullptr);
  flows::engine_options eo;
  eo.queue = s.queue.get();
  eo.shard = io::this_shard_id();
  eo.shard_count = io::shard_count();
  eo.traces_kept_max = 1000;
  s.engine = std::make_unique<flows::engine>(eo);
  s.engine->resume_recovered();
  // Shared: as the control plane installs it (one object, a count per shard).
  std::shared_ptr<const flows::compiled_flow> flow = m == mode::shared_flow ? flows::local_handle(shared) : compile(yaml);
  s.flow = flow;
  s.engine->install(flow, 1, core::pipeline_state::running, core::unix_ms_now());
  uint64_t end = io::monotonic_ns() + duration_ns;
  std::vector<io::task<uint64_t>> clients;
  for (unsigned i = 0; i < concurrency; ++i) clients.push_back(client(&s, m, end));
  auto all = io::when_all(std::move(clients));
  auto counts = co_await std::move(all);
  uint64_t n = 0;
  for (auto c : counts) n += c;
  auto stopping = s.engine->stop();
  co_await std::move(stopping);
  co_return n;
}

io::task<perf::run_result> one_run(const config& cfg, mode m, const std::shared_ptr<const flows::compiled_flow>& shared) {
  uint64_t duration_ns = uint64_t(cfg.seconds * 1e9);
  std::string yaml = cfg.yaml;
  unsigned conc = cfg.concurrency;
  auto job = io::invoke_on_all([m, shared, yaml, conc, duration_ns] { return run_here(m, shared, yaml, conc, duration_ns); });
  auto counts = co_await std::move(job);
  perf::run_result r;
  uint64_t total = 0;
  for (auto c : counts) total += c;
  r.value = double(total) / cfg.seconds / double(counts.size());  // per shard
  r.checksum = total;
  co_return r;
}

io::task<int> bench(config cfg) {
  std::shared_ptr<const flows::compiled_flow> shared = compile(cfg.yaml);
  std::vector<perf::run_result> shared_runs, own_runs, base_runs;
  for (int i = 0; i < cfg.runs; ++i) {
    auto a = one_run(cfg, mode::shared_flow, shared);
    shared_runs.push_back(co_await std::move(a));
    auto b = one_run(cfg, mode::own_flow, shared);
    own_runs.push_back(co_await std::move(b));
    auto c = one_run(cfg, mode::executor_only, shared);
    base_runs.push_back(co_await std::move(c));
  }
  for (auto [name, runs] : {std::pair{"engine_dispatch_shared_flow_c", &shared_runs},
                            std::pair{"engine_dispatch_own_flow_c", &own_runs}}) {
    perf::comparison c =
        perf::compare_runs(std::string(name) + std::to_string(cfg.concurrency), "traces/s per shard", *runs, base_runs);
    c.extra = {{"shards", double(io::shard_count())}, {"concurrency", double(cfg.concurrency)}, {"seconds", cfg.seconds}};
    perf::emit(c);
  }
  co_return 0;
}

}  // namespace

int main(int argc, char** argv) {
  config cfg;
  if (perf::has_flag(argc, argv, "--smoke")) {
    cfg.seconds = 0.2;
    cfg.runs = 1;
  }
  cfg.seconds = perf::arg_number(argc, argv, "--seconds", cfg.seconds);
  cfg.runs = int(perf::arg_number(argc, argv, "--runs", cfg.runs));
  cfg.concurrency = unsigned(perf::arg_number(argc, argv, "--concurrency", cfg.concurrency));
  if (!io::read_file_blocking(XERV_EXAMPLES "/order_processing.yaml", cfg.yaml)) {
    fprintf(stderr, "dispatch_bench: cannot read %s/order_processing.yaml\n", XERV_EXAMPLES);
    return 1;
  }
  io::set_log_level(io::log_level::warn);
  io::runtime_options opts;
  opts.shards = 2;
  io::runtime rt(opts);
  return rt.run(bench(cfg));
}
