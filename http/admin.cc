#include "http/admin.h"

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
thread_local health_probe t_probe;

// Every shard's report, merged.
struct health_view {
  shard_health sum;
  std::vector<unsigned> failed_shards;
};

shard_health probe_here() { return t_probe ? t_probe() : shard_health{}; }

io::task<health_view> gather() {
  auto job = io::invoke_on_all([] { return probe_here(); });
  auto parts = co_await std::move(job);
  health_view v;
  for (unsigned s = 0; s < parts.size(); ++s) {
    const shard_health& h = parts[s];
    v.sum.recovering |= h.recovering;
    v.sum.recovered_traces += h.recovered_traces;
    v.sum.waiting_traces += h.waiting_traces;
    v.sum.wal_unavailable |= h.wal_unavailable;
    if (h.wal_failed) {
      v.sum.wal_failed = true;
      v.failed_shards.push_back(s);
      if (v.sum.wal_error.empty()) v.sum.wal_error = h.wal_error;
    }
    if (!h.backend_member.empty()) v.sum.backend_member = h.backend_member;
    if (!h.backend_unready.empty()) v.sum.backend_unready = h.backend_unready;
  }
  co_return v;
}

io::task<response> health(admin_info info) {
  auto gathering = gather();
  health_view v = co_await std::move(gathering);
  const shard_health& h = v.sum;
  response r;
  // A WAL that failed a sync never recovers in this process (it may have lost
  // written records): unhealthy, so a supervisor restarts xerv and the restart
  // replays what is durable.
  if (h.wal_failed) r.status = 503;
  uint64_t up = (io::monotonic_ns() - info.started_ns) / 1'000'000'000u;
  r.body = h.wal_failed ? "{\"status\":\"unhealthy\",\"version\":" : "{\"status\":\"healthy\",\"version\":";
  io::append_json_string(r.body, info.version);
  r.body += ",\"uptime_secs\":" + std::to_string(up) + ",\"backend\":";
  io::append_json_string(r.body, info.backend);
  r.body += ",\"shards\":" + std::to_string(info.shards);
  r.body += ",\"recovering\":" + std::string(h.recovering ? "true" : "false");
  r.body += ",\"recovered_traces\":" + std::to_string(h.recovered_traces);
  r.body += ",\"waiting_traces\":" + std::to_string(h.waiting_traces);
  r.body += ",\"wal\":{\"status\":";
  io::append_json_string(r.body, h.wal_failed ? "failed" : h.wal_unavailable ? "unavailable" : "ok");
  if (h.wal_failed) {
    r.body += ",\"failed_shards\":[";
    for (unsigned s : v.failed_shards) r.body += (r.body.back() == '[' ? "" : ",") + std::to_string(s);
    r.body += "],\"error\":";
    io::append_json_string(r.body, h.wal_error);
  }
  r.body += "}";
  if (!h.backend_member.empty()) r.body += "," + h.backend_member;
  r.body += "}";
  co_return r;
}

io::task<response> ready() {
  if (!t_ready) co_return json_error(503, "unavailable", "xerv is starting or stopping");
  auto gathering = gather();
  health_view v = co_await std::move(gathering);
  if (v.sum.recovering) co_return json_error(503, "unavailable", "recovering the write-ahead log");
  if (v.sum.wal_failed)
    co_return json_error(503, "unavailable", "the write-ahead log failed (" + v.sum.wal_error + "); restart xerv");
  if (v.sum.wal_unavailable) co_return json_error(503, "unavailable", "the write-ahead log cannot write (disk full?)");
  if (!v.sum.backend_unready.empty()) co_return json_error(503, "unavailable", v.sum.backend_unready);
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

void set_health_probe(health_probe probe) { t_probe = std::move(probe); }

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
