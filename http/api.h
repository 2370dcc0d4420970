#pragma once
// The REST API of SPEC §8 (pipelines, traces, logs and their live stream,
// triggers) and the webhook triggers, served by every shard. Each shard has its
// own engine; a trace lives on the shard that runs it and its id names that
// shard, so lookups go to the owner with one message. Pipeline changes go to
// the control plane on shard 0 (flows/control.h).

#include <cstdint>
#include <optional>
#include <string>

#include "flows/control.h"
#include "flows/engine.h"
#include "http/router.h"
#include "io/sharded.h"

namespace xerv::http {

struct api_options {
  uint64_t max_body_bytes = 1 << 20;  // trace inputs and webhook payloads
  uint64_t flow_bytes_max = 2 << 20;  // POST /pipelines, whatever max_body_bytes says
};

// What the handlers reach: every shard's engine (each read on its own shard)
// and the control plane (used on shard 0 only). Outlives the servers.
struct api_context {
  io::sharded<flows::engine>& engines;
  flows::control_plane& control;
  api_options opts;
};

void add_api_routes(router& r, const api_context& ctx);
// Webhook triggers: answers requests whose method and path match a deployed
// webhook; nullopt when none does.
std::optional<io::task<response>> webhook(const api_context& ctx, request& req);

}  // namespace xerv::http
