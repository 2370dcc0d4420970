// std::enqueue: sends a message to a named queue (its consumer pipeline's queue
// trigger, SPEC §3): `payload` (a field path into the input; default: the whole
// input) becomes the input of one trace of the consumer, admitted durably
// before this node completes. Once per node of the trace: a retry, or a re-run
// after a crash, finds the message it sent (an idempotency key of the trace and
// the node). Output on `out`: {"queue", "trace_id"}.

#include "flows/nodes/all.h"
#include "io/ops.h"

namespace xerv::flows::nodes {
namespace {

struct enqueue_impl : node_impl {
  std::string queue;
  std::optional<field_path> payload;
  bool is_async() const override { return true; }
  io::task<node_result> run_async(core::value input, node_env& env) const override {
    core::value message = std::move(input);
    if (payload) {
      auto v = payload->resolve(message.ref());
      if (!v) co_return fail("std::enqueue: the input has no " + payload->text(), error_codes::invalid_input);
      message = core::value(std::string(v->bytes()));
    }
    auto sending = env.enqueue(queue, std::move(message));
    enqueued r = co_await std::move(sending);
    if (r.stopping) {
      // A shutdown drains the running traces: wait for it to stop this one,
      // which then resumes after the restart and sends the message then,
      // rather than fail the trace for good.
      auto stopped = co_await io::sleep_for(std::chrono::hours(24), env.cancel());
      (void)stopped;
    }
    if (!r.error.empty()) co_return fail("std::enqueue to '" + queue + "': " + r.error, r.code);
    core::value_builder b;
    b.begin_object();
    b.key("queue");
    b.add_string(queue);
    b.key("trace_id");
    b.add_string(r.trace_id);
    b.end();
    co_return emit(0, b.finish());
  }
};

std::unique_ptr<node_impl> compile(node_compiler& c) {
  auto impl = std::make_unique<enqueue_impl>();
  if (auto q = c.string("queue", true)) impl->queue = *q;
  if (YAML::Node p = c.config()["payload"]; p) impl->payload = c.path(p);
  return c.failed() ? nullptr : std::move(impl);
}

}  // namespace

node_type enqueue_node() { return {"std::enqueue", {"out"}, node_shape::plain, compile}; }

}  // namespace xerv::flows::nodes
