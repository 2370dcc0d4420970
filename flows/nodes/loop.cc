// std::loop: runs its body (the nodes between `continue` and the back edge into
// the loop) until the exit condition holds or max_iterations is reached, then emits
// the last body output on `exit`. Each iteration's body gets the previous output.

#include "flows/expr.h"
#include "flows/nodes/all.h"
#include "flows/nodes/structural.h"

namespace xerv::flows::nodes {
namespace {

std::unique_ptr<node_impl> compile(node_compiler& c) {
  auto impl = std::make_unique<loop_impl>();
  if (auto n = c.integer("max_iterations", false, 100, 1, 1'000'000)) impl->max_iterations = uint32_t(*n);
  if (YAML::Node u = c.config()["until_true"]; u) impl->until_true = c.path(u);
  if (YAML::Node e = c.config()["until_expression"]; e) impl->until_expression = compile_expression(c, e, "until_expression");
  return c.failed() ? nullptr : std::move(impl);
}

}  // namespace

node_type loop_node() { return {"std::loop", {"continue", "exit"}, node_shape::loop, compile}; }

}  // namespace xerv::flows::nodes
