// The xerv binary: CLI, configuration and wiring of the modules onto the shards.

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <set>
#include <memory>
#include <string>
#include <vector>

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>

#include "app/cli.h"
#include "app/config.h"
#include "backends/memory/pipeline_store.h"
#include "backends/memory/trace_queue.h"
#include "app/cluster.h"
#include "backends/raft/replica.h"
#include "flows/control.h"
#include "flows/engine.h"
#include "http/admin.h"
#include "http/api.h"
#include "http/server.h"
#include "io/file.h"
#include "io/log.h"
#include "io/net.h"
#include "io/reactor.h"
#include "io/runtime.h"
#include "io/sharded.h"
#include "io/when_all.h"

#ifndef XERV_VERSION
#define XERV_VERSION "0.0.0"
#endif

namespace {

using namespace xerv;

// Loaded in main() before the runtime starts; read-only afterwards.
app::config g_cfg;
http::admin_info g_info;
http::api_options g_api;

// Flows of XERV_PIPELINES_DIR, loaded at start unless the data directory
// stores a pipeline of the same name (the stored one wins), and what the data
// directory stores (deployed through the API).
struct startup_flow {
  std::string name;
  std::string yaml;
  flows::pipeline_state state = flows::pipeline_state::running;
  std::vector<std::string> disabled;
};
std::vector<startup_flow> g_startup_flows;
backends::memory::pipeline_store::stored g_stored;

// The wiring, created once the runtime knows its shards; read-only afterwards
// (each shard touches only its own slot of g_engines).
std::unique_ptr<io::sharded<flows::engine>> g_engines;
std::unique_ptr<backends::memory::pipeline_store> g_store;
// XERV_DISPATCH_BACKEND=raft: this node's member of the group, on shard 0.
std::unique_ptr<backends::raft::replica> g_replica;
std::unique_ptr<flows::control_plane> g_control;
std::unique_ptr<http::api_context> g_api_ctx;

std::vector<std::string> yaml_files(const std::string& dir) {
  std::vector<std::string> out;
  DIR* d = opendir(dir.c_str());
  if (!d) return out;
  while (dirent* e = readdir(d)) {
    std::string n = e->d_name;
    if (n.size() > 5 && (n.ends_with(".yaml") || n.ends_with(".yml"))) out.push_back(dir + "/" + n);
  }
  closedir(d);
  std::sort(out.begin(), out.end());
  return out;
}


// Runs on the main thread before any shard exists, so plain file reads are fine.
bool load_startup_flows() {
  std::string stored_dir = g_cfg.data_dir + "/pipelines";
  // (Raft: the group's log holds the stored pipelines.)
  if (g_cfg.dispatch_backend == "memory") g_stored = backends::memory::pipeline_store::read_dir(stored_dir);
  for (const auto& problem : g_stored.problems) fprintf(stderr, "xerv: %s\n", problem.c_str());
  for (const auto& warning : g_stored.warnings) XLOG(warn, "%s", warning.c_str());
  if (!g_stored.problems.empty()) return false;
  std::set<std::string> stored;
  for (auto& c : g_stored.pipelines) {
    auto r = flows::compile_flow(c.source);
    if (auto* errs = std::get_if<std::vector<flows::flow_error>>(&r)) {
      fprintf(stderr, "%s", flows::format_errors(*errs, stored_dir + "/" + c.name + ".yaml").c_str());
      return false;
    }
    c.name = std::get<std::unique_ptr<flows::compiled_flow>>(r)->name;
    stored.insert(c.name);
  }
  if (g_cfg.pipelines_dir.empty()) return true;
  for (const auto& path : yaml_files(g_cfg.pipelines_dir)) {
    std::string yaml;
    if (!io::read_file_blocking(path, yaml)) {
      fprintf(stderr, "xerv: cannot read %s\n", path.c_str());
      return false;
    }
    auto r = flows::compile_flow(yaml);
    if (auto* errs = std::get_if<std::vector<flows::flow_error>>(&r)) {
      fprintf(stderr, "%s", flows::format_errors(*errs, path).c_str());
      return false;
    }
    std::string name = std::get<std::unique_ptr<flows::compiled_flow>>(r)->name;
    if (stored.count(name)) continue;
    startup_flow f{name, yaml, flows::pipeline_state::running};
    // The state an operator left it in through the API survives restarts.
    if (auto st = g_stored.states.find(name); st != g_stored.states.end()) {
      f.state = st->second.state;
      f.disabled = st->second.disabled;
    }
    g_startup_flows.push_back(std::move(f));
  }
  return true;
}

// A trace id names its shard: a WAL written by more shards than run now would
// leave traces nobody can resume or find.
bool wal_fits_shards(unsigned shards) {
  std::string dir = g_cfg.data_dir + "/wal";
  DIR* d = opendir(dir.c_str());
  if (!d) return true;
  unsigned needed = 0;
  while (dirent* e = readdir(d)) {
    unsigned n = 0;
    if (sscanf(e->d_name, "shard-%u", &n) == 1 && !core::list_segments(dir + "/" + e->d_name).empty())
      needed = std::max(needed, n + 1);
  }
  closedir(d);
  if (needed <= shards) return true;
  fprintf(stderr, "xerv: %s holds the write-ahead log of %u shards, but only %u would run; start with XERV_SHARDS=%u "
          "or more\n", dir.c_str(), needed, shards, needed);
  return false;
}

// One process per data directory: two would interleave their WALs. The lock is
// an flock on a file in it, so it goes away with the process however it ends;
// every shard's ring also holds that file (hold_until_teardown), so after a
// kill -9 the lock lasts until the dead process's last ring write has landed.
// Runs on the main thread before any shard exists.
int g_lock_fd = -1;

bool lock_data_dir() {
  std::error_code ec;
  std::filesystem::create_directories(g_cfg.data_dir, ec);
  if (ec) {
    fprintf(stderr, "xerv: cannot create the data directory %s: %s\n", g_cfg.data_dir.c_str(), ec.message().c_str());
    return false;
  }
  std::string path = g_cfg.data_dir + "/xerv.lock";
  int fd = open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) {
    fprintf(stderr, "xerv: cannot open %s: %s\n", path.c_str(), strerror(errno));
    return false;
  }
  // A holder that is gone (killed) lets go once its rings are torn down: wait
  // for that, a few seconds at most. A live holder is another server.
  for (int waited_ms = 0;; waited_ms += 20) {
    if (flock(fd, LOCK_EX | LOCK_NB) == 0) break;
    int err = errno;
    char text[32] = {};
    ssize_t n = pread(fd, text, sizeof text - 1, 0);
    pid_t holder = n > 0 ? pid_t(atoi(text)) : 0;
    bool alive = holder > 0 && (kill(holder, 0) == 0 || errno == EPERM);
    if (err != EWOULDBLOCK || alive || waited_ms >= 10'000) {
      if (err != EWOULDBLOCK)
        fprintf(stderr, "xerv: cannot lock %s: %s\n", path.c_str(), strerror(err));
      else
        fprintf(stderr, "xerv: the data directory %s is in use by another xerv process%s; stop it or set another "
                "XERV_DATA_DIR\n", g_cfg.data_dir.c_str(),
                holder > 0 ? (" (pid " + std::to_string(holder) + ")").c_str() : "");
      close(fd);
      return false;
    }
    if (waited_ms == 0) XLOG(info, "waiting for the I/O of a stopped xerv (pid %d) on %s to finish", int(holder), path.c_str());
    usleep(20'000);
  }
  std::string me = std::to_string(getpid());
  if (ftruncate(fd, 0) != 0 || pwrite(fd, me.data(), me.size(), 0) != ssize_t(me.size()))
    XLOG(warn, "%s: cannot write the pid: %s", path.c_str(), strerror(errno));
  g_lock_fd = fd;  // stays open, and the lock held, until the process (and its rings) are gone
  return true;
}

int usage(FILE* to) {
  fprintf(to,
          "usage: xerv <command> [options]\n"
          "  serve                 run the server until SIGINT/SIGTERM\n"
          "  validate FILE         check a flow; prints every problem with its line (exit 1)\n"
          "  deploy -f FILE        deploy a flow to a running server [--dry-run] [--url http://HOST:PORT]\n"
          "  list                  list the pipelines of a running server [--url http://HOST:PORT]\n"
          "  bench FLOW            run a flow in-process on every shard and print traces/s, nodes/s,\n"
          "                        latency [--seconds N] [--concurrency N] [--input JSON] [--shards N]\n"
          "  inspect TRACE_ID      print a trace's durable history and node outputs from the WAL, offline\n"
          "                        (--all: every trace, one JSON object per line) [--data-dir DIR]\n"
          "  version               print the version\n"
          "  config-table          print every setting as a Markdown table\n"
          "\noptions of `serve` (flags > environment > --config FILE > defaults):\n  --config FILE\n");
  app::config scratch;
  core::settings all = app::declare_settings(scratch);
  for (const auto& s : all.all()) {
    if (s.flag.empty()) continue;
    fprintf(to, "  %-28s %s (env %s, default %s)\n", (s.flag + " VALUE").c_str(), s.description.c_str(),
            s.env.c_str(), s.default_text.empty() ? "unset" : s.default_text.c_str());
  }
  return to == stderr ? 2 : 0;
}

// The services of one shard, created and destroyed on that shard.
struct shard_services {
  // Declared first, destroyed last: the engine's traces use them.
  std::unique_ptr<core::arena> arena;
  std::unique_ptr<core::wal> wal;
  // The dispatch backend's queue on this shard: one of these.
  std::unique_ptr<backends::memory::trace_queue> memory_queue;
  std::unique_ptr<backends::raft::shard_queue> raft_queue;  // shards > 0; shard 0 uses the replica's
  core::trace_queue* queue = nullptr;
  std::unique_ptr<flows::engine> engine;
  http::router api_routes;
  http::router metrics_routes;
  std::unique_ptr<http::server> api;
  std::unique_ptr<http::server> metrics;
};
thread_local std::unique_ptr<shard_services> t_services;

http::server_options server_options(uint16_t port) {
  http::server_options o;
  o.host = g_cfg.api_host;
  o.port = port;
  o.limits.body_bytes_max = g_cfg.max_body_bytes;
  o.limits.large_body_prefix = "/api/v1/pipelines";
  o.limits.large_body_bytes_max = g_api.flow_bytes_max;
  o.header_timeout = std::chrono::milliseconds(g_cfg.header_timeout_ms);
  o.idle_timeout = std::chrono::milliseconds(g_cfg.idle_timeout_ms);
  o.connections_max = g_cfg.connections_max;
  return o;
}

core::wal_sync wal_sync_mode() {
  if (g_cfg.wal_sync == "batch") return core::wal_sync::batch;
  if (g_cfg.wal_sync == "none") return core::wal_sync::none;
  return core::wal_sync::always;
}

// The arena and the WAL of this shard; the WAL's records are replayed into the
// engine. A corrupt log is reported (file and offset) and fails the start.
io::task<io::result<void>> open_storage(shard_services& svc) {
  unsigned shard = io::this_shard_id();
  auto a = core::arena::create(g_cfg.arena_bytes);
  if (!a) {
    XLOG(error, "shard %u: cannot map the arena (XERV_ARENA_BYTES=%llu): %s", shard,
         static_cast<unsigned long long>(g_cfg.arena_bytes), a.error().message().c_str());
    co_return a.error();
  }
  svc.arena = std::move(*a);
  // Earlier builds kept the arena in a file under the data dir: not needed any more.
  auto stale = io::remove_file(g_cfg.data_dir + "/arena/shard-" + std::to_string(shard) + ".arena");
  (void)co_await std::move(stale);
  core::wal_options wo;
  wo.dir = g_cfg.data_dir + "/wal/shard-" + std::to_string(shard);
  wo.sync = wal_sync_mode();
  wo.segment_bytes = g_cfg.wal_segment_bytes;
  wo.batch_delay = std::chrono::milliseconds(g_cfg.wal_batch_ms);
  wo.retention = std::chrono::milliseconds(g_cfg.trace_retention_ms);
  wo.skip_corrupt = g_cfg.wal_skip_corrupt;
  // The backend and the engine each read what is theirs: admissions and ends,
  // and every record for the engine's store and node progress.
  flows::engine* e = svc.engine.get();
  backends::memory::trace_queue* q = svc.memory_queue.get();
  core::wal::replay_fn replay = [e, q](const core::wal_record& r) {
    if (q) q->replay(r);
    e->replay(r);
  };
  auto opening = core::wal::open(wo, std::move(replay));
  auto w = co_await std::move(opening);
  if (auto* err = std::get_if<std::string>(&w)) {
    XLOG(error, "cannot open the write-ahead log: %s", err->c_str());
    co_return io::errc::not_supported;
  }
  svc.wal = std::move(std::get<std::unique_ptr<core::wal>>(w));
  const core::wal_stats& st = svc.wal->stats();
  if (st.recovered_records)
    XLOG(info, "WAL %s: %llu records in %llu segments replayed", wo.dir.c_str(),
         static_cast<unsigned long long>(st.recovered_records), static_cast<unsigned long long>(st.segments));
  co_return io::result<void>{};
}

// What /health and /ready hear from this shard.
http::shard_health shard_health_here() {
  http::shard_health h;
  if (!t_services) return h;
  const flows::engine& e = *t_services->engine;
  h.recovering = e.recovering() || e.redelivering();
  h.recovered_traces = e.recovered_traces();
  h.waiting_traces = e.waiting_traces();
  if (const core::wal* w = t_services->wal.get()) {
    h.wal_unavailable = !w->healthy();
    h.wal_failed = w->failed();
    h.wal_error = w->failure();
  }
  if (g_replica && io::this_shard_id() == 0) {
    backends::raft::replica_status st = g_replica->status();
    h.backend_member = "\"raft\":" + app::raft_status_json(st);
    if (st.removed) h.backend_unready = "removed from the Raft group";
    else if (st.leader == 0) h.backend_unready = "no Raft leader (a majority of the group is not reachable)";
    else if (!st.caught_up) h.backend_unready = "catching up with the Raft group";
  }
  return h;
}

// The engine and the routes of this shard, not yet listening: the pipelines are
// deployed before anyone can ask for them.
void start_shard() {
  auto svc = std::make_unique<shard_services>();
  unsigned shard = io::this_shard_id();
  if (!g_replica) {
    svc->memory_queue = std::make_unique<backends::memory::trace_queue>(nullptr);
    svc->queue = svc->memory_queue.get();
  } else if (shard == 0) {
    svc->queue = &g_replica->queue();
  } else {
    svc->raft_queue = std::make_unique<backends::raft::shard_queue>(g_replica.get(), shard);
    svc->queue = svc->raft_queue.get();
  }
  flows::engine_options eo;
  eo.queue = svc->queue;
  eo.shard = io::this_shard_id();
  eo.shard_count = io::shard_count();
  eo.trace_retention = std::chrono::milliseconds(g_cfg.trace_retention_ms);
  eo.traces_kept_max = g_cfg.traces_kept_max;
  eo.circuit.open_ms = g_cfg.circuit_open_ms;
  eo.circuit.window_ms = g_cfg.circuit_window_ms;
  eo.circuit_judge = g_control.get();
  eo.router = g_control.get();
  eo.idempotency.ttl = std::chrono::milliseconds(g_cfg.idempotency_ttl_ms);
  eo.idempotency.max = g_cfg.idempotency_keys_max;
  eo.pending_max = g_cfg.pending_max;
  svc->engine = std::make_unique<flows::engine>(eo);
  svc->engine->expect_recovery();  // admissions wait for the WAL
  if (auto held = io::this_reactor().hold_until_teardown(g_lock_fd); !held)
    XLOG(warn, "the ring cannot hold the data directory lock (%s): after a kill -9, a restart may begin before the "
         "last writes of the killed process land", held.error().message().c_str());
  g_engines->set_local(svc->engine.get());
  http::set_health_probe([] { return shard_health_here(); });
  http::add_health_routes(svc->api_routes, g_info);
  http::add_api_routes(svc->api_routes, *g_api_ctx);
  svc->api_routes.set_fallback([](http::request& req) { return http::webhook(*g_api_ctx, req); });
  if (g_cfg.metrics_enabled) http::add_metrics_routes(svc->api_routes);
  if (g_cfg.debug_routes) http::add_debug_routes(svc->api_routes);
  if (g_replica) app::add_cluster_routes(svc->api_routes, g_replica.get());
  t_services = std::move(svc);
}

io::result<uint16_t> listen_shard(uint16_t api_port) {
  shard_services* sv = t_services.get();
  sv->api = std::make_unique<http::server>(sv->api_routes, server_options(api_port));
  auto port = sv->api->start();
  if (!port) {
    XLOG(error, "cannot listen on %s:%u: %s", g_cfg.api_host.c_str(), unsigned(api_port), port.error().message().c_str());
    return port.error();
  }
  if (g_cfg.metrics_port != 0) {
    http::add_health_routes(sv->metrics_routes, g_info);
    if (g_cfg.metrics_enabled) http::add_metrics_routes(sv->metrics_routes);
    sv->metrics = std::make_unique<http::server>(sv->metrics_routes, server_options(uint16_t(g_cfg.metrics_port)));
    if (auto m = sv->metrics->start(); !m) {
      XLOG(error, "cannot listen on %s:%llu: %s", g_cfg.api_host.c_str(),
           static_cast<unsigned long long>(g_cfg.metrics_port), m.error().message().c_str());
      return m.error();
    }
  }
  return *port;
}

// Replays this shard's WAL into its queue and engine; the unfinished traces are
// delivered again. The number of them.
io::task<io::result<size_t>> recover_shard() {
  shard_services& svc = *t_services;
  if (auto st = co_await open_storage(svc); !st) co_return st.error();
  if (svc.memory_queue) svc.memory_queue->attach(svc.wal.get());
  svc.engine->attach_storage(svc.wal.get(), svc.arena.get());
  size_t unfinished = svc.engine->resume_recovered();
  // (Raft: the replica delivers this node's unfinished traces once it has
  // caught up with the group.)
  if (svc.memory_queue) svc.memory_queue->end_replay();
  co_return unfinished;
}

io::task<void> stop_servers(std::chrono::milliseconds grace) {
  if (t_services->api) co_await t_services->api->stop(grace);
  if (t_services->metrics) co_await t_services->metrics->stop(grace);
}

// First of two steps: nothing new is accepted, requests and traces finish (or
// drain), the WAL is synced. Other shards may still be serving requests that
// call this one, so its engine stays until every shard has done this.
io::task<void> stop_shard(std::chrono::milliseconds grace, std::chrono::milliseconds drain) {
  http::set_ready(false);
  if (!t_services) co_return;
  // Both at once: running traces get `drain` to finish (the rest resume after
  // the restart) while requests finish; a request waiting on a trace is
  // answered when the trace ends or the drain does. Then everything journaled
  // is written and synced.
  std::vector<io::task<void>> stopping;
  stopping.push_back(t_services->engine->stop(drain));
  stopping.push_back(stop_servers(grace));
  auto all = io::when_all(std::move(stopping));
  co_await std::move(all);
  if (t_services->wal) co_await t_services->wal->close();
}

// Between the two steps (the engines no longer admit or acknowledge): the
// Raft replica answers what is still waiting, then each shard's queue stops.
io::task<void> stop_backend() {
  auto following = g_control->stop_following();
  co_await std::move(following);
  if (!g_replica) co_return;
  auto stopping = g_replica->stop();
  co_await std::move(stopping);
  co_await io::invoke_on_all([]() -> io::task<void> {
    if (t_services && t_services->raft_queue) co_await t_services->raft_queue->stop();
  });
}

// Second step, once no shard serves anything.
void release_shard() {
  http::set_health_probe({});
  g_engines->set_local(nullptr);
  t_services.reset();
}

io::task<void> stop_everywhere(std::chrono::milliseconds grace, std::chrono::milliseconds drain) {
  auto stopping = io::invoke_on_all([grace, drain] { return stop_shard(grace, drain); });
  co_await std::move(stopping);
  auto stopping_backend = stop_backend();
  co_await std::move(stopping_backend);
  co_await io::invoke_on_all([] { release_shard(); });
  g_replica.reset();
}

// A port some other process listens on (even with SO_REUSEPORT) is an error.
bool ports_free() {
  for (uint64_t port : {g_cfg.api_port, g_cfg.metrics_port}) {
    if (port == 0) continue;
    auto addr = io::socket_address::parse(g_cfg.api_host, uint16_t(port));
    if (!addr) continue;  // reported by the listener itself
    if (auto free = io::check_port_free(*addr); !free) {
      XLOG(error, "cannot listen on %s:%llu: %s", g_cfg.api_host.c_str(), static_cast<unsigned long long>(port),
           free.error().message().c_str());
      return false;
    }
  }
  return true;
}

// XERV_DISPATCH_BACKEND=raft: joins the group (its log under DATA_DIR/raft).
io::task<bool> start_replica() {
  backends::raft::replica_options o;
  o.id = g_cfg.raft_node_id;
  for (const auto& p : g_cfg.raft_peers) {
    if (p.id == o.id) {
      XLOG(error, "XERV_DISPATCH_RAFT_PEERS lists this node's own id %llu: list the other members only",
           static_cast<unsigned long long>(p.id));
      co_return false;
    }
    o.peers.push_back({raft::node_id(p.id), p.host, p.port});
  }
  o.join = g_cfg.raft_join;
  o.shards = io::shard_count();
  o.listen_host = g_cfg.raft_listen_host;
  o.listen_port = uint16_t(g_cfg.raft_listen_port);
  o.dir = g_cfg.data_dir + "/raft";
  o.sync = wal_sync_mode();
  o.segment_bytes = g_cfg.wal_segment_bytes;
  o.tick = std::chrono::milliseconds(g_cfg.raft_heartbeat_ms);
  o.election_ticks = unsigned(std::max<uint64_t>(2, g_cfg.raft_election_ms / g_cfg.raft_heartbeat_ms));
  o.lease = std::chrono::milliseconds(g_cfg.dispatch_lease_ms);
  o.request_timeout = std::max(o.lease, std::chrono::milliseconds(4 * g_cfg.raft_election_ms));
  o.snapshot_entries = g_cfg.raft_snapshot_entries;
  auto starting = backends::raft::replica::start(std::move(o));
  auto started = co_await std::move(starting);
  if (auto* err = std::get_if<std::string>(&started)) {
    XLOG(error, "cannot start the Raft backend: %s", err->c_str());
    co_return false;
  }
  g_replica = std::move(std::get<std::unique_ptr<backends::raft::replica>>(started));
  XLOG(info, "raft node %llu listening on %s:%u for its %zu peers", static_cast<unsigned long long>(g_cfg.raft_node_id),
       g_cfg.raft_listen_host.c_str(), unsigned(g_replica->port()), g_cfg.raft_peers.size());
  co_return true;
}

// The control plane publishes to the backend's store.
void make_control_plane() {
  core::pipeline_store& store = g_replica ? g_replica->store() : static_cast<core::pipeline_store&>(*g_store);
  g_control = std::make_unique<flows::control_plane>(store, *g_engines);
  g_api_ctx = std::make_unique<http::api_context>(http::api_context{*g_engines, *g_control, g_api});
}

io::task<int> serve() {
  if (!ports_free()) co_return 1;
  if (g_cfg.dispatch_backend == "raft") {
    auto starting = start_replica();
    if (!co_await std::move(starting)) co_return 1;
  }
  make_control_plane();
  co_await io::invoke_on_all([] { start_shard(); });
  if (g_replica) {
    auto gathering = io::invoke_on_all([] { return t_services->raft_queue.get(); });
    g_replica->attach_shards(co_await std::move(gathering));
  }
  // Pipelines first: once the API listens, a configured pipeline is never 404.
  // serve() runs on shard 0, the control shard.
  if (g_replica) XLOG(info, "waiting for the Raft group (a leader, and this node caught up) to load the pipelines");
  auto restoring = g_control->restore();
  for (const auto& problem : co_await std::move(restoring)) XLOG(error, "%s", problem.c_str());
  g_control->start_following();
  for (const auto& f : g_startup_flows) {
    // A Raft group already holding the pipeline keeps its version: every
    // node starts with the directory, and a restart must not redeploy; of
    // nodes starting together, the first to deploy it wins.
    if (g_replica && g_engines->local().find(f.name)) continue;
    flows::deploy_request dr;
    dr.yaml = f.yaml;
    dr.initial = f.state;
    dr.disabled = f.disabled;
    dr.persist = false;
    if (g_replica) dr.expected_revision = core::revision_absent;
    auto deploying = g_control->deploy(std::move(dr));
    flows::control_reply r = co_await std::move(deploying);
    if (r.result == flows::control_reply::outcome::conflict) continue;
    if (!r.ok()) XLOG(error, "loading a pipeline at start failed: %s", r.message.c_str());
  }
  size_t loaded = g_engines->local().pipelines().size();
  auto first = listen_shard(uint16_t(g_cfg.api_port));
  bool ok = first.ok();
  uint16_t port = ok ? *first : 0;
  for (unsigned s = 1; s < io::shard_count() && ok; ++s) {
    auto r = co_await io::submit_to(s, [port] { return listen_shard(port); });
    ok = r.ok();
  }
  if (ok) {
    XLOG(info, "%zu pipelines loaded; listening on http://%s:%u while the write-ahead log is replayed", loaded,
         g_cfg.api_host.c_str(), unsigned(port));
    // Traces: admissions and lookups of unknown traces answer 503 until done.
    auto recovering = io::invoke_on_all([] { return recover_shard(); });
    auto counts = co_await std::move(recovering);
    size_t resumed = 0;
    for (const auto& c : counts) {
      ok = ok && c.ok();
      if (c) resumed += *c;
    }
    if (resumed) XLOG(info, "recovered %zu unfinished traces from the write-ahead log", resumed);
  }
  if (!ok) {
    co_await stop_everywhere(std::chrono::milliseconds(0), std::chrono::milliseconds(0));
    co_return 1;
  }
  auto grace = std::chrono::milliseconds(g_cfg.shutdown_timeout_ms);
  co_await io::invoke_on_all([] { http::set_ready(true); });
  XLOG(info, "xerv %s serving on %u shards at http://%s:%u%s", XERV_VERSION, io::shard_count(), g_cfg.api_host.c_str(),
       unsigned(port),
       g_cfg.metrics_port ? (" (metrics also on port " + std::to_string(g_cfg.metrics_port) + ")").c_str() : "");
  XLOG(debug, "config: api %s:%llu, shards %u, metrics %s (port %llu), max body %llu bytes, header timeout %llu ms, "
       "idle timeout %llu ms, %llu connections per shard, shutdown timeout %llu ms",
       g_cfg.api_host.c_str(), static_cast<unsigned long long>(g_cfg.api_port), io::shard_count(),
       g_cfg.metrics_enabled ? "on" : "off", static_cast<unsigned long long>(g_cfg.metrics_port),
       static_cast<unsigned long long>(g_cfg.max_body_bytes), static_cast<unsigned long long>(g_cfg.header_timeout_ms),
       static_cast<unsigned long long>(g_cfg.idle_timeout_ms), static_cast<unsigned long long>(g_cfg.connections_max),
       static_cast<unsigned long long>(g_cfg.shutdown_timeout_ms));
  int sig = co_await io::wait_for_signal();
  XLOG(info, "received %s: no new connections; in-flight requests have %lld ms", strsignal(sig),
       static_cast<long long>(grace.count()));
  co_await stop_everywhere(grace, std::chrono::milliseconds(g_cfg.drain_timeout_ms));
  co_return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) return usage(stderr);
  std::string cmd = argv[1];
  if (cmd == "version" || cmd == "--version") {
    printf("xerv %s\n", XERV_VERSION);
    return 0;
  }
  if (cmd == "help" || cmd == "--help" || cmd == "-h") return usage(stdout);
  if (cmd == "config-table") {  // the Markdown table in docs/configuration.md
    app::config scratch;
    printf("%s", app::declare_settings(scratch).table().c_str());
    return 0;
  }
  std::vector<std::string> rest_args(argv + 2, argv + argc);
  if (cmd == "validate") return app::cmd_validate(rest_args);
  if (cmd == "deploy") return app::cmd_deploy(rest_args);
  if (cmd == "list") return app::cmd_list(rest_args);
  if (cmd == "bench") return app::cmd_bench(rest_args);
  if (cmd == "inspect") return app::cmd_inspect(rest_args);
  if (cmd == "cluster") return app::cmd_cluster(rest_args);
  if (cmd != "serve") {
    fprintf(stderr, "xerv: unknown command '%s'\n", cmd.c_str());
    return usage(stderr);
  }
  std::vector<std::string> args(argv + 2, argv + argc), rest;
  for (size_t i = 0; i < args.size(); ++i) {
    if (args[i] == "--help" || args[i] == "-h") return usage(stdout);
    // A switch more than a setting: bare --wal-skip-corrupt means true.
    bool valued = i + 1 < args.size() && (args[i + 1] == "true" || args[i + 1] == "false");
    if (args[i] == "--wal-skip-corrupt" && !valued) args[i] = "--wal-skip-corrupt=true";
  }
  if (auto err = app::load_config(g_cfg, args, rest)) {
    fprintf(stderr, "xerv: %s\n", err->c_str());
    return 2;
  }
  if (!rest.empty()) {
    fprintf(stderr, "xerv: unknown option '%s' (see xerv --help)\n", rest.front().c_str());
    return 2;
  }
  io::set_log_level(g_cfg.log_level);
  io::set_log_format(g_cfg.log_format);
  core::set_clock_offset_ms(g_cfg.debug_clock_offset_ms);
  if (g_cfg.debug_clock_offset_ms)
    XLOG(warn, "the clock is shifted by %lld ms (XERV_DEBUG_CLOCK_OFFSET_MS): for tests only",
         static_cast<long long>(g_cfg.debug_clock_offset_ms));
  g_api.max_body_bytes = g_cfg.max_body_bytes;
  if (!lock_data_dir()) return 1;
  if (!load_startup_flows()) return 2;

  io::runtime_options opts;
  opts.shards = unsigned(g_cfg.shards);
  io::runtime rt(opts);
  if (!wal_fits_shards(rt.shard_count())) return 2;
  g_engines = std::make_unique<io::sharded<flows::engine>>(rt.shard_count());
  if (g_cfg.dispatch_backend == "memory")
    g_store = std::make_unique<backends::memory::pipeline_store>(g_cfg.data_dir + "/pipelines",
                                                                 std::move(g_stored.pipelines), g_stored.states);
  g_info.version = XERV_VERSION;
  g_info.backend = g_cfg.dispatch_backend;
  g_info.shards = rt.shard_count();
  g_info.started_ns = io::monotonic_ns();
  int code = rt.run(serve());
  g_api_ctx.reset();
  g_control.reset();
  g_store.reset();
  XLOG(info, "xerv stopped");
  return code;
}
