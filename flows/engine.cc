#include "flows/engine.h"

#include "core/metrics.h"
#include "io/log.h"
#include "io/reactor.h"

namespace xerv::flows {
namespace {

core::counter g_completed{"xerv_completed_traces_total", "Traces that completed"};
core::counter g_failed{"xerv_failed_traces_total", "Traces that failed or timed out"};
core::counter g_nodes{"xerv_nodes_executed_total", "Node executions finished (completed or failed)"};
core::gauge g_active{"xerv_active_traces", "Traces running now"};
core::gauge g_pending{"xerv_pending_traces", "Traces admitted and waiting for a pipeline slot"};
core::gauge g_queue{"xerv_dispatch_queue_depth", "Traces waiting in the dispatch queues (memory backend: pending)"};
core::histogram g_trace_seconds{"xerv_trace_duration_seconds", "Trace duration from start to end",
                                core::latency_buckets(), {"pipeline"}};
core::histogram g_node_seconds{"xerv_node_execution_seconds", "Node execution time", core::latency_buckets(),
                               {"node_type"}};

struct park {
  std::vector<std::coroutine_handle<>>& list;
  bool await_ready() const noexcept { return false; }
  void await_suspend(std::coroutine_handle<> h) { list.push_back(h); }
  void await_resume() const noexcept {}
};

// Records what the executor reports into the trace record.
class recorder final : public trace_observer {
 public:
  recorder(const compiled_flow& flow, trace_record& t, size_t logs_max) : _flow(flow), _t(t), _logs_max(logs_max) {}
  void node_started(uint32_t v) override {
    node_run& n = _t.nodes[_flow.vertices[v].name];
    n.status = node_status::running;
    n.started_ms = core::unix_ms_now();
    ++n.runs;
  }
  void node_finished(uint32_t v, node_status s, uint16_t port, core::value_ref, uint64_t duration_ns) override {
    const vertex& vx = _flow.vertices[v];
    node_run& n = _t.nodes[vx.name];
    n.status = s;
    n.port = s == node_status::completed ? vx.ports[port] : std::string();
    n.duration_us = duration_ns / 1000;
    if (!vx.is_trigger && s != node_status::skipped) {
      g_nodes.inc();
      g_node_seconds.observe(double(duration_ns) / 1e9, {vx.type->name});
    }
  }
  void node_log(uint32_t v, io::log_level level, std::string_view message) override {
    if (_t.logs.size() >= _logs_max) {
      ++_t.logs_dropped;
      return;
    }
    _t.logs.push_back({core::unix_ms_now(), level, _flow.vertices[v].name, std::string(message)});
    _t.wake_all();  // live log streams
  }

