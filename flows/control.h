#pragma once
// The control plane (docs/architecture.md): the one owner of pipeline changes,
// on shard 0, as Redpanda's controller. Deploys, updates, deletes and state
// changes run one at a time in the order they reached shard 0. A deploy is
// validated and compiled once, here; the change is published to the
// pipeline_store (durable, with the pipeline's next revision and the change's
// place in the control log); then the compiled flow is installed on every
// shard's engine, in that order, before the caller hears back. Every shard thus
// sees the same sequence of versions, and two concurrent deploys of one pipeline
// never interleave: the later one wins everywhere, or is refused (conflict) when
// its caller named the revision it expected to replace.
//
// Lives on shard 0: call every method there (http sends them with submit_to).

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/dispatch.h"
#include "flows/engine.h"
#include "io/fifo_lock.h"
#include "io/gate.h"
#include "io/sharded.h"

namespace xerv::flows {

inline constexpr unsigned control_shard = 0;

struct deploy_request {
  std::string yaml;
  std::string update;              // PUT: the pipeline that must exist and the flow's name; empty for POST
  uint64_t expected_revision = 0;  // > 0: refuse (conflict) unless the pipeline is at it (core::revision_absent: unless new)
  core::pipeline_state initial = core::pipeline_state::running;  // a new pipeline's state
  std::vector<std::string> disabled;  // a new pipeline's triggers switched off (an update keeps its own)
  bool persist = true;             // false: from XERV_PIPELINES_DIR at start
};

struct control_reply {
  enum class outcome { created, updated, deleted, changed, invalid, not_found, conflict, unavailable };
  outcome result = outcome::unavailable;
  std::string name;
  std::string message;            // invalid, conflict, unavailable: why
  std::vector<flow_error> errors; // invalid: every problem of the flow
  uint64_t revision = 0;
  core::pipeline_state state = core::pipeline_state::running;  // after the change, over every shard
  // deploy: what this change installed. A reply describes its own change even
  // when a later deploy has replaced it by the time the reply is written.
  std::shared_ptr<const compiled_flow> flow;
  uint64_t deployed_ms = 0;

  bool ok() const { return result <= outcome::changed; }
};

// A shard's own handle on a flow compiled on the control shard: running traces
// copy and drop it without touching the count the other shards share (one
// cache line written by every shard for every trace otherwise). Call on the
// shard that will use it.
std::shared_ptr<const compiled_flow> local_handle(const std::shared_ptr<const compiled_flow>& shared);

// Also the circuit breakers' decider (flows/circuit.h): shards report
// failures and half-open trials here; the decision is applied on every shard
// before the report completes.
class control_plane final : public circuit_reporter, public admission_router {
 public:
  control_plane(core::pipeline_store& store, io::sharded<engine>& engines) : _store(store), _engines(engines) {}
  control_plane(const control_plane&) = delete;
  control_plane& operator=(const control_plane&) = delete;

  io::task<control_reply> deploy(deploy_request r);
  io::task<control_reply> remove(std::string name);
  io::task<control_reply> set_state(std::string name, core::pipeline_state target);
  // Switches trigger `trigger` of pipeline `name` on or off (SPEC §3), on
  // every shard, durably. not_found names what is missing in `message`.
  io::task<control_reply> set_trigger(std::string name, std::string trigger, bool enabled);
  // At start, before the API listens: installs what the store holds (already
  // stored, so not published again); invalid stored flows are reported.
  io::task<std::vector<std::string>> restore();
  // After restore(): applies the changes other nodes publish to a shared store
  // (the Raft, Redis and NATS backends), in seq order, skipping any change
  // older than what this node applied for that pipeline (its own among them).
  void start_following();
  io::task<void> stop_following();
  // Any shard.
  io::task<void> report(circuit_event e) override;
  io::task<enqueued> admit_keyed(std::string pipeline, std::string trigger, core::value input,
                                 std::string key) override;

 private:
  io::task<void> decide_circuit(circuit_event e);
  io::task<void> follow();
  // Installs a published change on every shard and answers with the state the
  // shards are in afterwards.
  io::task<core::pipeline_state> apply(core::pipeline_change c, std::shared_ptr<const compiled_flow> flow,
                                       uint64_t deployed_ms);

  core::pipeline_store& _store;
  io::sharded<engine>& _engines;
  io::fifo_lock _lock;
  io::fifo_lock _circuit_lock;  // one decision at a time, not behind a deploy's compile
  std::unique_ptr<core::pipeline_watch> _watch;  // opened before the load, so no change falls between
  std::map<std::string, uint64_t, std::less<>> _applied_seq;  // per pipeline (kept after a delete)
  io::cancel_source _stop_following;
  io::gate _following;
};

}  // namespace xerv::flows
