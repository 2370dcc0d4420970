#pragma once
// Configs of the node types the executor runs itself (merge, split, loop): their
// node_impl only carries the compiled config.

#include <cstdint>
#include <optional>

#include "flows/expr.h"
#include "flows/node.h"

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

}  // namespace xerv::flows::nodes
