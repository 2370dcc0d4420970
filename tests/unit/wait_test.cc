// flows/executor with std::wait: a trace parks at its first wait node, runs the
// rest of what it can, ends its run suspended with the hook id and metadata; a
// run with the wait node replayed (the resume's decision as its port) goes on
// down that port. The compile rules of std::wait.

#include <gtest/gtest.h>

#include <map>

#include "flows/executor.h"
#include "flows/nodes/structural.h"
#include "tests/run_on.h"

using namespace xerv;

namespace {

struct seen : flows::trace_observer {
  const flows::compiled_flow* flow = nullptr;
  std::map<std::string, int> started;
  std::map<std::string, flows::node_status> finished;
  void node_started(uint32_t v) override { ++started[flow->vertices[v].name]; }
  void node_finished(uint32_t v, flows::node_status s, uint16_t, core::value_ref, uint64_t) override {
    finished[flow->vertices[v].name] = s;
  }
  void node_log(uint32_t, io::log_level, std::string_view) override {}
};

flows::compile_result compile(const std::string& yaml) { return flows::compile_flow(yaml); }

std::unique_ptr<flows::compiled_flow> compiled(const std::string& yaml) {
  auto r = compile(yaml);
  if (auto* errs = std::get_if<std::vector<flows::flow_error>>(&r)) {
    ADD_FAILURE() << flows::format_errors(*errs, "flow.yaml");
    return nullptr;
  }
  return std::move(std::get<std::unique_ptr<flows::compiled_flow>>(r));
}

io::task<int> run_one(const flows::compiled_flow* f, std::string input, const flows::replay_map* replay, seen* obs,
                      flows::trace_outcome* out) {
  flows::execution_options o;
  o.replay = replay;
  auto parsed = core::parse_json(input);
  *out = co_await flows::execute_trace(*f, std::get<core::value>(std::move(parsed)), "trace-1",
                                       f->triggers[0].vertex, obs, o);
  co_return 0;
}

flows::trace_outcome run(const flows::compiled_flow& f, const std::string& input, seen& obs,
                         const flows::replay_map* replay = nullptr) {
  obs.flow = &f;
  flows::trace_outcome out;
  EXPECT_EQ(xerv::testing::run_on(1, run_one(&f, input, replay, &obs, &out)), 0);
  return out;
}

const char* k_approval = R"(name: approval
version: "1"
triggers:
  - {id: hook, type: webhook, params: {path: /approve, method: POST}}
nodes:
  prep: {type: std::log, config: {message: "prep"}}
  side: {type: std::log, config: {message: "side"}}
  gate:
    type: std::wait
    config:
      hook_id: "approve-${trace_id}"
      timeout_secs: 60
      timeout_action: escalate
      metadata_fields: [amount, $.customer.name, missing]
  ok: {type: std::log, config: {message: "ok"}}
  no: {type: std::log, config: {message: "no"}}
  esc: {type: std::log, config: {message: "esc"}}
edges:
  - {from: hook, to: prep}
  - {from: hook, to: side}
  - {from: prep, to: gate}
  - {from: gate.out, to: ok}
  - {from: gate.rejected, to: no}
  - {from: gate.escalated, to: esc}
)";

