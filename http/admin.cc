#include "http/admin.h"

#include "core/metrics.h"
#include "io/reactor.h"
#include "io/strings.h"
#include "io/when_all.h"

namespace xerv::http {
namespace {

thread_local bool t_ready = false;

io::task<response> health(admin_info info) {
  response r;
  uint64_t up = (io::monotonic_ns() - info.started_ns) / 1'000'000'000u;
  r.body = "{\"status\":\"healthy\",\"version\":";
  io::append_json_string(r.body, info.version);
  r.body += ",\"uptime_secs\":" + std::to_string(up) + ",\"backend\":";
  io::append_json_string(r.body, info.backend);
  r.body += ",\"shards\":" + std::to_string(info.shards) + "}";
  co_return r;
}

io::task<response> ready() {
  if (!t_ready) co_return json_error(503, "unavailable", "xerv is starting or stopping");
  response r;
  r.body = "{\"status\":\"ready\"}";
  co_return r;
}

io::task<response> metrics() {
  auto parts = co_await io::invoke_on_all([] { return core::snapshot_this_thread(); });
  core::metrics_snapshot merged;
  for (const auto& p : parts) merged.merge(p);
  response r;
  r.content_type = "text/plain; version=0.0.4; charset=utf-8";
  r.body = core::render_prometheus(merged);
  co_return r;
}

io::task<response> echo(request& req) {
  response r;
  std::string_view type = req.header("content-type");
  r.content_type = type.empty() ? "application/octet-stream" : std::string(type);
  r.body = req.body();
  co_return r;
}

}  // namespace

void set_ready(bool ready) { t_ready = ready; }

void add_health_routes(router& r, const admin_info& info) {
  for (std::string prefix : {"", "/api/v1"}) {
    r.add("GET", prefix + "/health", [info](request&) { return health(info); });
    r.add("GET", prefix + "/ready", [](request&) { return ready(); });
  }
}

void add_metrics_routes(router& r) {
  for (std::string prefix : {"", "/api/v1"}) r.add("GET", prefix + "/metrics", [](request&) { return metrics(); });
}

}  // namespace xerv::http

namespace xerv::http {
void add_debug_routes(router& r) { r.add("POST", "/api/v1/debug/echo", [](request& req) { return echo(req); }); }
}  // namespace xerv::http
