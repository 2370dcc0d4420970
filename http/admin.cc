#include "http/admin.h"

#include <atomic>

#include "core/metrics.h"
#include <algorithm>
#include <cstdlib>

#include "io/ops.h"
#include "io/reactor.h"
#include "io/strings.h"
#include "io/when_all.h"

namespace xerv::http {
namespace {

thread_local bool t_ready = false;

// Written once by the app before serving, read by every shard.
std::atomic<uint64_t> g_recovered{0};

io::task<response> health(admin_info info) {
  response r;
  uint64_t up = (io::monotonic_ns() - info.started_ns) / 1'000'000'000u;
  r.body = "{\"status\":\"healthy\",\"version\":";
  io::append_json_string(r.body, info.version);
  r.body += ",\"uptime_secs\":" + std::to_string(up) + ",\"backend\":";
  io::append_json_string(r.body, info.backend);
  r.body += ",\"shards\":" + std::to_string(info.shards);
  r.body += ",\"recovered_traces\":" + std::to_string(g_recovered.load(std::memory_order_relaxed)) + "}";
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

io::task<io::result<void>> tick_events(stream& out, int count) {
  for (int i = 0; i < count; ++i) {
    if (i) (void)co_await io::sleep_for(std::chrono::milliseconds(10));
    std::string event = "id: " + std::to_string(i) + "\ndata: {\"tick\":" + std::to_string(i) + "}\n\n";
    auto r = co_await out.write(event);
    if (!r) co_return r;
  }
  co_return co_await out.finish();
}

io::task<response> ticks(request& req) {
  int count = 3;
  std::string_view q = req.query();
  if (q.rfind("n=", 0) == 0) count = std::clamp(std::atoi(std::string(q.substr(2)).c_str()), 0, 1000);
  response r;
  r.content_type = "text/event-stream";
  r.headers.emplace_back("Cache-Control", "no-cache");
  r.streamer = [count](stream& s) { return tick_events(s, count); };
  co_return r;
}

}  // namespace

void set_ready(bool ready) { t_ready = ready; }

void set_recovered_traces(uint64_t n) { g_recovered.store(n, std::memory_order_relaxed); }

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
void add_debug_routes(router& r) {
  r.add("POST", "/api/v1/debug/echo", [](request& req) { return echo(req); });
  r.add("GET", "/api/v1/debug/ticks", [](request& req) { return ticks(req); });
}
}  // namespace xerv::http
