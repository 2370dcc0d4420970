// flows/executor: readiness, dead paths, merge, split and loop bodies, timeouts,
// error ports and the concurrency limit, on a one-shard runtime.

#include "flows/executor.h"

#include <gtest/gtest.h>

#include <map>

#include "tests/run_on.h"

using namespace xerv;
using namespace std::chrono_literals;

namespace {

struct recorder : flows::trace_observer {
  const flows::compiled_flow* flow = nullptr;
  std::map<std::string, int> runs;
  std::map<std::string, flows::node_status> last;
  std::map<std::string, uint64_t> took_ns;
  std::vector<std::string> logs;
  void node_started(uint32_t v) override { ++runs[flow->vertices[v].name]; }
  void node_finished(uint32_t v, flows::node_status s, uint16_t, core::value_ref, uint64_t duration_ns) override {
    last[flow->vertices[v].name] = s;
    took_ns[flow->vertices[v].name] = duration_ns;
  }
  void node_log(uint32_t, io::log_level, std::string_view m) override { logs.emplace_back(m); }
};

std::unique_ptr<flows::compiled_flow> compile(const std::string& yaml) {
  auto r = flows::compile_flow(yaml);
  if (auto* errs = std::get_if<std::vector<flows::flow_error>>(&r)) {
    ADD_FAILURE() << flows::format_errors(*errs, "flow.yaml");
    return nullptr;
  }
  return std::move(std::get<std::unique_ptr<flows::compiled_flow>>(r));
}

core::value json(std::string_view text) { return std::get<core::value>(core::parse_json(text)); }

struct run_result {
  flows::trace_outcome outcome;
  recorder rec;
  uint64_t took_ms = 0;
};

io::task<int> run_flow(const flows::compiled_flow* flow, std::string input, run_result* out) {
  out->rec.flow = flow;
  uint64_t t0 = io::monotonic_ns();
  out->outcome = co_await flows::execute_trace(*flow, json(input), "trace-1", flow->triggers[0].vertex, &out->rec);
  out->took_ms = (io::monotonic_ns() - t0) / 1'000'000;
  co_return 0;
}

run_result run(const std::string& yaml, std::string input) {
  run_result r;
  auto flow = compile(yaml);
  if (!flow) return r;
  EXPECT_EQ(xerv::testing::run_on(1, run_flow(flow.get(), std::move(input), &r)), 0);
  return r;
}

std::string out_json(const run_result& r) { return core::to_json(r.outcome.output.ref()); }

TEST(executor, linear_chain_passes_input_through_and_renders_logs) {
  auto r = run(R"(
name: linear
triggers: [{id: t, type: manual}]
nodes:
  a: {type: std::log, config: {message: "order ${input.id} for ${input.amount}"}}
  b: {type: std::log, config: {message: "from a: ${a.id}"}}
edges:
  - {from: t, to: a}
  - {from: a, to: b}
)", R"({"id":"A-1","amount":12.5})");
  EXPECT_EQ(r.outcome.status, flows::trace_status::completed) << r.outcome.error_node << ": " << r.outcome.error_message;
  EXPECT_EQ(out_json(r), R"({"id":"A-1","amount":12.5})");
  EXPECT_EQ(r.rec.logs, (std::vector<std::string>{"order A-1 for 12.5", "from a: A-1"}));
  EXPECT_EQ(r.rec.runs["a"], 1);
  EXPECT_EQ(r.rec.runs["b"], 1);
}

TEST(executor, merge_waits_for_both_branches_and_keys_by_source) {
  auto r = run(R"(
name: fan
triggers: [{id: t, type: manual}]
nodes:
  slow: {type: std::delay, config: {ms: 30}}
  fast: {type: std::log}
  join: {type: std::merge}
edges:
  - {from: t, to: slow}
  - {from: t, to: fast}
  - {from: slow, to: join}
  - {from: fast, to: join}
)", R"({"x":1})");
  EXPECT_EQ(r.outcome.status, flows::trace_status::completed) << r.outcome.error_node << ": " << r.outcome.error_message;
  EXPECT_EQ(out_json(r), R"({"fast":{"x":1},"slow":{"x":1}})");
  EXPECT_GE(r.took_ms, 30u);
}

TEST(executor, first_arrival_merge_does_not_wait) {
  auto r = run(R"(
name: race
triggers: [{id: t, type: manual}]
nodes:
  slow: {type: std::delay, config: {ms: 300}}
  fast: {type: std::delay, config: {ms: 1}}
  join: {type: std::merge, config: {strategy: first_arrival}}
  after: {type: std::log}
edges:
  - {from: t, to: slow}
  - {from: t, to: fast}
  - {from: slow, to: join}
  - {from: fast, to: join}
  - {from: join, to: after}
)", R"(1)");
  EXPECT_EQ(r.outcome.status, flows::trace_status::completed) << r.outcome.error_node << ": " << r.outcome.error_message;
  EXPECT_EQ(r.rec.runs["join"], 1);
  // The trace output is the only sink's (after) output: the merge of fast alone.
  EXPECT_EQ(out_json(r), R"({"fast":1})");
}

TEST(executor, split_runs_the_body_per_item_and_collects_in_order) {
  auto r = run(R"(
name: fanout
triggers: [{id: t, type: manual}]
nodes:
  each: {type: std::split, config: {field: $.items, mode: parallel}}
  wait: {type: std::delay, config: {ms: 5}}
  item_log: {type: std::log, config: {message: "item ${wait.n}"}}
  done: {type: std::log, config: {message: "all done"}}
edges:
  - {from: t, to: each}
  - {from: each.out, to: wait}
  - {from: wait, to: item_log}
  - {from: each.done, to: done}
)", R"({"items":[{"n":1},{"n":2},{"n":3}]})");
  EXPECT_EQ(r.outcome.status, flows::trace_status::completed) << r.outcome.error_message;
  EXPECT_EQ(out_json(r), R"([{"n":1},{"n":2},{"n":3}])");
  EXPECT_EQ(r.rec.runs["item_log"], 3);
  EXPECT_EQ(r.rec.runs["done"], 1);
}

TEST(executor, split_on_a_non_array_fails_the_trace) {
  auto r = run(R"(
name: fanout
triggers: [{id: t, type: manual}]
nodes:
  each: {type: std::split, config: {field: $.items}}
  body: {type: std::log}
edges:
  - {from: t, to: each}
  - {from: each.out, to: body}
)", R"({"items":5})");
  EXPECT_EQ(r.outcome.status, flows::trace_status::failed);
  EXPECT_EQ(r.outcome.error_node, "each");
  EXPECT_EQ(r.outcome.error_code, "invalid_input");
  EXPECT_NE(r.outcome.error_message.find("not an array"), std::string::npos);
}

TEST(executor, loop_runs_its_body_max_iterations_times) {
  auto r = run(R"(
name: looping
triggers: [{id: t, type: manual}]
nodes:
  again: {type: std::loop, config: {max_iterations: 4}}
  body: {type: std::log, config: {message: "iteration"}}
  after: {type: std::log, config: {message: "exit"}}
edges:
  - {from: t, to: again}
  - {from: again.continue, to: body}
  - {from: body, to: again}
  - {from: again.exit, to: after}
)", R"({"v":1})");
  EXPECT_EQ(r.outcome.status, flows::trace_status::completed) << r.outcome.error_message;
  EXPECT_EQ(r.rec.runs["body"], 4);
  EXPECT_EQ(r.rec.runs["after"], 1);
  EXPECT_EQ(out_json(r), R"({"v":1})");
}

TEST(executor, loop_stops_when_until_true_holds) {
  auto r = run(R"(
name: looping
triggers: [{id: t, type: manual}]
nodes:
  again: {type: std::loop, config: {max_iterations: 10, until_true: $.stop}}
  body: {type: std::log}
edges:
  - {from: t, to: again}
  - {from: again.continue, to: body}
  - {from: body, to: again}
)", R"({"stop":true})");
  EXPECT_EQ(r.outcome.status, flows::trace_status::completed) << r.outcome.error_node << ": " << r.outcome.error_message;
  EXPECT_EQ(r.rec.runs["body"], 1);
}

TEST(executor, trace_timeout_ends_the_trace) {
  auto r = run(R"(
name: slow
triggers: [{id: t, type: manual}]
nodes:
  nap: {type: std::delay, config: {ms: 5000}}
edges:
  - {from: t, to: nap}
settings: {execution_timeout_ms: 50}
)", "{}");
  EXPECT_EQ(r.outcome.status, flows::trace_status::timed_out);
  EXPECT_EQ(r.outcome.error_code, "timeout");
  EXPECT_LT(r.took_ms, 1000u);
}

TEST(executor, node_timeout_goes_to_the_error_port_when_connected) {
  auto r = run(R"(
name: guarded
triggers: [{id: t, type: manual}]
nodes:
  nap: {type: std::delay, config: {ms: 5000}, timeout_ms: 20}
  ok: {type: std::log}
  handler: {type: std::log}
edges:
  - {from: t, to: nap}
  - {from: nap, to: ok}
  - {from: nap.error, to: handler}
)", "{}");
  EXPECT_EQ(r.outcome.status, flows::trace_status::completed) << r.outcome.error_message;
  EXPECT_EQ(r.rec.last["ok"], flows::node_status::skipped);
  EXPECT_EQ(r.rec.last["handler"], flows::node_status::completed);
  EXPECT_EQ(out_json(r), R"({"error":"node_timeout","message":"node timed out after 20 ms","node":"nap"})");
}

TEST(executor, node_timeout_without_error_port_fails_the_trace) {
  auto r = run(R"(
name: unguarded
triggers: [{id: t, type: manual}]
nodes:
  nap: {type: std::delay, config: {ms: 5000}, timeout_ms: 20, retry: {max_attempts: 2}}
edges:
  - {from: t, to: nap}
)", "{}");
  EXPECT_EQ(r.outcome.status, flows::trace_status::failed);
  EXPECT_EQ(r.outcome.error_node, "nap");
  EXPECT_EQ(r.outcome.error_code, "node_timeout");
  EXPECT_EQ(r.outcome.error_message, "node timed out after 20 ms");
  EXPECT_LT(r.took_ms, 1000u);
}

TEST(executor, a_timed_out_attempt_is_retried_after_the_backoff) {
  // Each attempt gets a fresh 50 ms deadline: 3 attempts and 2 backoffs take at
  // least 350 ms (it used to give up after the first timeout, at ~50 ms).
  auto r = run(R"(
name: patient
triggers: [{id: t, type: manual}]
nodes:
  nap: {type: std::delay, config: {ms: 5000}, timeout_ms: 50, retry: {max_attempts: 3, backoff_ms: 100}}
  handler: {type: std::log}
edges:
  - {from: t, to: nap}
  - {from: nap.error, to: handler}
)", "{}");
  EXPECT_EQ(r.outcome.status, flows::trace_status::completed) << r.outcome.error_message;
  EXPECT_EQ(out_json(r), R"({"error":"node_timeout","message":"node timed out after 50 ms","node":"nap"})");
  EXPECT_GE(r.took_ms, 350u);
  EXPECT_LT(r.took_ms, 3000u);
}

TEST(executor, the_trace_timeout_cuts_a_backoff_short) {
  auto r = run(R"(
name: impatient
triggers: [{id: t, type: manual}]
nodes:
  nap: {type: std::delay, config: {ms: 5000}, timeout_ms: 20, retry: {max_attempts: 3, backoff_ms: 60000}}
edges:
  - {from: t, to: nap}
settings: {execution_timeout_ms: 150}
)", "{}");
  EXPECT_EQ(r.outcome.status, flows::trace_status::timed_out);
  EXPECT_EQ(r.outcome.error_code, "timeout");
  EXPECT_EQ(r.rec.last["nap"], flows::node_status::failed);
  EXPECT_GE(r.took_ms, 150u);
  EXPECT_LT(r.took_ms, 2000u);
}

// A trace input that std::aggregate takes over a millisecond to count.
std::string big_items() {
  std::string in = R"({"items":[)";
  for (int i = 0; i < 500'000; ++i) in += (i ? ",1" : "1");
  return in + "]}";
}

TEST(executor, a_synchronous_node_slower_than_its_timeout_times_out) {
  // Inline nodes cannot be interrupted; one that ran past its timeout is timed
  // out after the fact, through the inline path (no backoff) and the coroutine
  // path (with backoff) alike.
  std::string flow = R"(
name: slow_sync
triggers: [{id: t, type: manual}]
nodes:
  sum: {type: std::aggregate, config: {operation: count, source: '$.items[*]'}TIMEOUT}
  total: {type: std::map, config: {mappings: [{from: result, to: n}]}}
  handler: {type: std::log}
edges:
  - {from: t, to: sum}
  - {from: sum, to: total}
  - {from: sum.error, to: handler}
)";
  auto with = [&](const std::string& extra) { return std::string(flow).replace(flow.find("TIMEOUT"), 7, extra); };
  std::string input = big_items();
  auto fast_enough = run(with(""), input);
  EXPECT_EQ(out_json(fast_enough), R"({"n":500000})") << fast_enough.outcome.error_message;
  ASSERT_GT(fast_enough.rec.took_ns["sum"], 1'000'000u) << "the test needs a node that runs over 1 ms";
  for (const char* extra : {", timeout_ms: 1", ", timeout_ms: 1, retry: {max_attempts: 2, backoff_ms: 5}"}) {
    auto r = run(with(extra), input);
    EXPECT_EQ(r.outcome.status, flows::trace_status::completed) << extra;
    EXPECT_EQ(r.rec.last["total"], flows::node_status::skipped) << extra;
    EXPECT_EQ(out_json(r), R"({"error":"node_timeout","message":"node timed out after 1 ms","node":"sum"})") << extra;
  }
}

TEST(executor, json_dynamic_merge_combines_every_branch_joined_into_it) {
  // Two live branches and a dead one (the switch's false port) join into a plain
  // node: merge sees both live outputs in arrival order, so the later k wins.
  std::string flow = R"(
name: joined
triggers: [{id: t, type: manual}]
nodes:
  check: {type: std::switch, config: {condition: {type: exists, field: x}}}
  left_wait: {type: std::delay, config: {ms: LEFT}}
  left: {type: std::map, config: {mappings: [{from: x, to: lx}, {from: none, to: k, default: l}]}}
  right_wait: {type: std::delay, config: {ms: RIGHT}}
  right: {type: std::map, config: {mappings: [{from: y, to: ry}, {from: none, to: k, default: r}]}}
  unused: {type: std::map, config: {mappings: [{from: x, to: dead}]}}
  both: {type: std::json_dynamic, config: {operation: merge}}
edges:
  - {from: t, to: check}
  - {from: check.true, to: left_wait}
  - {from: left_wait, to: left}
  - {from: check.true, to: right_wait}
  - {from: right_wait, to: right}
  - {from: check.false, to: unused}
  - {from: left, to: both}
  - {from: right, to: both}
  - {from: unused, to: both}
)";
  auto timed = [&](const char* left_ms, const char* right_ms) {
    std::string f = flow;
    f.replace(f.find("LEFT"), 4, left_ms);
    f.replace(f.find("RIGHT"), 5, right_ms);
    return f;
  };
  auto right_last = run(timed("1", "60"), R"({"x":1,"y":2})");
  EXPECT_EQ(right_last.outcome.status, flows::trace_status::completed) << right_last.outcome.error_message;
  EXPECT_EQ(right_last.rec.last["unused"], flows::node_status::skipped);
  EXPECT_EQ(out_json(right_last), R"({"lx":1,"k":"r","ry":2})");
  auto left_last = run(timed("60", "1"), R"({"x":1,"y":2})");
  EXPECT_EQ(out_json(left_last), R"({"ry":2,"k":"l","lx":1})");
}

