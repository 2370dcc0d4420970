#include "app/config.h"

#include <charconv>
#include <cstdlib>

namespace xerv::app {

std::optional<std::string> parse_raft_peers(std::string_view text, std::vector<raft_peer>& out) {
  while (!text.empty()) {
    size_t comma = text.find(',');
    std::string_view item = text.substr(0, comma);
    text = comma == std::string_view::npos ? std::string_view{} : text.substr(comma + 1);
    auto bad = [&] { return "'" + std::string(item) + "': expected ID:HOST:PORT"; };
    size_t first = item.find(':'), last = item.rfind(':');
    if (first == std::string_view::npos || last == first) return bad();
    raft_peer p;
    std::string_view id = item.substr(0, first), host = item.substr(first + 1, last - first - 1),
                     port = item.substr(last + 1);
    if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
    char* end = nullptr;
    std::string id_s(id), port_s(port);
    unsigned long long n = strtoull(id_s.c_str(), &end, 10);
    if (id_s.empty() || *end) return bad();
    p.id = n;
    unsigned long long pn = strtoull(port_s.c_str(), &end, 10);
    if (port_s.empty() || *end || pn == 0 || pn > 65535 || host.empty()) return bad();
    p.port = uint16_t(pn);
    p.host = std::string(host);
    out.push_back(std::move(p));
  }
  return std::nullopt;
}

core::settings declare_settings(config& c) {
  core::settings s;
  auto text = [](std::string* out) { return core::parse_text(out, false); };
  s.add({"api_host", "XERV_API_HOST", "--api-host", "0.0.0.0", "address the API listens on (numeric IPv4 or IPv6)",
         text(&c.api_host)});
  s.add({"api_port", "XERV_API_PORT", "--api-port", "8080", "API port (0: any free port, logged at start)",
         core::parse_uint(&c.api_port, 0, 65535)});
  s.add({"data_dir", "XERV_DATA_DIR", "--data-dir", "/tmp/xerv", "data directory: pipelines deployed through the API (and, next, the arena and write-ahead log)",
         text(&c.data_dir)});
  s.add({"shards", "XERV_SHARDS", "--shards", "0", "shards, one thread and io_uring each (0: one per CPU)",
         core::parse_uint(&c.shards, 0, 1024)});
  s.add({"metrics_enabled", "XERV_METRICS_ENABLED", "--metrics-enabled", "true", "serve Prometheus metrics at /metrics",
         core::parse_bool(&c.metrics_enabled)});
  s.add({"metrics_port", "XERV_METRICS_PORT", "--metrics-port", "",
         "also serve /metrics (and /health) on this port; unset: API port only",
         [&c](std::string_view t) -> std::string {
           if (t.empty()) {
             c.metrics_port = 0;
             return {};
           }
           return core::parse_uint(&c.metrics_port, 1, 65535)(t);
         }});
  s.add({"log_format", "XERV_LOG_FORMAT", "--log-format", "pretty", "log line format: pretty, compact or json",
         [&c](std::string_view t) -> std::string {
           auto f = io::parse_log_format(t);
           if (!f) return "expected pretty, compact or json";
           c.log_format = *f;
           return {};
         }});
  auto level = [&c](std::string_view t) -> std::string {
    if (t.empty()) return {};
    auto l = io::parse_log_level(t);
    if (!l) return "expected debug, info, warn or error (or xerv=LEVEL)";
    c.log_level = *l;
    return {};
  };
  // RUST_LOG comes first so that XERV_LOG, set as well, wins over it.
  s.add({"rust_log", "RUST_LOG", "", "", "accepted for compatibility: `xerv=debug` style directives", level});
  s.add({"log", "XERV_LOG", "--log", "info", "log level: debug, info, warn or error", level});
  s.add({"wal_sync", "XERV_WAL_SYNC", "--wal-sync", "always", "write-ahead log sync mode: always, batch or none",
         [&c](std::string_view t) -> std::string {
           if (t != "always" && t != "batch" && t != "none") return "expected always, batch or none";
           c.wal_sync = std::string(t);
           return {};
         }});
  s.add({"wal_segment_bytes", "XERV_WAL_SEGMENT_BYTES", "--wal-segment-bytes", "64MiB",
         "size of one WAL segment file (preallocated; a full segment is sealed and a new one started)",
         core::parse_bytes(&c.wal_segment_bytes, 64 << 10, 16ull << 30)});
  s.add({"wal_batch_ms", "XERV_WAL_BATCH_MS", "--wal-batch-ms", "10",
         "XERV_WAL_SYNC=batch: the longest time written records wait for fdatasync",
         core::parse_uint(&c.wal_batch_ms, 1, 10'000)});
  s.add({"wal_skip_corrupt", "XERV_WAL_SKIP_CORRUPT", "--wal-skip-corrupt", "false",
         "start even when a WAL segment is corrupt in the middle, dropping the rest of that segment (see "
         "docs/durability.md); a bare --wal-skip-corrupt means true",
         core::parse_bool(&c.wal_skip_corrupt)});
  s.add({"arena_bytes", "XERV_ARENA_BYTES", "--arena-bytes", "64MiB",
         "size of each shard's memory-mapped arena for running traces' values (mapped and faulted in at start)",
         core::parse_bytes(&c.arena_bytes, 1 << 20, 64ull << 30)});
  s.add({"drain_timeout_ms", "XERV_DRAIN_TIMEOUT_MS", "--drain-timeout-ms", "30000",
         "on SIGTERM/SIGINT, how long running traces may take to finish; the rest resume after the restart",
         core::parse_uint(&c.drain_timeout_ms, 0, 3'600'000)});
  s.add({"pipelines_dir", "XERV_PIPELINES_DIR", "--pipelines", "", "directory of flow YAML files loaded at start",
         core::parse_text(&c.pipelines_dir, true)});
  s.add({"max_body_bytes", "XERV_MAX_BODY_BYTES", "--max-body-bytes", "1MiB",
         "largest accepted request body (413 beyond); sizes like 1048576, 512KiB, 4MiB",
         core::parse_bytes(&c.max_body_bytes, 1, uint64_t{1} << 31)});
  s.add({"http_header_timeout_ms", "XERV_HTTP_HEADER_TIMEOUT_MS", "--http-header-timeout-ms", "10000",
         "time a client has from the first byte of a request to its last header (408 and close)",
         core::parse_uint(&c.header_timeout_ms, 10, 3'600'000)});
  s.add({"http_idle_timeout_ms", "XERV_HTTP_IDLE_TIMEOUT_MS", "--http-idle-timeout-ms", "60000",
         "how long an idle keep-alive connection stays open", core::parse_uint(&c.idle_timeout_ms, 10, 3'600'000)});
  s.add({"max_connections", "XERV_MAX_CONNECTIONS", "--max-connections", "10000",
         "open HTTP connections per shard; beyond it new ones get 503 and are closed",
         core::parse_uint(&c.connections_max, 1, 1'000'000)});
  s.add({"shutdown_timeout_ms", "XERV_SHUTDOWN_TIMEOUT_MS", "--shutdown-timeout-ms", "30000",
         "on SIGTERM/SIGINT, how long in-flight requests may take before their I/O is cancelled",
         core::parse_uint(&c.shutdown_timeout_ms, 0, 3'600'000)});
  s.add({"trace_retention", "XERV_TRACE_RETENTION", "--trace-retention", "1h",
         "how long finished traces stay queryable (3600, 90s, 30m, 1h)",
         core::parse_duration_ms(&c.trace_retention_ms, 1000, 30ull * 24 * 3'600'000)});
  s.add({"trace_store_max", "XERV_TRACE_STORE_MAX", "--trace-store-max", "10000",
         "finished traces kept per shard (the oldest go first)", core::parse_uint(&c.traces_kept_max, 1, 10'000'000)});
  s.add({"circuit_open", "XERV_CIRCUIT_OPEN", "--circuit-open", "30s",
         "how long an open circuit breaker refuses a pipeline's traces before it admits trial traces (half-open)",
         core::parse_duration_ms(&c.circuit_open_ms, 10, 24ull * 3'600'000)});
  s.add({"circuit_window", "XERV_CIRCUIT_WINDOW", "--circuit-window", "60s",
         "the period over which a circuit breaker counts failed traces",
         core::parse_duration_ms(&c.circuit_window_ms, 100, 24ull * 3'600'000)});
  s.add({"idempotency_ttl", "XERV_IDEMPOTENCY_TTL", "--idempotency-ttl", "24h",
         "how long an Idempotency-Key keeps answering with the trace it started (durable across restarts)",
         core::parse_duration_ms(&c.idempotency_ttl_ms, 1000, 30ull * 24 * 3'600'000)});
  s.add({"idempotency_keys_max", "XERV_IDEMPOTENCY_KEYS_MAX", "--idempotency-keys-max", "100000",
         "idempotency keys kept per shard (the oldest are forgotten first)",
         core::parse_uint(&c.idempotency_keys_max, 1, 100'000'000)});
  s.add({"pending_max", "XERV_PENDING_MAX", "--pending-max", "10000",
         "traces of one pipeline waiting for a concurrency slot, per shard; beyond, admissions answer 503 with Retry-After",
         core::parse_uint(&c.pending_max, 1, 10'000'000)});
  s.add({"dispatch_backend", "XERV_DISPATCH_BACKEND", "--dispatch-backend", "memory",
         "where traces are queued and dispatched: memory (this process) or raft (a Raft group of xerv nodes, "
         "docs/raft.md); redis and nats are not built yet",
         [&c](std::string_view t) -> std::string {
           if (t == "memory" || t == "raft") {
             c.dispatch_backend = std::string(t);
             return {};
           }
           if (t == "redis" || t == "nats") return "the " + std::string(t) + " backend is not built yet; use memory or raft";
           return "expected memory, raft, redis or nats";
         }});
  s.add({"dispatch_lease_ms", "XERV_DISPATCH_LEASE_MS", "--dispatch-lease-ms", "5000",
         "raft: a node not heard from this long loses its unfinished traces to the live nodes",
         core::parse_uint(&c.dispatch_lease_ms, 100, 3'600'000)});
  s.add({"raft_node_id", "XERV_DISPATCH_RAFT_NODE_ID", "--raft-node-id", "1",
         "raft: this node's id in the group (unique, 1 or more)", core::parse_uint(&c.raft_node_id, 1, 1'000'000)});
  s.add({"raft_listen_addr", "XERV_DISPATCH_RAFT_LISTEN_ADDR", "--raft-listen-addr", "127.0.0.1:5000",
         "raft: HOST:PORT where this node listens for its peers",
         [&c](std::string_view t) -> std::string {
           std::vector<raft_peer> one;
           if (auto err = parse_raft_peers("0:" + std::string(t), one)) return "expected HOST:PORT";
           c.raft_listen_host = one[0].host;
           c.raft_listen_port = one[0].port;
           return {};
         }});
  s.add({"raft_peers", "XERV_DISPATCH_RAFT_PEERS", "--raft-peers", "",
         "raft: the other members, ID:HOST:PORT separated by commas (empty: a single-node group)",
         [&c](std::string_view t) -> std::string {
           c.raft_peers.clear();
           if (auto err = parse_raft_peers(t, c.raft_peers)) return *err;
           for (const auto& p : c.raft_peers)
             if (p.id == 0) return "peer ids start at 1";
           return {};
         }});
  s.add({"raft_join", "XERV_DISPATCH_RAFT_JOIN", "--raft-join", "false",
         "raft: this node joins a running group (`xerv cluster add` on a member), instead of founding one with its peers",
         core::parse_bool(&c.raft_join)});
  s.add({"raft_election_ms", "XERV_DISPATCH_RAFT_ELECTION_TIMEOUT_MS", "--raft-election-timeout-ms", "1000",
         "raft: a follower that hears no leader this long (randomized up to twice) starts an election",
         core::parse_uint(&c.raft_election_ms, 10, 600'000)});
  s.add({"raft_heartbeat_ms", "XERV_DISPATCH_RAFT_HEARTBEAT_MS", "--raft-heartbeat-ms", "100",
         "raft: how often the leader tells its followers it is there",
         core::parse_uint(&c.raft_heartbeat_ms, 1, 60'000)});
  s.add({"raft_snapshot_entries", "XERV_DISPATCH_RAFT_SNAPSHOT_ENTRIES", "--raft-snapshot-entries", "10000",
         "raft: log entries applied between two snapshots (the log before a snapshot is deleted)",
         core::parse_uint(&c.raft_snapshot_entries, 10, 100'000'000)});
  s.add({"debug_routes", "XERV_DEBUG_ROUTES", "--debug-routes", "false",
         "serve POST /api/v1/debug/echo (answers with the request body; for benchmarks and tests)",
         core::parse_bool(&c.debug_routes)});
  s.add({"debug_clock_offset_ms", "XERV_DEBUG_CLOCK_OFFSET_MS", "--debug-clock-offset-ms", "0",
         "shift xerv's wall clock by this many ms (signed; tests of missed cron instants play a downtime with it)",
         [&c](std::string_view t) -> std::string {
           int64_t v = 0;
           auto [p, ec] = std::from_chars(t.data(), t.data() + t.size(), v);
           constexpr int64_t ten_years = 10ll * 366 * 24 * 3'600'000;
           if (ec != std::errc() || p != t.data() + t.size() || v < -ten_years || v > ten_years)
             return "expected an integer number of ms within ten years either way";
           c.debug_clock_offset_ms = v;
           return {};
         }});
  return s;
}

std::optional<std::string> load_config(config& cfg, const std::vector<std::string>& args,
                                       std::vector<std::string>& rest) {
  // --config is found first: the file sits below the environment and flags.
  std::string file;
  std::vector<std::string> others;
  for (size_t i = 0; i < args.size(); ++i) {
    if (args[i] == "--config") {
      if (i + 1 >= args.size()) return "missing value for --config";
      file = args[++i];
    } else if (args[i].rfind("--config=", 0) == 0) {
      file = args[i].substr(9);
    } else {
      others.push_back(args[i]);
    }
  }
  core::settings s = declare_settings(cfg);
  return s.load(others, rest, file);
}

}  // namespace xerv::app
