#pragma once
// Runs one trace of a compiled flow on the calling shard (SPEC §3): readiness,
// dead-path elimination, per-trace max_concurrent_nodes, error ports, retries,
// node and trace timeouts, split and loop bodies, and the trace output. Nothing
// here blocks or locks; async nodes run as coroutines on the same shard.
//
// The observer sees every node start, finish and log line; it is how the trace
// store, the log stream and the write-ahead log learn what happened. Replayed
// nodes (recovery) are not reported again.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "core/arena.h"
#include "core/json.h"
#include "flows/flow.h"
#include "io/task.h"

namespace xerv::flows {

// (Values are journaled: new ones go last.)
enum class trace_status : uint8_t { pending, running, completed, failed, timed_out, suspended };
enum class node_status : uint8_t { pending, running, completed, skipped, failed, suspended };

const char* to_string(trace_status s);
const char* to_string(node_status s);

class trace_observer {
 public:
  virtual ~trace_observer() = default;
  virtual void node_started(uint32_t vertex) = 0;
  // `output` is null for skipped and failed nodes.
  virtual void node_finished(uint32_t vertex, node_status status, uint16_t port, core::value_ref output,
                             uint64_t duration_ns) = 0;
  virtual void node_log(uint32_t vertex, io::log_level level, std::string_view message) = 0;
};

// A top-level node that completed before a restart: it is not run again; its
// recorded port and output drive the rest of the trace.
struct replayed_node {
  uint16_t port = 0;
  core::value output;
};
using replay_map = std::unordered_map<uint32_t, replayed_node>;  // by vertex

// What a trace's nodes may ask of the engine that runs it.
class trace_services {
 public:
  virtual ~trace_services() = default;
  // std::enqueue (node_env::enqueue), with `key` naming the trace and node.
  virtual io::task<enqueued> enqueue(std::string queue, core::value payload, std::string key) = 0;
};

struct execution_options {
  core::arena* arena = nullptr;            // where top-level outputs live (null: heap)
  const replay_map* replay = nullptr;      // recovery: nodes already completed
  io::cancel_source* shutdown = nullptr;   // fires: stop without an outcome (aborted)
  trace_services* services = nullptr;      // null: std::enqueue fails
};

// Where a trace parked (SPEC §5): the first std::wait it reached. Another wait
// node that became ready meanwhile is parked too (node_status::suspended) but
// waits for the run after the resume.
struct suspension {
  uint32_t vertex = no_index;
  std::string hook_id;         // rendered; the trace id when the node names none
  core::value metadata;        // the input fields metadata_fields names
  uint64_t timeout_ms = 0;     // 0: no expiry
  uint8_t timeout_action = 1;  // the port expiry takes (nodes::wait_decision)
};

struct trace_outcome {
  trace_status status = trace_status::completed;
  bool aborted = false;       // stopped by `shutdown`: status means nothing, resume later
  core::value output;
  std::string error_node;     // failed / timed_out: the node that failed, if any
  std::string error_code;     // failed / timed_out: machine-readable (docs/flows.md), e.g. node_failed, timeout
  std::string error_message;
  std::optional<suspension> suspended;  // status suspended: where and why
};

// `flow` must outlive the returned task. `trigger_vertex` is the trigger that fired.
io::task<trace_outcome> execute_trace(const compiled_flow& flow, core::value input, std::string trace_id,
                                      uint32_t trigger_vertex, trace_observer* observer,
                                      execution_options opts = {});

}  // namespace xerv::flows
