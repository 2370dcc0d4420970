#pragma once
// xerv's settings (SPEC §9 and the HTTP server's own). Loaded once in main() before
// any shard starts and only read afterwards.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/config.h"
#include "io/log.h"

namespace xerv::app {

// A member of the Raft group: XERV_DISPATCH_RAFT_PEERS="2:10.0.0.2:5000,3:[fd00::3]:5000".
struct raft_peer {
  uint64_t id = 0;
  std::string host;
  uint16_t port = 0;
};
// "ID:HOST:PORT[,…]"; an error names the bad item.
std::optional<std::string> parse_raft_peers(std::string_view text, std::vector<raft_peer>& out);

struct config {
  std::string api_host;
  uint64_t api_port = 8080;
  std::string data_dir;
  uint64_t shards = 0;  // 0: one per CPU
  bool metrics_enabled = true;
  uint64_t metrics_port = 0;  // 0: /metrics only on the API port
  io::log_format log_format = io::log_format::pretty;
  io::log_level log_level = io::log_level::info;
  std::string wal_sync;
  uint64_t wal_segment_bytes = 64ull << 20;
  uint64_t wal_batch_ms = 10;
  bool wal_skip_corrupt = false;
  uint64_t arena_bytes = 64ull << 20;
  uint64_t drain_timeout_ms = 30'000;
  std::string pipelines_dir;
  uint64_t max_body_bytes = 1 << 20;
  uint64_t header_timeout_ms = 10'000;
  uint64_t idle_timeout_ms = 60'000;
  uint64_t connections_max = 10'000;
  uint64_t shutdown_timeout_ms = 30'000;
  bool debug_routes = false;
  int64_t debug_clock_offset_ms = 0;
  uint64_t trace_retention_ms = 3'600'000;
  uint64_t traces_kept_max = 10'000;
  uint64_t circuit_open_ms = 30'000;
  uint64_t circuit_window_ms = 60'000;
  uint64_t idempotency_ttl_ms = 24 * 3'600'000;
  uint64_t idempotency_keys_max = 100'000;
  uint64_t pending_max = 10'000;
  std::string dispatch_backend = "memory";
  uint64_t dispatch_lease_ms = 5000;
  uint64_t raft_node_id = 1;
  std::string raft_listen_host = "127.0.0.1";
  uint64_t raft_listen_port = 5000;
  std::vector<raft_peer> raft_peers;
  bool raft_join = false;
  uint64_t raft_election_ms = 1000;
  uint64_t raft_heartbeat_ms = 100;
  uint64_t raft_snapshot_entries = 10'000;
};

// Declares every setting, writing into `cfg`.
core::settings declare_settings(config& cfg);

// Loads flags > environment > --config file > defaults. On error returns the
// one-line message (the caller exits with code 2).
std::optional<std::string> load_config(config& cfg, const std::vector<std::string>& args,
                                       std::vector<std::string>& rest);

}  // namespace xerv::app