TEST(executor, max_concurrent_nodes_limits_parallel_work) {
  std::string flow = R"(
name: limited
triggers: [{id: t, type: manual}]
nodes:
  a: {type: std::delay, config: {ms: 40}}
  b: {type: std::delay, config: {ms: 40}}
  c: {type: std::delay, config: {ms: 40}}
edges:
  - {from: t, to: a}
  - {from: t, to: b}
  - {from: t, to: c}
settings: {max_concurrent_nodes: LIMIT}
)";
  auto one = run(std::string(flow).replace(flow.find("LIMIT"), 5, "1"), "{}");
  auto three = run(std::string(flow).replace(flow.find("LIMIT"), 5, "3"), "{}");
  EXPECT_EQ(one.outcome.status, flows::trace_status::completed);
  EXPECT_EQ(three.outcome.status, flows::trace_status::completed);
  EXPECT_GE(one.took_ms, 120u);
  EXPECT_LT(three.took_ms, 110u);
  EXPECT_EQ(core::to_json(three.outcome.output.ref()), R"({"a":{},"b":{},"c":{}})");
}

TEST(executor, dead_paths_after_a_switch_and_a_merge_that_waits_only_for_the_live_branch) {
  std::string flow = R"(
name: dpe
triggers: [{id: t, type: manual}]
nodes:
  check: {type: std::switch, config: {condition: {type: greater_than, field: score, value: 0.5}}}
  high: {type: std::log, config: {message: "high"}}
  high_more: {type: std::log}
  low: {type: std::log, config: {message: "low"}}
  join: {type: std::merge}
edges:
  - {from: t, to: check}
  - {from: check.true, to: high}
  - {from: high, to: high_more}
  - {from: check.false, to: low}
  - {from: high_more, to: join}
  - {from: low, to: join}
)";
  auto hi = run(flow, R"({"score":0.9})");
  EXPECT_EQ(hi.outcome.status, flows::trace_status::completed);
  EXPECT_EQ(hi.rec.last["low"], flows::node_status::skipped);
  EXPECT_EQ(hi.rec.last["high_more"], flows::node_status::completed);
  EXPECT_EQ(out_json(hi), R"({"high_more":{"score":0.9}})");
  EXPECT_EQ(hi.rec.runs.count("low"), 0u);  // never started
  auto lo = run(flow, R"({"score":0.1})");
  EXPECT_EQ(lo.rec.last["high"], flows::node_status::skipped);
  EXPECT_EQ(lo.rec.last["high_more"], flows::node_status::skipped);  // dead downstream too
  EXPECT_EQ(out_json(lo), R"({"low":{"score":0.1}})");
}

