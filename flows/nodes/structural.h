#pragma once
// Configs of the node types the executor runs itself (merge, split, loop, wait): their
// node_impl only carries the compiled config.

#include <cstdint>
#include <optional>

#include "flows/expr.h"
#include "flows/node.h"
#include "flows/path.h"

namespace xerv::flows::nodes {

enum class merge_strategy { wait_all, first_arrival, wait_n };

struct merge_impl : node_impl {
  merge_strategy strategy = merge_strategy::wait_all;
  uint32_t wait_count = 0;
  // The executor hands it the joined object (keyed by source node) as input.
  node_result run(core::value_ref input, node_env&) const override { return emit_ref(0, input); }
};

enum class split_mode { parallel, sequential, batched };

struct split_impl : node_impl {
  field_path field;
  split_mode mode = split_mode::parallel;
  uint32_t batch_size = 10;
  uint32_t max_parallel = 16;  // items in flight in parallel mode
  uint32_t max_items = 100'000;
};

struct loop_impl : node_impl {
  uint32_t max_iterations = 100;
  std::optional<field_path> until_true;  // stop when the body output has this field true
  // until_expression: evaluated on the body output (flows/expr.h), when set.
  std::shared_ptr<const flows::expression> until_expression;
};

// What decides a std::wait: a resume's decision, or timeout_action at expiry.
// The value is the node's port (out, rejected, escalated).
enum class wait_decision : uint8_t { approve = 0, reject = 1, escalate = 2 };
const char* to_string(wait_decision d);
std::optional<wait_decision> parse_wait_decision(std::string_view s);

struct wait_impl : node_impl {
  std::optional<template_string> hook_id;  // absent: the trace id
  uint64_t timeout_secs = 0;               // 0: no expiry
  wait_decision timeout_action = wait_decision::reject;
  std::vector<std::pair<std::string, field_path>> metadata_fields;  // {key in metadata, path in the input}
};

}  // namespace xerv::flows::nodes