TEST(wait, a_trace_parks_at_the_wait_node_with_its_hook_and_metadata) {
  auto f = compiled(k_approval);
  ASSERT_TRUE(f);
  seen obs;
  auto out = run(*f, R"({"amount":120,"customer":{"name":"ada","tier":3},"other":1})", obs);
  EXPECT_EQ(out.status, flows::trace_status::suspended);
  ASSERT_TRUE(out.suspended);
  EXPECT_EQ(f->vertices[out.suspended->vertex].name, "gate");
  EXPECT_EQ(out.suspended->hook_id, "approve-trace-1");
  EXPECT_EQ(core::to_json(out.suspended->metadata.ref()), R"({"amount":120,"name":"ada"})");
  EXPECT_EQ(out.suspended->timeout_ms, 60'000u);
  EXPECT_EQ(out.suspended->timeout_action, uint8_t(flows::nodes::wait_decision::escalate));
  // The rest of the trace ran; nothing after the wait did, and the wait node
  // itself is neither started nor finished for the observer (the engine shows it).
  EXPECT_EQ(obs.finished["prep"], flows::node_status::completed);
  EXPECT_EQ(obs.finished["side"], flows::node_status::completed);
  EXPECT_EQ(obs.started.count("gate"), 0u);
  EXPECT_EQ(obs.finished.count("gate"), 0u);
  EXPECT_EQ(obs.started.count("ok") + obs.started.count("no") + obs.started.count("esc"), 0u);
}

TEST(wait, the_resumed_run_goes_down_the_decisions_port_with_response_data_as_output) {
  auto f = compiled(k_approval);
  ASSERT_TRUE(f);
  for (auto [port, taken] : {std::pair<uint16_t, const char*>{0, "ok"}, {1, "no"}, {2, "esc"}}) {
    SCOPED_TRACE(taken);
    flows::replay_map replay;
    auto done = [](const char* json) { return flows::replayed_node{0, std::get<core::value>(core::parse_json(json))}; };
    replay[*f->find("prep")] = done(R"({"amount":120})");
    replay[*f->find("side")] = done(R"({"amount":120})");
    replay[*f->find("gate")] = flows::replayed_node{port, std::get<core::value>(core::parse_json(R"({"by":"bob"})"))};
    seen obs;
    auto out = run(*f, R"({"amount":120})", obs, &replay);
    EXPECT_EQ(out.status, flows::trace_status::completed);
    EXPECT_FALSE(out.suspended);
    // The sinks' outputs: side's, and the branch's (response_data passed on).
    EXPECT_EQ(core::to_json(out.output.ref()), R"({"side":{"amount":120},")" + std::string(taken) + R"(":{"by":"bob"}})");
    EXPECT_EQ(obs.finished[taken], flows::node_status::completed);
    for (const char* other : {"ok", "no", "esc"})
      if (std::string(other) != taken) {
        EXPECT_EQ(obs.finished[other], flows::node_status::skipped) << other;
      }
    EXPECT_EQ(obs.started.count("prep"), 0u);  // replayed, not run again
  }
}

TEST(wait, the_hook_id_defaults_to_the_trace_id_and_a_second_wait_waits_its_turn) {
  auto f = compiled(R"(name: two
version: "1"
triggers:
  - {id: hook, type: webhook, params: {path: /two, method: POST}}
nodes:
  first: {type: std::wait}
  second: {type: std::wait, config: {hook_id: "second"}}
edges:
  - {from: hook, to: first}
  - {from: hook, to: second}
)");
  ASSERT_TRUE(f);
  seen obs;
  auto out = run(*f, "{}", obs);
  ASSERT_EQ(out.status, flows::trace_status::suspended);
  EXPECT_EQ(f->vertices[out.suspended->vertex].name, "first");
  EXPECT_EQ(out.suspended->hook_id, "trace-1");
  EXPECT_EQ(out.suspended->timeout_ms, 0u);  // no expiry
  EXPECT_EQ(out.suspended->timeout_action, uint8_t(flows::nodes::wait_decision::reject));
  // After the first is resumed, the second parks in turn.
  flows::replay_map replay;
  replay[*f->find("first")] = flows::replayed_node{0, core::value()};
  seen obs2;
  auto again = run(*f, "{}", obs2, &replay);
  ASSERT_EQ(again.status, flows::trace_status::suspended);
  EXPECT_EQ(again.suspended->hook_id, "second");
}

TEST(wait, a_failure_elsewhere_wins_over_the_suspension) {
  auto f = compiled(R"(name: fails
version: "1"
triggers:
  - {id: hook, type: webhook, params: {path: /f, method: POST}}
nodes:
  gate: {type: std::wait}
  each: {type: std::split, config: {field: $.items}}
  item: {type: std::log, config: {message: "item"}}
edges:
  - {from: hook, to: gate}
  - {from: hook, to: each}
  - {from: each.out, to: item}
)");
  ASSERT_TRUE(f);
  seen obs;
  auto out = run(*f, R"({"items":"not a list"})", obs);
  EXPECT_EQ(out.status, flows::trace_status::failed);
  EXPECT_FALSE(out.suspended);
}

std::string errors_of(const std::string& yaml) {
  auto r = compile(yaml);
  auto* errs = std::get_if<std::vector<flows::flow_error>>(&r);
  return errs ? flows::format_errors(*errs, "f.yaml") : "";
}

TEST(wait, compile_rules) {
  const char* head = R"(name: w
version: "1"
triggers:
  - {id: hook, type: webhook, params: {path: /w, method: POST}}
nodes:
)";
  std::string plain = std::string(head) + "  gate: {type: std::wait}\nedges:\n  - {from: hook, to: gate}\n";
  EXPECT_EQ(errors_of(plain), "");
  EXPECT_TRUE(std::get<std::unique_ptr<flows::compiled_flow>>(compile(plain))->has_wait);
  EXPECT_NE(errors_of(std::string(head) + R"(  gate: {type: std::wait, config: {timeout_action: later}}
edges:
  - {from: hook, to: gate}
)").find("timeout_action must be approve, reject or escalate"),
            std::string::npos);
  EXPECT_NE(errors_of(std::string(head) + R"(  gate: {type: std::wait, config: {timeout_secs: -1}}
edges:
  - {from: hook, to: gate}
)").find("timeout_secs must be an integer"),
            std::string::npos);
  EXPECT_NE(errors_of(std::string(head) + R"(  gate: {type: std::wait, config: {metadata_fields: amount}}
edges:
  - {from: hook, to: gate}
)").find("metadata_fields must be a list"),
            std::string::npos);
  EXPECT_NE(errors_of(std::string(head) + R"(  each: {type: std::split, config: {field: $.items}}
  gate: {type: std::wait}
edges:
  - {from: hook, to: each}
  - {from: each.out, to: gate}
)").find("std::wait cannot run inside the body of 'each'"),
            std::string::npos);
}

}  // namespace