TEST(executor, nested_switches_skip_whole_subtrees) {
  std::string flow = R"(
name: nested
triggers: [{id: t, type: manual}]
nodes:
  outer: {type: std::switch, config: {condition: {type: equals, field: kind, value: a}}}
  inner: {type: std::switch, config: {expression: "${input.n} > 10"}}
  a_big: {type: std::log}
  a_small: {type: std::log}
  not_a: {type: std::log}
  end: {type: std::merge}
edges:
  - {from: t, to: outer}
  - {from: outer.true, to: inner}
  - {from: outer.false, to: not_a}
  - {from: inner.true, to: a_big}
  - {from: inner.false, to: a_small}
  - {from: a_big, to: end}
  - {from: a_small, to: end}
  - {from: not_a, to: end}
)";
  auto big = run(flow, R"({"kind":"a","n":50})");
  EXPECT_EQ(out_json(big), R"({"a_big":{"kind":"a","n":50}})");
  EXPECT_EQ(big.rec.last["a_small"], flows::node_status::skipped);
  EXPECT_EQ(big.rec.last["not_a"], flows::node_status::skipped);
  auto other = run(flow, R"({"kind":"b","n":50})");
  EXPECT_EQ(out_json(other), R"({"not_a":{"kind":"b","n":50}})");
  EXPECT_EQ(other.rec.last["inner"], flows::node_status::skipped);
  EXPECT_EQ(other.rec.last["a_big"], flows::node_status::skipped);
  EXPECT_EQ(other.rec.last["a_small"], flows::node_status::skipped);
  EXPECT_EQ(other.rec.runs["end"], 1);
}

TEST(executor, loop_until_expression) {
  auto r = run(R"(
name: looping
triggers: [{id: t, type: manual}]
nodes:
  again: {type: std::loop, config: {max_iterations: 10, until_expression: "${body.stop} == true"}}
  body: {type: std::log}
edges:
  - {from: t, to: again}
  - {from: again.continue, to: body}
  - {from: body, to: again}
)", R"({"stop":true})");
  EXPECT_EQ(r.outcome.status, flows::trace_status::completed) << r.outcome.error_message;
  EXPECT_EQ(r.rec.runs["body"], 1);
}

}  // namespace