 private:
  const compiled_flow& _flow;
  trace_record& _t;
  size_t _logs_max;
};

}  // namespace

const char* to_string(pipeline_state s) {
  switch (s) {
    case pipeline_state::stopped: return "stopped";
    case pipeline_state::running: return "running";
    case pipeline_state::paused: return "paused";
    case pipeline_state::draining: return "draining";
  }
  return "unknown";
}

std::optional<pipeline_state> parse_pipeline_state(std::string_view s) {
  if (s == "stopped") return pipeline_state::stopped;
  if (s == "running") return pipeline_state::running;
  if (s == "paused") return pipeline_state::paused;
  if (s == "draining") return pipeline_state::draining;
  return std::nullopt;
}

void trace_record::wake_all() {
  for (auto h : std::exchange(waiters, {})) io::this_reactor().schedule(h);
}

engine::engine(engine_options opts) : _opts(opts) {}
engine::~engine() { ASSERT(_running.count() == 0, "engine destroyed with traces running"); }

bool engine::deploy(std::unique_ptr<compiled_flow> flow, pipeline_state state) {
  std::string name = flow->name;
  auto [it, fresh] = _pipelines.try_emplace(name);
  it->second.flow = std::shared_ptr<const compiled_flow>(std::move(flow));
  it->second.deployed_ms = core::unix_ms_now();
  if (fresh) it->second.state = state;
  return !fresh;
}

bool engine::remove(std::string_view name) {
  auto it = _pipelines.find(name);
  if (it == _pipelines.end()) return false;
  for (auto& t : it->second.pending) {
    t->status = trace_status::failed;
    t->error_message = "pipeline deleted before the trace started";
    t->finished_ms = core::unix_ms_now();
    t->wake_all();
    ++_finished_count;
    g_pending.add(-1);
    g_queue.add(-1);
  }
  _pipelines.erase(it);  // running traces keep their flow alive
  return true;
}

bool engine::set_state(std::string_view name, pipeline_state state) {
  auto it = _pipelines.find(name);
  if (it == _pipelines.end()) return false;
  pipeline& p = it->second;
  p.state = state;
  if (state == pipeline_state::draining && p.active == 0 && p.pending.empty()) p.state = pipeline_state::stopped;
  // Resuming may free queued work: paused pipelines keep their pending traces.
  while (p.state == pipeline_state::running && !p.pending.empty() && p.active < share(p)) {
    auto t = p.pending.front();
    p.pending.pop_front();
    g_pending.add(-1);
    g_queue.add(-1);
    start(p, std::move(t));
  }
  return true;
}

const pipeline* engine::find(std::string_view name) const {
  auto it = _pipelines.find(name);
  return it == _pipelines.end() ? nullptr : &it->second;
}

std::optional<std::pair<std::string, std::string>> engine::find_webhook(std::string_view method,
                                                                         std::string_view path) const {
  for (const auto& [name, p] : _pipelines)
    for (const auto& t : p.flow->triggers)
      if (t.type == "webhook" && t.path == path && t.method == method) return std::make_pair(name, t.id);
  return std::nullopt;
}

uint32_t engine::share(const pipeline& p) const {
  // Each shard enforces its share of the pipeline's limit (at least one).
  uint32_t limit = p.flow->settings.max_concurrent_executions;
  return std::max<uint32_t>(1, (limit + _opts.shard_count - 1) / _opts.shard_count);
}

admission engine::admit(std::string_view pipeline_name, std::string_view trigger_id, core::value input) {
  auto it = _pipelines.find(pipeline_name);
  if (it == _pipelines.end()) return {admit_error::pipeline_not_found, {}, nullptr};
  pipeline& p = it->second;
  const trigger_def* trig = p.flow->find_trigger(trigger_id);
  if (!trig) return {admit_error::trigger_not_found, {}, nullptr};
  if (p.state != pipeline_state::running) return {admit_error::not_running, to_string(p.state), nullptr};
  if (p.active >= share(p) && p.pending.size() >= _opts.pending_max) return {admit_error::queue_full, {}, nullptr};

  auto t = std::make_shared<trace_record>();
  t->id = core::new_trace_id(_opts.shard);
  t->pipeline = p.flow->name;
  t->version = p.flow->version;
  t->trigger = trig->id;
  t->created_ms = core::unix_ms_now();
  t->input = std::move(input);
  _traces.emplace(std::make_pair(t->id.hi, t->id.lo), t);
  ++p.started;
  if (p.active < share(p)) {
    start(p, t);
  } else {
    p.pending.push_back(t);
    g_pending.add(1);
    g_queue.add(1);
  }
  evict();
  return {admit_error::none, {}, t};
}

void engine::start(pipeline& p, std::shared_ptr<trace_record> t) {
  ++p.active;
  g_active.add(1);
  t->status = trace_status::running;
  t->started_ms = core::unix_ms_now();
  uint32_t trigger = p.flow->find_trigger(t->trigger)->vertex;
  auto spawned = io::spawn(_running, run(p.flow, std::move(t), trigger));
  ASSERT(spawned.ok(), "engine admitting after stop()");
}

io::task<void> engine::run(std::shared_ptr<const compiled_flow> flow, std::shared_ptr<trace_record> t,
                           uint32_t trigger) {
  recorder rec(*flow, *t, _opts.logs_per_trace_max);
  uint64_t t0 = io::monotonic_ns();
  trace_outcome out = co_await execute_trace(*flow, core::value(t->input.bytes()), t->id.to_string(), trigger, &rec);
  g_trace_seconds.observe(double(io::monotonic_ns() - t0) / 1e9, {flow->name});
  t->status = out.status;
  t->output = std::move(out.output);
  t->error_node = std::move(out.error_node);
  t->error_message = std::move(out.error_message);
  t->finished_ms = core::unix_ms_now();
  if (flow->settings.debug || t->status != trace_status::completed)
    XLOG(debug, "trace %s of %s: %s %s", t->id.to_string().c_str(), flow->name.c_str(), to_string(t->status),
         t->error_message.c_str());
  finished(flow->name, *t);
  t->wake_all();
}

void engine::finished(const std::string& name, trace_record& t) {
  g_active.add(-1);
  ++_finished_count;
  bool ok = t.status == trace_status::completed;
  (ok ? g_completed : g_failed).inc();
  auto it = _pipelines.find(name);
  if (it == _pipelines.end()) return;  // deleted meanwhile
  pipeline& p = it->second;
  --p.active;
  ++(ok ? p.completed : p.failed);
  if (p.state == pipeline_state::running && !p.pending.empty()) {
    auto next = p.pending.front();
    p.pending.pop_front();
    g_pending.add(-1);
    g_queue.add(-1);
    start(p, std::move(next));
  } else if (p.state == pipeline_state::draining && p.active == 0 && p.pending.empty()) {
    p.state = pipeline_state::stopped;
  }
  evict();
}

void engine::evict() {
  // Oldest first: the map is ordered by id, and ids are time-ordered. Running
  // traces are never evicted.
  uint64_t now = core::unix_ms_now();
  uint64_t max_age = uint64_t(_opts.trace_retention.count());
  for (auto it = _traces.begin(); it != _traces.end();) {
    const trace_record& t = *it->second;
    if (!t.finished()) {
      ++it;
      continue;
    }
    bool too_many = _finished_count > _opts.traces_kept_max;
    bool too_old = now - t.finished_ms > max_age;
    if (!too_many && !too_old) break;
    it = _traces.erase(it);
    --_finished_count;
  }
}

io::task<void> engine::wait_finished(std::shared_ptr<trace_record> t) {
  while (!t->finished()) co_await park{t->waiters};
}

io::task<void> engine::wait_change(std::shared_ptr<trace_record> t) {
  if (t->finished()) co_return;
  co_await park{t->waiters};
}

std::shared_ptr<trace_record> engine::find_trace(const core::trace_id& id) const {
  auto it = _traces.find(std::make_pair(id.hi, id.lo));
  return it == _traces.end() ? nullptr : it->second;
}

std::vector<std::shared_ptr<trace_record>> engine::list_traces(std::string_view pipeline_name,
                                                               std::optional<trace_status> status) const {
  std::vector<std::shared_ptr<trace_record>> out;
  for (auto it = _traces.rbegin(); it != _traces.rend(); ++it) {
    const auto& t = it->second;
    if (!pipeline_name.empty() && t->pipeline != pipeline_name) continue;
    if (status && t->status != *status) continue;
    out.push_back(t);
  }
  return out;
}

io::task<void> engine::stop() {
  for (auto& [name, p] : _pipelines) p.state = pipeline_state::draining;
  co_await _running.close();
}

}  // namespace xerv::flows
