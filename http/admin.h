#pragma once
// The operational endpoints: /health, /ready and /metrics, at the root and under
// /api/v1.

#include <string>

#include "http/router.h"

namespace xerv::http {

struct admin_info {
  std::string version;
  std::string backend = "memory";
  unsigned shards = 1;
  uint64_t started_ns = 0;  // io::monotonic_ns() at start
};

// Whether /ready answers 200 on this shard; the app clears it when stopping.
void set_ready(bool ready);
// Traces found unfinished in the WAL at start and resumed (shown by /health).
void set_recovered_traces(uint64_t n);

void add_health_routes(router& r, const admin_info& info);
void add_metrics_routes(router& r);
// POST /api/v1/debug/echo answers with the request body; GET /api/v1/debug/ticks?n=N
// streams N Server-Sent Events 10 ms apart (benchmarks and tests).
void add_debug_routes(router& r);

}  // namespace xerv::http
