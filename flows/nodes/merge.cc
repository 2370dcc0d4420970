// std::merge: joins its active inputs into an object keyed by source node. The
// executor decides when it is ready (wait_all: every input resolved;
// first_arrival: the first active input; wait_n: wait_count active inputs).

#include "flows/nodes/all.h"
#include "flows/nodes/structural.h"

namespace xerv::flows::nodes {
namespace {

std::unique_ptr<node_impl> compile(node_compiler& c) {
  auto impl = std::make_unique<merge_impl>();
  auto s = c.string("strategy", false, "wait_all");
  if (!s) return nullptr;
  if (*s == "wait_all") impl->strategy = merge_strategy::wait_all;
  else if (*s == "first_arrival") impl->strategy = merge_strategy::first_arrival;
  else if (*s == "wait_n") impl->strategy = merge_strategy::wait_n;
  else c.error(c.config()["strategy"], "config.strategy must be wait_all, first_arrival or wait_n");
  if (impl->strategy == merge_strategy::wait_n) {
    if (auto n = c.integer("wait_count", true, 0, 1, 10'000)) impl->wait_count = uint32_t(*n);
  }
  return c.failed() ? nullptr : std::move(impl);
}

}  // namespace

node_type merge_node() { return {"std::merge", {"out"}, node_shape::merge, compile}; }

}  // namespace xerv::flows::nodes
