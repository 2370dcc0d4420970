#pragma once
// The operational endpoints: /health, /ready and /metrics, at the root and under
// /api/v1.

#include <functional>
#include <string>

#include "http/router.h"

namespace xerv::http {

struct admin_info {
  std::string version;
  std::string backend = "memory";
  unsigned shards = 1;
  uint64_t started_ns = 0;  // io::monotonic_ns() at start
};

// What one shard tells /health and /ready.
struct shard_health {
  bool recovering = false;          // still replaying its write-ahead log
  uint64_t recovered_traces = 0;    // unfinished traces found in the WAL at start
  uint64_t waiting_traces = 0;      // recovered traces waiting for their pipeline
  bool wal_unavailable = false;     // writes refused for now (disk full); retried
  bool wal_failed = false;          // a sync failed: refused until a restart
  std::string wal_error;
  // The dispatch backend's part, from the shard that runs it: a JSON member
  // for /health ("raft":{...}), and why it cannot take traces (empty: it can).
  std::string backend_member;
  std::string backend_unready;
};
using health_probe = std::function<shard_health()>;

// This shard's probe (the app's view of its engine and WAL); none: all is well.
void set_health_probe(health_probe probe);
// Whether /ready may answer 200 once every shard is recovered and its WAL writes;
// the app sets it when start-up is done and clears it when stopping.
void set_ready(bool ready);

void add_health_routes(router& r, const admin_info& info);
void add_metrics_routes(router& r);
// POST /api/v1/debug/echo answers with the request body; GET /api/v1/debug/ticks?n=N
// streams N Server-Sent Events 10 ms apart (benchmarks and tests).
void add_debug_routes(router& r);

}  // namespace xerv::http
