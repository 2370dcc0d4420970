// Property test: random DAGs with switches and merges, run on one shard and on
// every shard of a two-shard runtime. Each node runs at most once, every node
// ends completed or skipped, and all runs agree on statuses and output. The seed
// is printed; XERV_SEED replays one.

#include <gtest/gtest.h>

#include <cstdlib>
#include <map>
#include <random>

#include "flows/executor.h"
#include "io/when_all.h"
#include "tests/run_on.h"

using namespace xerv;

namespace {

struct generated {
  std::string yaml;
  std::string input;
};

generated random_flow(std::mt19937_64& rng, int index) {
  std::uniform_int_distribution<int> count(3, 25);
  int n = count(rng);
  std::string nodes, edges;
  std::vector<int> kind(static_cast<size_t>(n), 0);  // 0 log, 1 switch, 2 merge
  for (int i = 0; i < n; ++i) {
    kind[size_t(i)] = int(rng() % 3);
    std::string name = "n" + std::to_string(i);
    if (kind[size_t(i)] == 0) nodes += "  " + name + ": {type: std::log, config: {message: \"at " + name + "\"}}\n";
    else if (kind[size_t(i)] == 1)
      nodes += "  " + name + ": {type: std::switch, config: {condition: {type: greater_than, field: x" +
               std::to_string(rng() % 6) + ", value: 0.5}}}\n";
    else nodes += "  " + name + ": {type: std::merge}\n";
  }
  auto source = [&](int from) {
    if (from < 0) return std::string("t");
    std::string s = "n" + std::to_string(from);
    if (kind[size_t(from)] == 1) s += (rng() % 2) ? ".true" : ".false";
    return s;
  };
  for (int i = 0; i < n; ++i) {
    // Every node gets one input from an earlier node (or the trigger), so all are
    // reachable; some get more, which makes joins.
    int first = i == 0 ? -1 : int(rng() % uint64_t(i + 1)) - 1;
    edges += "  - {from: " + source(first) + ", to: n" + std::to_string(i) + "}\n";
    int extra = int(rng() % 3);
    for (int e = 0; e < extra && i > 1; ++e) {
      int from = int(rng() % uint64_t(i));
      if (from == first) continue;
      edges += "  - {from: " + source(from) + ", to: n" + std::to_string(i) + "}\n";
    }
  }
  std::string input = "{";
  for (int x = 0; x < 6; ++x) input += (x ? ",\"x" : "\"x") + std::to_string(x) + "\":" + std::to_string(rng() % 2);
  input += "}";
  return {"name: random_" + std::to_string(index) + "\ntriggers: [{id: t, type: memory}]\nnodes:\n" + nodes +
              "edges:\n" + edges,
          input};
}

struct observed final : flows::trace_observer {
  const flows::compiled_flow* flow = nullptr;
  std::map<std::string, int> starts;
  std::map<std::string, flows::node_status> status;
  void node_started(uint32_t v) override { ++starts[flow->vertices[v].name]; }
  void node_finished(uint32_t v, flows::node_status s, uint16_t, core::value_ref, uint64_t) override {
    status[flow->vertices[v].name] = s;
  }
  void node_log(uint32_t, io::log_level, std::string_view) override {}
};

struct run_summary {
  std::string output;
  std::string statuses;  // name=status, in name order
  std::string violations;
};

io::task<run_summary> run_here(generated g) {
  auto r = flows::compile_flow(g.yaml);
  auto* f = std::get_if<std::unique_ptr<flows::compiled_flow>>(&r);
  run_summary s;
  if (!f) {
    s.violations = "does not compile: " + flows::format_errors(std::get<std::vector<flows::flow_error>>(r), "random");
    co_return s;
  }
  observed obs;
  obs.flow = f->get();
  auto out = co_await flows::execute_trace(**f, std::get<core::value>(core::parse_json(g.input)), "p",
                                           (*f)->triggers[0].vertex, &obs);
  if (out.status != flows::trace_status::completed) s.violations += "trace " + std::string(flows::to_string(out.status)) + "; ";
  s.output = core::to_json(out.output.ref());
  for (const auto& v : (*f)->vertices) {
    auto st = obs.status.count(v.name) ? obs.status[v.name] : flows::node_status::pending;
    if (st != flows::node_status::completed && st != flows::node_status::skipped)
      s.violations += v.name + " ended " + flows::to_string(st) + "; ";
    if (obs.starts[v.name] > 1) s.violations += v.name + " ran " + std::to_string(obs.starts[v.name]) + " times; ";
    s.statuses += v.name + "=" + flows::to_string(st) + " ";
  }
  co_return s;
}

io::task<int> compare(std::vector<generated> flows_in, std::vector<run_summary>* single, int* mismatches,
                      std::string* report) {
  for (size_t i = 0; i < flows_in.size(); ++i) {
    auto job = io::invoke_on_all([g = flows_in[i]] { return run_here(g); });
    auto per_shard = co_await std::move(job);
    for (size_t s = 0; s < per_shard.size(); ++s) {
      const run_summary& a = (*single)[i];
      const run_summary& b = per_shard[s];
      if (a.output != b.output || a.statuses != b.statuses || !b.violations.empty()) {
        ++*mismatches;
        *report += "flow " + std::to_string(i) + " shard " + std::to_string(s) + ": " + b.violations + "\n" +
                   flows_in[i].yaml + "\n";
      }
    }
  }
  co_return 0;
}

io::task<int> run_single(std::vector<generated> flows_in, std::vector<run_summary>* out) {
  for (auto& g : flows_in) out->push_back(co_await run_here(g));
  co_return 0;
}

TEST(property, random_dags_run_each_node_once_and_agree_across_shards) {
  uint64_t seed = std::random_device{}();
  if (const char* s = getenv("XERV_SEED")) seed = std::strtoull(s, nullptr, 10);
  std::printf("property seed: %llu (replay with XERV_SEED=%llu)\n", static_cast<unsigned long long>(seed),
              static_cast<unsigned long long>(seed));
  std::mt19937_64 rng(seed);
  std::vector<generated> cases;
  for (int i = 0; i < 150; ++i) cases.push_back(random_flow(rng, i));

  std::vector<run_summary> single;
  ASSERT_EQ(xerv::testing::run_on(1, run_single(cases, &single)), 0);
  for (size_t i = 0; i < single.size(); ++i) EXPECT_EQ(single[i].violations, "") << "seed " << seed << "\n" << cases[i].yaml;

  int mismatches = 0;
  std::string report;
  ASSERT_EQ(xerv::testing::run_on(2, compare(cases, &single, &mismatches, &report)), 0);
  EXPECT_EQ(mismatches, 0) << "seed " << seed << "\n" << report;
}

}  // namespace
