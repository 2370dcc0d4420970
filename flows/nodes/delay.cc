// std::delay: waits `ms` on the shard's timers (never a sleep), then passes its
// input through on `out`.

#include "flows/nodes/all.h"
#include "io/ops.h"

namespace xerv::flows::nodes {
namespace {

struct delay_impl : node_impl {
  uint64_t ms = 0;
  bool is_async() const override { return true; }
  io::task<node_result> run_async(core::value input, node_env& env) const override {
    auto r = co_await io::sleep_for(std::chrono::milliseconds(ms), env.cancel());
    if (!r) co_return fail("delay interrupted: " + r.error().message());
    co_return emit(0, std::move(input));
  }
};

std::unique_ptr<node_impl> compile(node_compiler& c) {
  auto impl = std::make_unique<delay_impl>();
  if (auto ms = c.integer("ms", true, 0, 0, 86'400'000)) impl->ms = uint64_t(*ms);
  return c.failed() ? nullptr : std::move(impl);
}

}  // namespace

node_type delay_node() { return {"std::delay", {"out"}, node_shape::plain, compile}; }

}  // namespace xerv::flows::nodes
