// control_bench: does deploying a big flow stall the other shards? Shard 1 runs
// a 1 ms ticker (a stand-in for its traffic: every tick is a timer and a
// resumption) for `seconds`, while shard 0 deploys a ~1 MiB flow (900 nodes)
// again and again through the control plane (compiled once on shard 0, the
// compiled flow installed on both shards). The baseline is the same ticker with
// shard 0 idle. The rate is ticks/s on shard 1; ratio ~1 means the deploys cost
// shard 1 nothing. Also reported: shard 1's longest gap between ticks with the
// control plane, idle, and with every shard compiling its own copy (the design
// before issue 10), and how long one deploy takes on shard 0.
//
//   control_bench [--smoke] [--seconds S] [--runs R]

#include <algorithm>
#include <chrono>

#include "backends/memory/pipeline_store.h"
#include "backends/memory/trace_queue.h"
#include "flows/control.h"
#include "io/log.h"
#include "io/ops.h"
#include "io/runtime.h"
#include "io/sharded.h"
#include "io/when_all.h"
#include "perf/harness.h"

using namespace xerv;

namespace {

struct config {
  double seconds = 2;
  int runs = 5;
};

std::string big_flow(int version) {
  std::string pad(1000, 'x');
  std::string f = "name: big\nversion: '" + std::to_string(version) + "'\ntriggers:\n  - {id: manual, type: manual}\n"
                  "nodes:\n";
  for (int i = 0; i < 900; ++i)
    f += "  n" + std::to_string(i) + ": {type: std::concat, config: {output_field: f" + std::to_string(i) +
         ", parts: [\"" + pad + "\"]}}\n";
  f += "edges:\n  - {from: manual, to: n0}\n";
  for (int i = 1; i < 900; ++i) f += "  - {from: n" + std::to_string(i - 1) + ", to: n" + std::to_string(i) + "}\n";
  return f;
}

struct ticks {
  uint64_t count = 0;
  uint64_t max_gap_ns = 0;
};

io::task<ticks> ticker(uint64_t duration_ns) {
  ticks t;
  uint64_t start = io::monotonic_ns(), prev = start;
  while (prev - start < duration_ns) {
    co_await io::sleep_for(std::chrono::milliseconds(1));
    uint64_t now = io::monotonic_ns();
    t.max_gap_ns = std::max(t.max_gap_ns, now - prev);
    prev = now;
    ++t.count;
  }
  co_return t;
}

enum class load { idle, control_plane, every_shard_compiles };

struct shard_state {
  std::unique_ptr<backends::memory::trace_queue> queue;
  std::unique_ptr<flows::engine> engine;
};
thread_local shard_state t_state;  // the bench's own wiring, one per shard

void open_shard(io::sharded<flows::engine>& engines) {
  t_state.queue = std::make_unique<backends::memory::trace_queue>(nullptr);
  flows::engine_options eo;
  eo.queue = t_state.queue.get();
  eo.shard = io::this_shard_id();
  eo.shard_count = io::shard_count();
  t_state.engine = std::make_unique<flows::engine>(eo);
  engines.set_local(t_state.engine.get());
}

io::task<void> close_shard(io::sharded<flows::engine>* engines) {
  engines->set_local(nullptr);
  co_await t_state.engine->stop();
  t_state.engine.reset();
  t_state.queue.reset();
}

size_t compile_here(std::string yaml) {
  auto r = flows::compile_flow(yaml);
  return std::get<std::unique_ptr<flows::compiled_flow>>(r)->vertices.size();
}

struct measured {
  ticks shard1;
  uint64_t deploys = 0;
  uint64_t deploy_ns = 0;
};

io::task<uint64_t> drive(flows::control_plane* control, load how, uint64_t duration_ns, uint64_t* deploy_ns) {
  uint64_t start = io::monotonic_ns(), n = 0;
  while (io::monotonic_ns() - start < duration_ns) {
    if (how == load::idle) {
      co_await io::sleep_for(std::chrono::milliseconds(10));
      continue;
    }
    std::string yaml = big_flow(int(n));
    uint64_t t0 = io::monotonic_ns();
    if (how == load::control_plane) {
      flows::deploy_request req;
      req.yaml = std::move(yaml);
      req.persist = false;
      auto deploying = control->deploy(std::move(req));
      auto r = co_await std::move(deploying);
      if (!r.ok()) XLOG(error, "deploy failed: %s", r.message.c_str());
    } else {
      auto compiling = io::invoke_on_all([yaml] { return compile_here(yaml); });
      co_await std::move(compiling);
    }
    *deploy_ns += io::monotonic_ns() - t0;
    ++n;
    co_await io::sleep_for(std::chrono::milliseconds(5));
  }
  co_return n;
}

io::task<measured> one_run(flows::control_plane* control, load how, uint64_t duration_ns) {
  measured m;
  auto tick = io::submit_to(1, [duration_ns] { return ticker(duration_ns); });
  auto driving = drive(control, how, duration_ns, &m.deploy_ns);
  auto both = io::when_all(std::move(tick), std::move(driving));
  auto [t, n] = co_await std::move(both);
  m.shard1 = t;
  m.deploys = n;
  co_return m;
}

perf::run_result as_result(const measured& m, double seconds, bool with_deploys) {
  perf::run_result r;
  r.value = double(m.shard1.count) / seconds;
  r.checksum = m.shard1.count + m.deploys;
  r.extra = {{"shard1_max_gap_ms", double(m.shard1.max_gap_ns) / 1e6}};
  if (with_deploys) r.extra.emplace_back("deploy_ms", m.deploys ? double(m.deploy_ns) / 1e6 / double(m.deploys) : 0);
  return r;
}

io::task<int> bench(config cfg) {
  io::sharded<flows::engine> engines(io::shard_count());
  backends::memory::pipeline_store store("", {});
  flows::control_plane control(store, engines);
  io::sharded<flows::engine>* e = &engines;
  co_await io::invoke_on_all([e] { open_shard(*e); });
  uint64_t duration_ns = uint64_t(cfg.seconds * 1e9);
  std::vector<perf::run_result> ours, baseline;
  std::vector<double> old_gaps, old_deploy;
  for (int i = 0; i < cfg.runs; ++i) {
    auto with_control = one_run(&control, load::control_plane, duration_ns);
    measured m = co_await std::move(with_control);
    ours.push_back(as_result(m, cfg.seconds, true));
    // The old design, in the same run: every shard compiles its own copy.
    auto with_every_shard = one_run(&control, load::every_shard_compiles, duration_ns);
    measured old = co_await std::move(with_every_shard);
    old_gaps.push_back(double(old.shard1.max_gap_ns) / 1e6);
    old_deploy.push_back(old.deploys ? double(old.deploy_ns) / 1e6 / double(old.deploys) : 0);
    auto idle = one_run(&control, load::idle, duration_ns);
    measured b = co_await std::move(idle);
    baseline.push_back(as_result(b, cfg.seconds, false));
  }
  // perf::compare's loop, run above by hand: the runs are coroutines on this shard.
  perf::comparison c = perf::compare_runs("control_deploy_1MiB_shard1_ticks", "ticks/s", ours, baseline);
  c.extra.emplace_back("every_shard_compiles_shard1_max_gap_ms", perf::summarize(old_gaps).median);
  c.extra.emplace_back("every_shard_compiles_deploy_ms", perf::summarize(old_deploy).median);
  c.extra.emplace_back("flow_bytes", double(big_flow(0).size()));
  c.extra.emplace_back("seconds", cfg.seconds);
  perf::emit(c);
  co_await io::invoke_on_all([e] { return close_shard(e); });
  co_return 0;
}

}  // namespace

int main(int argc, char** argv) {
  config cfg;
  if (perf::has_flag(argc, argv, "--smoke")) {
    cfg.seconds = 0.3;
    cfg.runs = 1;
  }
  cfg.seconds = perf::arg_number(argc, argv, "--seconds", cfg.seconds);
  cfg.runs = int(perf::arg_number(argc, argv, "--runs", cfg.runs));
  io::set_log_level(io::log_level::warn);
  io::runtime_options opts;
  opts.shards = 2;
  io::runtime rt(opts);
  return rt.run(bench(cfg));
}
