// std::split: runs the sub-DAG downstream of `out` once per element of an array
// field and emits the per-item results, in item order, on `done`.

#include "flows/nodes/all.h"
#include "flows/nodes/structural.h"

namespace xerv::flows::nodes {
namespace {

std::unique_ptr<node_impl> compile(node_compiler& c) {
  auto impl = std::make_unique<split_impl>();
  YAML::Node f = c.config()["field"];
  if (!f) {
    c.error(c.config(), "config.field is required (the array to split, e.g. $.items)");
    return nullptr;
  }
  if (auto p = c.path(f)) impl->field = std::move(*p);
  auto mode = c.string("mode", false, "parallel");
  if (mode) {
    if (*mode == "parallel") impl->mode = split_mode::parallel;
    else if (*mode == "sequential") impl->mode = split_mode::sequential;
    else if (*mode == "batched") impl->mode = split_mode::batched;
    else c.error(c.config()["mode"], "config.mode must be parallel, sequential or batched");
  }
  if (auto b = c.integer("batch_size", false, 10, 1, 10'000)) impl->batch_size = uint32_t(*b);
  if (auto m = c.integer("max_parallel", false, 16, 1, 10'000)) impl->max_parallel = uint32_t(*m);
  return c.failed() ? nullptr : std::move(impl);
}

}  // namespace

node_type split_node() { return {"std::split", {"out", "done"}, node_shape::split, compile}; }

}  // namespace xerv::flows::nodes
