#pragma once
// A deployed flow: parsed from YAML, validated (every problem reported with its
// line and column, all at once), and compiled into an immutable structure the
// executor walks by index. The control plane compiles it once and every shard
// runs the same object (read-only; each shard holds it under a reference count
// of its own, flows/control.cc).
//
// Triggers are source vertices with one port ("out"); they share one namespace
// with nodes. Execution happens in regions: the root region holds every node
// outside a split or loop body; the body of a std::split (everything downstream of
// its `out` port) and of a std::loop (everything between its `continue` port and
// the back edge into it) are regions of their own, run once per item or per
// iteration. Every region is acyclic.

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "core/json.h"
#include "flows/cron.h"
#include "flows/node.h"
#include "flows/watch.h"

namespace xerv::flows {

inline constexpr uint32_t no_index = ~uint32_t{0};

struct flow_limits {
  size_t yaml_bytes_max = 1 << 20;
  size_t nodes_max = 1000;
  size_t edges_max = 10000;
  size_t depth_max = 64;
  // A deploy through the API: a filesystem trigger's directories must exist
  // (unless create: true). Not at start, where a directory missing after a
  // reboot puts the trigger in state error instead of stopping xerv.
  bool paths_must_exist = false;
};

struct flow_settings {
  uint32_t max_concurrent_executions = 100;
  uint64_t execution_timeout_ms = 30'000;
  uint64_t node_timeout_ms = 30'000;
  uint32_t max_concurrent_nodes = 16;
  double circuit_breaker_threshold = 0.05;
  bool debug = false;
};

enum class respond_mode { async, sync };

struct trigger_def {
  std::string id;
  std::string type;  // webhook, manual, memory, cron, filesystem, queue
  uint32_t vertex = no_index;
  // webhook
  std::string path;
  std::string method = "POST";
  respond_mode respond = respond_mode::async;
  // cron
  std::shared_ptr<const cron_trigger> cron;
  // filesystem
  std::shared_ptr<const fs_trigger> fs;
  // queue: the queue it consumes, and how many messages may wait in it
  std::string queue;
  uint32_t capacity = 1000;
};

struct retry_policy {
  uint32_t max_attempts = 1;  // counts the first attempt
  uint64_t backoff_ms = 0;
};

struct edge_def {
  uint32_t from = 0;
  uint16_t port = 0;  // index into the source's port list (the last one is "error")
  uint32_t to = 0;
  bool back = false;  // a loop body's edge back into its std::loop
  int line = 0;
};

struct vertex {
  std::string name;
  bool is_trigger = false;
  const node_type* type = nullptr;  // null for triggers
  std::unique_ptr<node_impl> impl;
  std::vector<std::string> ports;  // the type's ports, then "error"; triggers: {"out"}
  retry_policy retry;
  uint64_t timeout_ms = 0;  // 0: the flow's node_timeout_ms
  uint32_t region = 0;      // the region this vertex runs in
  uint32_t local = 0;       // its position in that region's members
  uint32_t body = no_index; // split/loop: the region of its body
  std::vector<uint32_t> in_edges;
  std::vector<std::vector<uint32_t>> out_edges;  // per port
  int line = 0;

  uint16_t error_port() const { return uint16_t(ports.size() - 1); }
  bool has_error_edge() const { return !out_edges[error_port()].empty(); }
};

struct region_def {
  uint32_t owner = no_index;     // split/loop vertex, or no_index for the root
  std::vector<uint32_t> members; // in topological order
  std::vector<uint32_t> entries; // members fed by the owner (split out / loop continue)
  std::vector<uint32_t> sinks;   // members without outgoing edges inside the region
};

struct compiled_flow {
  std::string name;
  std::string version;
  std::string description;
  flow_settings settings;
  core::value config;  // the top-level `config:` block
  std::vector<trigger_def> triggers;
  std::vector<vertex> vertices;
  std::vector<edge_def> edges;
  std::vector<region_def> regions;  // [0] is the root
  std::string source;               // the YAML as deployed
  bool has_wait = false;            // a std::wait node: the engine keeps top-level outputs for its snapshot

  std::optional<uint32_t> find(std::string_view name) const;
  const trigger_def* find_trigger(std::string_view id) const;
};

using compile_result = std::variant<std::unique_ptr<compiled_flow>, std::vector<flow_error>>;

compile_result compile_flow(std::string_view yaml, const flow_limits& limits = {});

// "line:col: message" lines, for the CLI.
std::string format_errors(const std::vector<flow_error>& errors, std::string_view file);

}  // namespace xerv::flows
