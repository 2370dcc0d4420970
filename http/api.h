#pragma once
// The REST API of SPEC §8 (pipelines, traces, logs and their live stream,
// triggers) and the webhook triggers, served by every shard. Each shard has its
// own engine; a trace lives on the shard that admitted it and its id names that
// shard, so lookups go to the owner with one message.

#include <cstdint>
#include <string>

#include "flows/engine.h"
#include "http/router.h"

namespace xerv::http {

struct api_options {
  std::string data_dir;            // pipelines deployed through the API are kept in data_dir/pipelines
  uint64_t max_body_bytes = 1 << 20;  // trace inputs and webhook payloads
  uint64_t flow_bytes_max = 2 << 20;  // POST /pipelines, whatever max_body_bytes says
};

// Binds this shard's engine; call on every shard before serving.
void set_shard_engine(flows::engine* e, const api_options* opts);
flows::engine* shard_engine();

void add_api_routes(router& r);
// Webhook triggers: answers requests whose method and path match a deployed
// webhook; nullopt when none does.
std::optional<io::task<response>> webhook(request& req);

// Deploys `yaml` on every shard (after writing it under the data dir when
// `persist`); the outcome as an HTTP response (201, 200 on update, 400).
io::task<response> deploy_everywhere(std::string yaml, bool persist, flows::pipeline_state state);

}  // namespace xerv::http
