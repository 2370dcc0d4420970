#pragma once
// Test fakes for flows: a trace that serves selectors from canned node outputs, a
// node_env around it, and a helper that compiles one node's YAML config.

#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/json.h"
#include "flows/node.h"

namespace xerv::testing {

inline core::value json(std::string_view text) {
  auto r = core::parse_json(text);
  if (auto* e = std::get_if<core::json_error>(&r)) {
    ADD_FAILURE() << "bad JSON in test at " << e->offset << ": " << e->message << " in " << text;
    return core::value();
  }
  return std::get<core::value>(std::move(r));
}

// Node names map to their position in `names`; outputs are set per name.
struct fake_trace : flows::selector_source {
  std::vector<std::string> names{"a", "b", "c", "x", "fraud"};
  std::map<uint32_t, core::value> outputs;
  core::value input = json("{}");
  core::value config = json("{}");
  std::string id = "trace-1";

  flows::node_lookup lookup() const {
    return [this](std::string_view n) -> std::optional<uint32_t> {
      for (size_t i = 0; i < names.size(); ++i)
        if (names[i] == n) return uint32_t(i);
      return std::nullopt;
    };
  }
  void set(std::string_view node, std::string_view text) {
    auto idx = lookup()(node);
    ASSERT_TRUE(idx.has_value()) << node;
    outputs[*idx] = json(text);
  }

  std::optional<core::value_ref> node_output(uint32_t node) const override {
    auto it = outputs.find(node);
    if (it == outputs.end()) return std::nullopt;
    return it->second.ref();
  }
  core::value_ref trace_input() const override { return input.ref(); }
  core::value_ref pipeline_config() const override { return config.ref(); }
  std::string_view trace_id() const override { return id; }
};

struct fake_env : flows::node_env {
  explicit fake_env(const fake_trace& t) : trace(t) {}
  const fake_trace& trace;
  io::cancel_source cancel_src;
  std::vector<std::string> logs;

  const flows::selector_source& selectors() const override { return trace; }
  void log(io::log_level, std::string_view message) override { logs.emplace_back(message); }
  std::string_view node_name() const override { return "n"; }
  io::cancel_source* cancel() override { return &cancel_src; }
};

struct compiled_node {
  std::unique_ptr<flows::node_impl> impl;
  std::vector<flows::flow_error> errors;

  std::string error_text() const {
    std::string out;
    for (const auto& e : errors) out += std::to_string(e.line) + ":" + std::to_string(e.column) + ": " + e.message + "\n";
    return out;
  }
};

// Compiles node "n" of `type` from the YAML text of its config map.
inline compiled_node compile_node(std::string_view type, const std::string& config_yaml, const fake_trace& trace = {}) {
  compiled_node out;
  const flows::node_type* t = flows::find_node_type(type);
  if (!t) {
    ADD_FAILURE() << "no node type " << type;
    return out;
  }
  YAML::Node config = YAML::Load(config_yaml);
  if (!config || config.IsNull()) config = YAML::Node(YAML::NodeType::Map);
  flows::node_compiler c(config, config, "n", trace.lookup(), out.errors);
  out.impl = t->compile(c);
  return out;
}

// Runs a synchronous node; returns {port, output JSON} or {-1, failure message}.
inline std::pair<int, std::string> run_node(const flows::node_impl& impl, std::string_view input_json,
                                            const fake_trace& trace = {}) {
  fake_env env(trace);
  core::value in = json(input_json);
  flows::node_result r = impl.run(in.ref(), env);
  if (auto* f = std::get_if<flows::node_failure>(&r)) return {-1, f->message};
  auto& o = std::get<flows::node_output>(r);
  return {o.port, core::to_json(o.value.ref())};
}

}  // namespace xerv::testing
