#include "flows/engine.h"

#include "flows/nodes/structural.h"

#include "core/metrics.h"
#include "io/log.h"
#include "io/ops.h"
#include "io/reactor.h"
#include "io/strings.h"

namespace xerv::flows {
namespace {

constexpr size_t take_batch_max = 256;

core::counter g_completed{"xerv_completed_traces_total", "Traces that completed"};
core::counter g_failed{"xerv_failed_traces_total", "Traces that failed or timed out"};
core::counter g_nodes{"xerv_nodes_executed_total", "Node executions finished (completed or failed)"};
core::gauge g_active{"xerv_active_traces", "Traces running now"};
core::gauge g_pending{"xerv_pending_traces", "Traces admitted and waiting for a pipeline slot", {"pipeline"}};
core::gauge g_queue_depth{"xerv_queue_depth", "Messages of a queue not yet taken by a trace of its consumer", {"queue"}};
// Set by shard 0 alone (a scrape sums the shards): 0 closed, 1 open, 2 half-open.
core::gauge g_circuit{"xerv_circuit_state", "Circuit breaker per pipeline: 0 closed, 1 open, 2 half-open", {"pipeline"}};
core::counter g_circuit_opened{"xerv_circuit_opened_total", "Times a pipeline's circuit breaker opened", {"pipeline"}};
core::gauge g_waiting{"xerv_traces_waiting_for_pipeline",
                      "Recovered traces waiting for their pipeline (or trigger) to be deployed again"};
core::gauge g_suspended{"xerv_suspended_traces", "Traces waiting in a std::wait", {"pipeline"}};
core::counter g_resumes{"xerv_resumes_total", "Suspended traces resumed, by decision (expiries included)",
                        {"decision"}};
core::counter g_expiries{"xerv_suspension_expiries_total", "Suspensions that expired (timeout_action decided)",
                         {"pipeline"}};
core::histogram g_trace_seconds{"xerv_trace_duration_seconds", "Trace duration from start to end",
                                core::latency_buckets(), {"pipeline"}};
core::histogram g_node_seconds{"xerv_node_execution_seconds", "Node execution time", core::latency_buckets(),
                               {"node_type"}};

// A trace known only from its admission (replayed from the WAL, or delivered
// by the backend): pending until it runs again.
std::shared_ptr<trace_record> recovered_record(core::admission_record a) {
  auto t = std::make_shared<trace_record>();
  t->id = a.id;
  t->pipeline = std::move(a.pipeline);
  t->version = std::move(a.version);
  t->trigger = std::move(a.trigger);
  t->created_ms = a.created_ms;
  t->input = core::value(std::move(a.input));
  t->recovered = true;
  return t;
}

// A trace as its suspended record left it: admitted, its completed top-level
// nodes (outputs included) and its logs.
std::shared_ptr<trace_record> from_snapshot(suspended_record& s, std::vector<node_record>& nodes) {
  auto t = recovered_record(std::move(s.start));
  t->started_ms = s.started_ms;
  for (const auto& n : s.nodes) {
    node_run& run = t->nodes[n.node];
    run.status = node_status::completed;
    run.port = n.port;
    run.duration_us = n.duration_us;
    run.started_ms = n.finished_ms - std::min(n.finished_ms, n.duration_us / 1000);
    run.runs = 1;
  }
  t->logs = std::move(s.logs);
  t->logs_journaled = t->logs.size();
  nodes = std::move(s.nodes);
  return t;
}

struct park {
  std::vector<std::coroutine_handle<>>& list;
  bool await_ready() const noexcept { return false; }
  void await_suspend(std::coroutine_handle<> h) { list.push_back(h); }
  void await_resume() const noexcept {}
};

// Records what the executor reports into the trace record, and journals each
// completed top-level node with the log lines written since the last record.
class recorder final : public trace_observer {
 public:
  recorder(const compiled_flow& flow, trace_record& t, size_t logs_max, core::wal* wal, std::string& scratch)
      : _flow(flow), _t(t), _logs_max(logs_max), _wal(wal), _scratch(scratch) {}
  void node_started(uint32_t v) override {
    node_run& n = _t.nodes[_flow.vertices[v].name];
    n.status = node_status::running;
    n.started_ms = core::unix_ms_now();
    ++n.runs;
  }
  void node_finished(uint32_t v, node_status s, uint16_t port, core::value_ref output, uint64_t duration_ns) override {
    const vertex& vx = _flow.vertices[v];
    node_run& n = _t.nodes[vx.name];
    n.status = s;
    n.port = s == node_status::completed ? vx.ports[port] : std::string();
    n.duration_us = duration_ns / 1000;
    if (_wal && s == node_status::completed && vx.region == 0 && !vx.is_trigger) {
      std::span<const log_line> fresh(_t.logs.begin() + ptrdiff_t(_t.logs_journaled), _t.logs.end());
      encode(_scratch, node_view{_t.id, vx.name, n.port, core::unix_ms_now(), n.duration_us, output.bytes(), fresh});
      _t.logs_journaled = _t.logs.size();
      // Not journaled when the disk refuses writes or the record would be too
      // big: the node then runs again after a restart (at-least-once).
      if (_scratch.size() <= core::wal_record_max) (void)_wal->append(uint32_t(journal_type::node), _scratch);
    }
    if (_flow.has_wait && s == node_status::completed && vx.region == 0 && !vx.is_trigger)
      _t.done.push_back(node_record{_t.id, vx.name, n.port, core::unix_ms_now(), n.duration_us,
                                    std::string(output.bytes()), {}});
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
  core::wal* _wal;
  std::string& _scratch;
};

}  // namespace

void trace_record::wake_all() {
  for (auto h : std::exchange(waiters, {})) io::this_reactor().schedule(h);
}

engine::engine(engine_options opts) : _opts(opts), _idempotency(opts.idempotency) {
  ASSERT(_opts.queue, "an engine needs a dispatch backend");
  ASSERT(_opts.in_flight_max > 0);
  _consumer = _opts.queue->consume("shard-" + std::to_string(_opts.shard));
  auto spawned = io::spawn(_taking, take_loop());
  ASSERT(spawned.ok());
}

engine::~engine() {
  ASSERT(_running.count() == 0, "engine destroyed with traces running");
  ASSERT(_taking.count() == 0, "engine destroyed while taking traces: stop() it first");
}

// Takes what the backend has for this shard while there is room; the room is
// the shard's in-flight bound, so a flood of admissions waits in the backend.
io::task<void> engine::take_loop() {
  while (!_stop_taking.cancelled()) {
    if (_held >= _opts.in_flight_max) {
      auto room = _room.wait(_stop_taking);
      co_await room;
      continue;
    }
    // A bounded batch, then a yield: after a restart thousands of traces may be
    // deliverable at once, and each runs until its first suspension.
    auto taking = _consumer->take(std::min(_opts.in_flight_max - _held, take_batch_max), _stop_taking);
    std::vector<core::delivery> batch = co_await std::move(taking);
    for (auto& d : batch) {
      ++_held;
      deliver(std::move(d), nullptr);
    }
    if (batch.size() == take_batch_max) co_await io::yield();
  }
}

void engine::released() {
  ASSERT(_held > 0, "a trace ended that was never taken");
  if (_held-- == _opts.in_flight_max) _room.notify();
}

void engine::deliver(core::delivery d, const std::shared_ptr<trace_record>& admitted) {
  std::shared_ptr<trace_record> t;
  // The trace just admitted needs no lookup among the thousands kept.
  if (admitted && admitted->id == d.id) {
    t = admitted;
  } else {
    auto it = _traces.find(std::make_pair(d.id.hi, d.id.lo));
    if (it == _traces.end() || !it->second->undelivered) return redelivered(std::move(d));
    t = it->second;  // admitted here earlier: the engine has the trace already
  }
  t->undelivered = false;
  std::shared_ptr<pipeline> p = t->owner.lock();
  if (!p) return end_unrun(*t, "pipeline_deleted", "pipeline deleted before the trace started");
  --p->undelivered;
  if (p->state == pipeline_state::running || p->state == pipeline_state::draining) return start_or_queue(p, std::move(t));
  // Paused or stopped since it was admitted: it waits like the queued traces.
  t->owner = p;
  p->pending.push_back(std::move(t));
  g_pending.add(1, {p->flow->name});
}

// A trace this shard did not admit in this process: continued from the node
// records this shard's WAL holds for it, or run from the start.
void engine::redelivered(core::delivery d) {
  auto key = std::make_pair(d.id.hi, d.id.lo);
  recovered_trace rt;
  if (auto r = _resumed.find(key); r != _resumed.end()) {
    rt = std::move(r->second);
    _resumed.erase(r);
  } else if (auto r2 = _recovering.find(key); r2 != _recovering.end()) {
    rt = std::move(r2->second);
    _recovering.erase(r2);
  } else if (_suspended.count(key)) {
    // Its run ended in the suspended record the backend took as its end: a
    // stale delivery; the resume admits it again.
    released();
    return;
  } else if (auto known = _traces.find(key); known != _traces.end()) {
    // Held already (a duplicate delivery), or finished while the backend did not
    // hear it: acknowledge the end again.
    if (known->second->finished()) journal_end(*known->second);
    released();
    return;
  } else {
    auto a = core::decode_admission(d.record);
    std::optional<recovered_trace> c;
    if (a && !a->continuation.empty()) c = continued(std::move(*a));
    if (!a || (!a->continuation.empty() && !c)) {
      XLOG(error, "trace %s: its admission does not decode; it is dropped", d.id.to_string().c_str());
      released();
      return;
    }
    if (c) rt = std::move(*c);
    else rt.trace = recovered_record(std::move(*a));
    _traces.emplace(key, rt.trace);
    if (!rt.trace->hook_id.empty()) index_hook(rt.trace->hook_id, key);
    ++_recovered;  // one this shard's WAL did not hold
  }
  trace_record& t = *rt.trace;
  auto pit = _pipelines.find(t.pipeline);
  if (pit == _pipelines.end()) t.waiting_for = "pipeline '" + t.pipeline + "' is not deployed";
  else if (resume(pit->second, rt)) return;
  // Not failed: the operator may have started with the wrong pipelines dir.
  // The trace waits (its admission stays unacknowledged) until its pipeline is
  // deployed again.
  XLOG(warn, "trace %s: %s; it waits until that is deployed (or is discarded)", t.id.to_string().c_str(),
       t.waiting_for.c_str());
  ++_waiting_count;
  g_waiting.add(1);
  _waiting[t.pipeline].push_back(std::move(rt));
}

pipeline_state engine::install(std::shared_ptr<const compiled_flow> flow, uint64_t revision, pipeline_state state,
                               uint64_t deployed_ms) {
  ASSERT(flow);
  std::string name = flow->name;
  auto [it, fresh] = _pipelines.try_emplace(name);
  if (fresh) {
    it->second = std::make_shared<pipeline>();
    it->second->state = state;
  }
  std::shared_ptr<pipeline> p = it->second;
  ASSERT(revision > p->revision, "pipeline %s: revision %llu installed after %llu", name.c_str(),
         static_cast<unsigned long long>(revision), static_cast<unsigned long long>(p->revision));
  // Counts follow their trigger's id through an update.
  std::vector<pipeline::trigger_counts> counts(flow->triggers.size());
  for (size_t i = 0; i < counts.size() && p->flow; ++i)
    for (size_t j = 0; j < p->flow->triggers.size() && j < p->triggers.size(); ++j)
      if (p->flow->triggers[j].id == flow->triggers[i].id) counts[i] = p->triggers[j];
  p->triggers = std::move(counts);
  p->flow = std::move(flow);
  p->revision = revision;
  p->deployed_ms = deployed_ms;
  auto owns = [this](std::string_view pipeline, std::string_view trigger) {
    return trigger_owner(pipeline, trigger, _opts.shard_count) == _opts.shard;
  };
  _cron.install(p->flow, deployed_ms, owns, _recovery_pending ? nullptr : _opts.wal);
  if (_cron_sleep) _cron_sleep->cancel();  // its next instant may come sooner
  sync_watches(*p);
  // Recovered traces that waited for this pipeline (or for a trigger it now has).
  if (auto w = _waiting.find(name); w != _waiting.end()) {
    std::vector<recovered_trace> still;
    for (auto& rt : w->second)
      if (!resume(p, rt)) still.push_back(std::move(rt));
    size_t resumed = w->second.size() - still.size();
    _waiting_count -= resumed;
    g_waiting.add(-int64_t(resumed));
    if (still.empty()) _waiting.erase(w);
    else w->second = std::move(still);
  }
  return p->state;
}

bool engine::remove(std::string_view name) {
  auto it = _pipelines.find(name);
  if (it == _pipelines.end()) return false;
  std::shared_ptr<pipeline> p = std::move(it->second);
  _pipelines.erase(it);  // running traces keep their flow; their slots end with this deployment
  _cron.remove(name, _opts.wal);
  stop_watches(name);
  if (_opts.shard == 0) g_circuit.set(0, {name});
  for (auto& t : std::exchange(p->pending, {})) {
    g_pending.add(-1, {name});
    end_unrun(*t, "pipeline_deleted", "pipeline deleted before the trace started");
  }
  return true;
}

void engine::end_unrun(trace_record& t, std::string code, std::string message) {
  t.status = trace_status::failed;
  t.error_code = std::move(code);
  t.error_message = std::move(message);
  t.finished_ms = core::unix_ms_now();
  if (t.queued) dequeued(t);
  t.flow.reset();
  t.owner.reset();
  if (t.cron) cron_ended(t);
  journal_end(t);
  _finished.push_back(t.id);
  g_failed.inc();
  released();
  t.wake_all();
}

void engine::set_disabled(std::string_view name, const std::vector<std::string>& disabled) {
  auto it = _pipelines.find(name);
  if (it == _pipelines.end()) return;
  pipeline& p = *it->second;
  p.disabled = disabled;
  std::sort(p.disabled.begin(), p.disabled.end());
  for (size_t i = 0; i < p.triggers.size(); ++i)
    p.triggers[i].off = std::binary_search(p.disabled.begin(), p.disabled.end(), p.flow->triggers[i].id);
  sync_watches(p);
}

std::optional<pipeline_state> engine::set_state(std::string_view name, pipeline_state state) {
  auto it = _pipelines.find(name);
  if (it == _pipelines.end()) return std::nullopt;
  pipeline& p = *it->second;
  p.state = state;
  // Resuming or draining may free queued work (a drain runs what was admitted
  // before it); paused and stopped pipelines keep their pending traces.
  while ((p.state == pipeline_state::running || p.state == pipeline_state::draining) && !p.pending.empty() &&
         p.active < share(p) && !_running.closed())
    start_next(p);
  if (p.state == pipeline_state::draining && p.active == 0 && p.pending.empty() && p.undelivered == 0)
    p.state = pipeline_state::stopped;
  return p.state;
}

const pipeline* engine::find(std::string_view name) const {
  auto it = _pipelines.find(name);
  return it == _pipelines.end() ? nullptr : it->second.get();
}

std::optional<std::pair<std::string, std::string>> engine::find_queue(std::string_view name) const {
  for (const auto& [pname, p] : _pipelines)
    for (const auto& t : p->flow->triggers)
      if (t.type == "queue" && t.queue == name) return std::make_pair(pname, t.id);
  return std::nullopt;
}

io::task<enqueued> engine::enqueue(std::string queue, core::value payload, std::string key) {
  auto consumer = find_queue(queue);
  if (!consumer) co_return enqueued{{}, "no pipeline consumes it", std::string(error_codes::node_failed)};
  if (!_opts.router) co_return enqueued{{}, "no admission router", std::string(error_codes::node_failed)};
  auto admitting = _opts.router->admit_keyed(consumer->first, consumer->second, std::move(payload), std::move(key));
  co_return co_await std::move(admitting);
}

void engine::dequeued(trace_record& t) {
  t.queued = false;
  const trigger_def* trig = t.flow ? t.flow->find_trigger(t.trigger) : nullptr;
  if (!trig || trig->queue.empty()) return;
  g_queue_depth.add(-1, {trig->queue});
  // Counted in the deployment it was admitted into (gone if that was deleted),
  // under its trigger's id (an update may have moved it).
  std::shared_ptr<pipeline> p = t.owner.lock();
  for (size_t i = 0; p && i < p->flow->triggers.size(); ++i)
    if (p->flow->triggers[i].id == t.trigger && p->triggers[i].queued) --p->triggers[i].queued;
}

std::optional<std::pair<std::string, std::string>> engine::find_webhook(std::string_view method,
                                                                         std::string_view path) const {
  for (const auto& [name, p] : _pipelines)
    for (const auto& t : p->flow->triggers)
      if (t.type == "webhook" && t.path == path && t.method == method) return std::make_pair(name, t.id);
  return std::nullopt;
}

uint32_t engine::share(const pipeline& p) const {
  // Each shard enforces its share of the pipeline's limit (at least one).
  uint32_t limit = p.flow->settings.max_concurrent_executions;
  return std::max<uint32_t>(1, (limit + _opts.shard_count - 1) / _opts.shard_count);
}

void engine::attach_storage(core::wal* wal, core::arena* arena) {
  _opts.wal = wal;
  _opts.arena = arena;
  if (!wal) return;
  wal->on_retire([this](uint64_t segment) {
    bool keys = _idempotency.relog(segment, *_opts.wal, core::unix_ms_now());
    return _cron.relog(segment, *_opts.wal) && keys;
  });
  wal->on_held([this](uint64_t segment) {
    if (_relogging || _stop_taking.cancelled() || !_opts.wal->healthy()) return;
    if (_relog_idle == std::pair{segment, _suspension_adds}) return;  // none there, none added since
    _relogging = true;
    auto spawned = io::spawn(_timers, relog_suspensions(segment));
    if (!spawned) _relogging = false;
  });
}

admission engine::admit(std::string_view pipeline_name, std::string_view trigger_id, core::value input,
                        std::string_view idempotency_key, const cron_fire* fire) {
  auto it = _pipelines.find(pipeline_name);
  if (it == _pipelines.end()) return {admit_error::pipeline_not_found, {}, nullptr};
  const std::shared_ptr<pipeline>& owner = it->second;
  pipeline& p = *owner;
  const trigger_def* trig = p.flow->find_trigger(trigger_id);
  if (!trig) return {admit_error::trigger_not_found, {}, nullptr};
  uint64_t now = core::unix_ms_now();
  // A key seen before answers with its trace whatever the pipeline's state now.
  if (!idempotency_key.empty())
    if (auto seen = _idempotency.find(pipeline_name, idempotency_key, now)) {
      auto suspended = _suspended.find({seen->hi, seen->lo});
      admission a{admit_error::none, {}, suspended != _suspended.end() ? summary(suspended->second) : find_trace(*seen)};
      a.replayed = true;
      a.replayed_id = *seen;
      return a;
    }
  pipeline::trigger_counts& counts = p.triggers[size_t(trig - p.flow->triggers.data())];
  if (counts.off) return {admit_error::trigger_disabled, {}, nullptr};
  // A queue's capacity is split over the shards, as the pipeline's slots are.
  uint32_t capacity = (trig->capacity + _opts.shard_count - 1) / _opts.shard_count;
  if (!trig->queue.empty() && counts.queued >= capacity)
    return {admit_error::queue_full, std::to_string(trig->capacity), nullptr};
  if (p.state != pipeline_state::running) return {admit_error::not_running, to_string(p.state), nullptr};
  circuit_state breaker = p.breaker.at(now);
  if (breaker == circuit_state::open) {
    uint64_t secs = (p.breaker.decided.open_until_ms - now + 999) / 1000;
    return {admit_error::circuit_open, std::to_string(secs), nullptr};
  }
  // Half-open: a few trial traces at a time; the rest retry once they end.
  if (breaker == circuit_state::half_open && p.breaker.trials >= _opts.circuit.probes)
    return {admit_error::circuit_open, "1", nullptr};
  // Every trace of this deployment the shard holds, delivered or not, counts.
  if (p.active + p.pending.size() + p.undelivered >= share(p) + _opts.pending_max)
    return {admit_error::pending_full, std::to_string(_opts.pending_max), nullptr};
  if (_running.closed()) return {admit_error::unavailable, "shutting down", nullptr};
  if (_recovery_pending) return {admit_error::unavailable, "recovering the write-ahead log", nullptr};
  if (_opts.wal && !_opts.wal->healthy())
    return {admit_error::unavailable,
            _opts.wal->failed() ? "the write-ahead log failed (" + _opts.wal->failure() + "); restart xerv"
                                : "the write-ahead log cannot write (" + _opts.wal->failure() + ")",
            nullptr};

  auto t = std::make_shared<trace_record>();
  t->id = core::new_trace_id(_opts.shard);
  t->pipeline = p.flow->name;
  t->version = p.flow->version;
  t->trigger = trig->id;
  t->flow = p.flow;
  t->trigger_vertex = trig->vertex;
  t->created_ms = now;
  t->input = std::move(input);
  // The key's (or fire's) record goes first: the admission's durability then covers it.
  if (!idempotency_key.empty()) {
    _idempotency.insert(t->pipeline, idempotency_key, t->id, now, _opts.wal);
    t->idempotency_key = std::string(idempotency_key);
  }
  if (fire) {
    _cron.journal(*fire, t->id, _opts.wal);
    t->cron = fire->generation;
  }
  auto ticket = _opts.queue->admit(
      core::admission{t->id, t->created_ms, t->pipeline, t->version, t->trigger, t->input.bytes()});
  if (!ticket) {
    if (!idempotency_key.empty()) _idempotency.erase(t->pipeline, idempotency_key);
    if (ticket.error() == core::dispatch_errc::too_large)
      return {admit_error::unavailable, "the input is larger than the dispatch backend can hold", nullptr};
    return {admit_error::unavailable, "the dispatch backend cannot take it (" + ticket.error().message() + ")", nullptr};
  }
  t->admitted = *ticket;
  t->circuit_generation = p.breaker.decided.generation;
  t->circuit_trial = breaker == circuit_state::half_open;
  if (t->circuit_trial) ++p.breaker.trials;
  t->ack = ack_state::waiting;
  t->undelivered = true;
  t->owner = owner;
  ++p.undelivered;
  _traces.emplace(std::make_pair(t->id.hi, t->id.lo), t);
  ++p.started;
  ++counts.fires;
  counts.last_ms = now;
  if (!trig->queue.empty()) {
    ++counts.queued;
    t->queued = true;
    g_queue_depth.add(1, {trig->queue});
  }
  evict();
  take_ready(t);
  return {admit_error::none, {}, t};
}

// What the backend has ready now, taken in this turn (the memory backend has
// the admission just made): a local trace starts as it is admitted, with no
// hop through take_loop.
void engine::take_ready(const std::shared_ptr<trace_record>& admitted) {
  if (_held >= _opts.in_flight_max || _stop_taking.cancelled()) return;
  for (auto& d : _consumer->poll(std::min(_opts.in_flight_max - _held, take_batch_max))) {
    ++_held;
    deliver(std::move(d), admitted);
  }
}

void engine::start_or_queue(const std::shared_ptr<pipeline>& p, std::shared_ptr<trace_record> t) {
  t->owner = p;
  if (p->active < share(*p)) return start(*p, std::move(t));
  p->pending.push_back(std::move(t));
  g_pending.add(1, {p->flow->name});
}

void engine::start_next(pipeline& p) {
  auto t = std::move(p.pending.front());
  p.pending.pop_front();
  g_pending.add(-1, {p.flow->name});
  start(p, std::move(t));
}

void engine::start(pipeline& p, std::shared_ptr<trace_record> t) {
  // The trace runs the version it was admitted with, whatever was deployed since.
  ASSERT(t->flow && t->trigger_vertex < t->flow->vertices.size(), "trace %s has no flow to run",
         t->id.to_string().c_str());
  ++p.active;
  g_active.add(1);
  if (t->queued) dequeued(*t);
  t->status = trace_status::running;
  t->started_ms = core::unix_ms_now();
  auto spawned = io::spawn(_running, run(std::move(t)));
  ASSERT(spawned.ok(), "engine admitting after stop()");
}

io::task<bool> engine::wait_acknowledged(std::shared_ptr<trace_record> t) {
  if (t->ack == ack_state::waiting) {
    auto durable = _opts.queue->durable(t->admitted);
    auto r = co_await std::move(durable);
    // The first answer wins: a later retry may write the record, but whoever
    // heard "refused" already answered 503, so the trace must not run.
    if (t->ack == ack_state::waiting) {
      t->ack = r ? ack_state::durable : ack_state::refused;
      // Never admitted: the key is free again (a retry starts a trace).
      if (!r && !t->idempotency_key.empty()) _idempotency.erase(t->pipeline, t->idempotency_key);
    }
  }
  co_return t->ack == ack_state::durable;
}

// The end record is the trace's acknowledgement to the backend.
void engine::journal_end(trace_record& t) {
  std::string_view output;
  if (t.output.ref().valid() && t.status == trace_status::completed) output = t.output.bytes();
  std::span<const log_line> fresh(t.logs.begin() + ptrdiff_t(t.logs_journaled), t.logs.end());
  encode(_scratch, ended_view{t.id, uint8_t(t.status), t.finished_ms, t.error_node, t.error_message, output, fresh,
                              t.error_code});
  t.logs_journaled = t.logs.size();
  if (_scratch.size() > core::wal_record_max) {
    // Journaling it whole is impossible, and leaving it unjournaled would run the
    // trace again after every restart: it ends failed, and says why.
    t.status = trace_status::failed;
    t.output = core::value();
    t.error_code = "output_too_large";
    t.error_message = "the trace's output and logs (" + std::to_string(_scratch.size()) +
                      " bytes) exceed what a write-ahead log record can hold";
    encode(_scratch, ended_view{t.id, uint8_t(t.status), t.finished_ms, t.error_node, t.error_message, {}, {},
                                t.error_code});
  }
  // Refused (the disk is failing): the trace stays unacknowledged, so it runs
  // again after a restart.
  auto acked = _consumer->ack(t.id, _scratch);
  t.end_refused = !acked;
  t.ended = acked ? *acked : 0;
}

io::task<void> engine::run(std::shared_ptr<trace_record> t) {
  std::shared_ptr<const compiled_flow> flow = t->flow;  // the trace drops its copy when it ends
  auto ack = wait_acknowledged(t);
  bool acked = co_await std::move(ack);
  if (!acked) {
    // Never acknowledged: end it, and journal that, so a restart does not run it.
    t->status = trace_status::failed;
    t->error_code = "unavailable";
    t->error_message = "not admitted: the write-ahead log could not write the trace's start (disk full?)";
    t->finished_ms = core::unix_ms_now();
    journal_end(*t);
    finished(*t);
    co_return;
  }
  t->wake_all();  // acknowledged
  recorder rec(*flow, *t, _opts.logs_per_trace_max, _opts.wal, _scratch);
  uint64_t t0 = io::monotonic_ns();
  execution_options eo{_opts.arena, t->replay.get(), &_shutdown, this};
  auto running = execute_trace(*flow, core::value(t->input.bytes()), t->id.to_string(), t->trigger_vertex, &rec, eo);
  trace_outcome out = co_await std::move(running);
  t->replay.reset();
  if (out.aborted) {
    // Shutdown: no end record, so the trace resumes after the restart.
    t->status = trace_status::pending;
    finished(*t);
    co_return;
  }
  g_trace_seconds.observe(double(io::monotonic_ns() - t0) / 1e9, {flow->name});
  uint64_t finished_ms = core::unix_ms_now();
  // Before the trace shows its end (a waiter woken by a log line may look any
  // time now): a failure that opens the breaker has opened it on every shard
  // by the time anyone hears of the failure and can send the next trace.
  if (out.status == trace_status::suspended) {
    t->finished_ms = finished_ms;
    suspend(*t, *flow, std::move(*out.suspended));
    finished(*t);
    co_return;
  }
  if (auto event = circuit_outcome(*t, out.status, finished_ms)) {
    if (_opts.circuit_judge) {
      auto reporting = _opts.circuit_judge->report(std::move(*event));
      co_await std::move(reporting);
    } else if (auto d = circuit_decide(*event, circuit_window(event->pipeline, finished_ms), finished_ms)) {
      apply_circuit(event->pipeline, *d);
    }
  }
  t->status = out.status;
  t->output = std::move(out.output);
  t->error_node = std::move(out.error_node);
  t->error_code = std::move(out.error_code);
  t->error_message = std::move(out.error_message);
  t->finished_ms = finished_ms;
  if (flow->settings.debug || t->status != trace_status::completed)
    XLOG(debug, "trace %s of %s: %s %s", t->id.to_string().c_str(), flow->name.c_str(), to_string(t->status),
         t->error_message.c_str());
  journal_end(*t);
  finished(*t);
}

std::optional<circuit_event> engine::circuit_outcome(trace_record& t, trace_status status, uint64_t now_ms) {
  std::shared_ptr<pipeline> p = t.owner.lock();
  if (!p) return std::nullopt;  // deleted: its breaker went with it
  circuit& c = p->breaker;
  bool ok = status == trace_status::completed;
  if (t.circuit_trial) return circuit_event{p->flow->name, t.circuit_generation, true, ok};
  if (t.circuit_generation != c.decided.generation) return std::nullopt;  // decided since it was admitted
  c.window.add(ok, now_ms, _opts.circuit.window_ms);
  if (ok) return std::nullopt;
  return circuit_event{p->flow->name, t.circuit_generation, false, false};
}

circuit_counts engine::circuit_window(std::string_view name, uint64_t now_ms) const {
  const pipeline* p = find(name);
  return p ? p->breaker.window.total(now_ms, _opts.circuit.window_ms) : circuit_counts{};
}

std::optional<circuit_decision> engine::circuit_decide(const circuit_event& e, circuit_counts summed, uint64_t now_ms) {
  auto it = _pipelines.find(e.pipeline);
  if (it == _pipelines.end()) return std::nullopt;
  pipeline& p = *it->second;
  return decide(p.breaker, e, summed, p.flow->settings.circuit_breaker_threshold, _opts.circuit, now_ms);
}

void engine::apply_circuit(std::string_view name, const circuit_decision& d) {
  auto it = _pipelines.find(name);
  if (it == _pipelines.end()) return;
  it->second->breaker.apply(d);
  if (_opts.shard != 0) return;
  bool open = d.state == circuit_state::open;
  g_circuit.set(open ? 1 : 0, {name});
  if (!open) {
    XLOG(info, "pipeline %.*s: circuit breaker closed", int(name.size()), name.data());
    return;
  }
  g_circuit_opened.inc({name});
  XLOG(warn, "pipeline %.*s: circuit breaker open for %llu ms (too many failed traces)", int(name.size()), name.data(),
       static_cast<unsigned long long>(_opts.circuit.open_ms));
  auto spawned = io::spawn(_timers, half_open_gauge(std::string(name), d.generation, _opts.circuit.open_ms));
  (void)spawned;  // refused only after stop(): the gauge no longer matters
}

io::task<void> engine::half_open_gauge(std::string name, uint64_t generation, uint64_t open_ms) {
  auto r = co_await io::sleep_for(std::chrono::milliseconds(open_ms), &_stop_taking);
  if (!r) co_return;
  auto it = _pipelines.find(name);
  if (it != _pipelines.end() && it->second->breaker.decided.generation == generation) g_circuit.set(2, {name});
}

void engine::finished(trace_record& t) {
  g_active.add(-1);
  // The slot belongs to the deployment the trace was admitted into; if that was
  // deleted meanwhile, no pipeline's accounting changes.
  std::shared_ptr<pipeline> p = std::exchange(t.owner, {}).lock();
  t.flow.reset();
  bool aborted = t.status == trace_status::pending;  // at shutdown: resumes after the restart
  if (t.cron) cron_ended(t);
  key_t k{t.id.hi, t.id.lo};
  if (t.status == trace_status::suspended && _suspended.count(k)) {
    _traces.erase(k);  // its small entry and its record stand for it now
  } else if (!aborted) {
    _finished.push_back(t.id);
    bool ok = t.status == trace_status::completed;
    if (t.status != trace_status::suspended) {  // (a suspension whose record the backend refused)
      (ok ? g_completed : g_failed).inc();
      if (p) ++(ok ? p->completed : p->failed);
    }
  }
  if (p) {
    ASSERT(p->active > 0, "pipeline %s: a trace ended with no slot taken", p->flow->name.c_str());
    --p->active;
    if (t.circuit_trial) --p->breaker.trials;
    bool taking = p->state == pipeline_state::running || p->state == pipeline_state::draining;
    if (taking && !p->pending.empty() && !_running.closed()) start_next(*p);
    else if (p->state == pipeline_state::draining && p->active == 0 && p->pending.empty() && p->undelivered == 0)
      p->state = pipeline_state::stopped;
  }
  if (!aborted) evict();
  released();
  t.wake_all();
}

void engine::evict() {
  // In the order traces finished, so running traces (however many, however old)
  // are never walked over on the admission path.
  uint64_t now = core::unix_ms_now();
  uint64_t max_age = uint64_t(_opts.trace_retention.count());
  while (!_finished.empty()) {
    auto it = _traces.find(std::make_pair(_finished.front().hi, _finished.front().lo));
    if (it == _traces.end()) {  // gone already
      _finished.pop_front();
      continue;
    }
    bool too_many = _finished.size() > _opts.traces_kept_max;
    bool too_old = now - it->second->finished_ms > max_age;
    if (!too_many && !too_old) break;
    unindex_hook(*it->second);
    _traces.erase(it);
    _finished.pop_front();
  }
}

io::task<bool> engine::wait_finished(std::shared_ptr<trace_record> t) {
  while (!t->finished() && !_shutdown.cancelled()) co_await park{t->waiters};
  if (!t->finished()) co_return false;  // stopped by shutdown: resumes after the restart
  if (t->end_refused) co_return false;
  auto durable = _opts.queue->durable(t->ended);
  auto r = co_await std::move(durable);
  co_return r.ok();
}

io::task<void> engine::wait_change(std::shared_ptr<trace_record> t) {
  if (t->finished() || _shutdown.cancelled()) co_return;
  co_await park{t->waiters};
}

std::shared_ptr<trace_record> engine::find_trace(const core::trace_id& id) const {
  auto it = _traces.find(std::make_pair(id.hi, id.lo));
  return it == _traces.end() ? nullptr : it->second;
}

engine::trace_page engine::list_traces(std::string_view pipeline_name, std::optional<trace_status> status,
                                       size_t max) const {
  trace_page out;
  bool suspended = !status || *status == trace_status::suspended;
  auto t = _traces.rbegin();
  auto s = _suspended.rbegin();
  // Both maps are by id, which is time order: merged, newest first.
  for (;;) {
    while (t != _traces.rend() && ((!pipeline_name.empty() && t->second->pipeline != pipeline_name) ||
                                   (status && t->second->status != *status)))
      ++t;
    while (suspended && s != _suspended.rend() && !pipeline_name.empty() && s->second.info.pipeline != pipeline_name)
      ++s;
    bool has_t = t != _traces.rend(), has_s = suspended && s != _suspended.rend();
    if (!has_t && !has_s) break;
    ++out.total;
    if (has_s && (!has_t || s->first > t->first)) {
      if (out.newest.size() < max) out.newest.push_back(summary(s->second));
      ++s;
    } else {
      if (out.newest.size() < max) out.newest.push_back(t->second);
      ++t;
    }
  }
  return out;
}

io::task<void> engine::stop(std::chrono::milliseconds grace) {
  // Admitted traces not taken yet stay with the backend (and in the WAL).
  _stop_taking.cancel(io::errc::closed);
  if (_cron_sleep) _cron_sleep->cancel();
  for (auto& [key, w] : _watches) w->stop();
  _watches.clear();
  co_await _taking.close();
  co_await _timers.close();
  for (auto& [name, p] : _pipelines) p->state = pipeline_state::draining;
  if (_running.count() && grace.count() > 0) {
    XLOG(info, "waiting up to %lld ms for %zu running traces", static_cast<long long>(grace.count()), _running.count());
    io::deadline limit(grace, _shutdown);
    co_await _running.close();
  } else {
    _shutdown.cancel(io::errc::closed);
    co_await _running.close();
  }
  if (!_shutdown.cancelled()) _shutdown.cancel(io::errc::closed);
  // Whoever waits on a trace that will not finish now (queued, or stopped
  // above) hears it: wait_finished() answers false, log streams end.
  for (auto& [key, t] : _traces) t->wake_all();
}

}  // namespace xerv::flows

namespace xerv::flows {

void engine::replay(const core::wal_record& r) {
  auto key = [](const core::trace_id& id) { return std::make_pair(id.hi, id.lo); };
  switch (journal_type(r.type)) {
    case journal_type::idempotency:
      if (_idempotency.replay(r, core::unix_ms_now())) return;
      break;
    case journal_type::cron:
      if (_cron.replay(r)) return;
      break;
    case journal_type::started: {
      auto rec = decode_started(r.payload);
      if (!rec) break;
      recovered_trace& rt = _recovering[key(rec->id)];
      if (rec->continuation.empty()) {
        rt = recovered_trace{recovered_record(std::move(*rec)), {}, {}, {}};
        return;
      }
      auto c = continued(std::move(*rec));  // a resume: it goes on from its suspension
      if (!c) break;
      rt = std::move(*c);
      return;
    }
    case journal_type::node: {
      auto rec = decode_node(r.payload);
      if (!rec) break;
      // Records of a trace whose start was deleted by retention are ignored.
      if (auto it = _recovering.find(key(rec->id)); it != _recovering.end()) it->second.nodes.push_back(std::move(*rec));
      return;
    }
    case journal_type::ended: {
      if (auto h = core::decode_final_header(r.payload); h && h->status == suspended_status) {
        auto sr = decode_suspended(r.payload);
        if (!sr) break;
        // Self-contained: its admission may have gone with retention (and
        // the newest copy, if it was written again, is the one that counts).
        // Only its small entry is kept; the rest stays in the record.
        recovered_trace& rt = _recovering[key(sr->start.id)];
        rt = recovered_trace{};
        sr->start.input.clear();
        rt.trace = recovered_record(sr->start);
        rt.trace->status = trace_status::suspended;
        rt.trace->started_ms = sr->started_ms;
        rt.suspended_at = core::wal_location::of(r);
        sr->nodes.clear();
        sr->logs.clear();
        rt.suspension = std::move(*sr);
        return;
      }
      auto rec = decode_ended(r.payload);
      if (!rec) break;
      auto it = _recovering.find(key(rec->id));
      if (it == _recovering.end()) return;
      trace_record& t = *it->second.trace;
      t.status = trace_status(rec->status);
      t.finished_ms = rec->finished_ms;
      t.error_node = std::move(rec->error_node);
      t.error_code = std::move(rec->error_code);
      t.error_message = std::move(rec->error_message);
      if (!rec->output.empty()) t.output = core::value(std::move(rec->output));
      for (auto& l : rec->logs) t.logs.push_back(std::move(l));
      return;
    }
  }
  XLOG(warn, "WAL record %llu (type %u) does not decode; ignored", static_cast<unsigned long long>(r.lsn), r.type);
}

size_t engine::resume_recovered() {
  auto admitted = [this](const core::trace_id& id) { return _recovering.count({id.hi, id.lo}) > 0; };
  _idempotency.end_replay(admitted);
  _cron.end_replay(admitted, _opts.wal);
  size_t unfinished = 0;
  uint64_t now = core::unix_ms_now();
  for (auto it = _recovering.begin(); it != _recovering.end();) {
    trace_record& t = *it->second.trace;
    // Node records first: the end record's lines come after them.
    std::vector<log_line> logs;
    for (auto& n : it->second.nodes) {
      node_run& run = t.nodes[n.node];
      run.status = node_status::completed;
      run.port = n.port;
      run.duration_us = n.duration_us;
      run.started_ms = n.finished_ms - std::min(n.finished_ms, n.duration_us / 1000);
      run.runs = 1;
      for (auto& l : n.logs) logs.push_back(std::move(l));
    }
    for (auto& l : t.logs) logs.push_back(std::move(l));
    t.logs = std::move(logs);
    t.logs_journaled = t.logs.size();
    if (t.status == trace_status::suspended && it->second.suspension) {
      const suspended_record& sr = *it->second.suspension;
      suspended_entry e;
      e.info = {t.id, sr.hook_id, t.pipeline, sr.node, sr.suspended_ms, sr.expires_ms, core::value(sr.metadata)};
      e.version = t.version;
      e.trigger = t.trigger;
      e.trace_created_ms = t.created_ms;
      e.started_ms = t.started_ms;
      e.timeout_action = sr.timeout_action;
      e.at = *it->second.suspended_at;
      if (_opts.wal) _opts.wal->trace_started(e.at.segment);  // held until the resume
      add_suspension(std::move(e));
      it = _recovering.erase(it);
      continue;
    }
    bool kept = !t.finished() || now - t.finished_ms <= uint64_t(_opts.trace_retention.count());
    // A resumed trace answers a second resume by its hook with not_suspended.
    if (kept && !t.hook_id.empty()) index_hook(t.hook_id, it->first);
    if (t.finished()) {
      if (kept) {
        _finished.push_back(t.id);
        _traces.emplace(it->first, std::move(it->second.trace));
      }
      it = _recovering.erase(it);
      continue;
    }
    // Visible (pending) now; it runs once the backend delivers it again.
    _traces.emplace(it->first, it->second.trace);
    ++unfinished;
    ++it;
  }
  _recovered += unfinished;
  _recovery_pending = false;
  evict();
  auto spawned = io::spawn(_timers, expiry_loop());  // expiries passed while down fire now
  // Recovered traces of cron triggers still run: they count for overlap.
  for (auto& [k, rt] : _recovering) rt.trace->cron = _cron.started(rt.trace->pipeline, rt.trace->trigger);
  if (spawned) spawned = io::spawn(_timers, cron_loop());  // so do missed cron instants, per their policy
  (void)spawned;
  for (auto& [name, p] : _pipelines) sync_watches(*p);
  return unfinished;
}

bool engine::resume(const std::shared_ptr<pipeline>& p, recovered_trace& rt) {
  std::shared_ptr<trace_record> t = rt.trace;
  const trigger_def* trig = p->flow->find_trigger(t->trigger);
  if (!trig) {
    t->waiting_for = "pipeline '" + t->pipeline + "' has no trigger '" + t->trigger + "'";
    return false;
  }
  const compiled_flow& f = *p->flow;
  if (f.version != t->version)
    XLOG(warn, "trace %s started on version %s of %s; it resumes on version %s", t->id.to_string().c_str(),
         t->version.c_str(), f.name.c_str(), f.version.c_str());
  t->waiting_for.clear();
  t->flow = p->flow;
  t->trigger_vertex = trig->vertex;
  t->replay = std::make_shared<replay_map>();
  for (auto& n : rt.nodes) {
    auto v = f.find(n.node);
    if (!v || f.vertices[*v].region != 0) continue;
    const auto& ports = f.vertices[*v].ports;
    auto port = std::find(ports.begin(), ports.end(), n.port);
    if (port == ports.end()) continue;
    if (f.has_wait) t->done.push_back(n);  // the next suspension's snapshot holds them too
    (*t->replay)[*v] = replayed_node{uint16_t(port - ports.begin()), core::value(std::move(n.output))};
  }
  rt.nodes.clear();
  ++p->started;
  // A message whose trace had not got anywhere is back in its queue's depth.
  if (!trig->queue.empty() && t->replay->empty()) {
    ++p->triggers[size_t(trig - f.triggers.data())].queued;
    t->queued = true;
    g_queue_depth.add(1, {trig->queue});
  }
  XLOG(debug, "resuming trace %s of %s after %zu completed nodes", t->id.to_string().c_str(), f.name.c_str(),
       t->replay->size());
  // Recovered traces were in flight before the crash: they start whatever the
  // pipeline's state while its concurrency limit allows; the rest queue like new
  // traces (a paused pipeline holds them until it runs again).
  start_or_queue(p, std::move(t));
  return true;
}

io::task<size_t> engine::discard_waiting(std::string pipeline_name, std::optional<core::trace_id> id) {
  auto w = _waiting.find(pipeline_name);
  if (w == _waiting.end()) co_return 0;
  size_t n = 0;
  core::dispatch_ticket last = 0;
  std::vector<recovered_trace> kept;
  for (auto& rt : w->second) {
    if (id && rt.trace->id != *id) {
      kept.push_back(std::move(rt));
      continue;
    }
    end_unrun(*rt.trace, "discarded", "discarded by an operator while it waited: " + rt.trace->waiting_for);
    rt.trace->waiting_for.clear();
    last = std::max(last, rt.trace->ended);
    ++n;
  }
  _waiting_count -= n;
  g_waiting.add(-int64_t(n));
  if (kept.empty()) _waiting.erase(w);
  else w->second = std::move(kept);
  evict();
  // Answered once a crash cannot bring them back; a failure shows in /health,
  // and they wait again after a restart.
  auto durable = _opts.queue->durable(last);
  (void)co_await std::move(durable);
  co_return n;
}

// ---- suspensions ----

// The run ended in a std::wait: its final record is the suspended record, so
// the backend is done with it and the trace holds no queue slot. Once that is
// accepted the trace leaves the store (finished()): the engine keeps a small
// entry and where the record is.
void engine::suspend(trace_record& t, const compiled_flow& flow, suspension sp) {
  suspended_record r;
  r.start = {t.id, t.created_ms, t.pipeline, t.version, t.trigger, std::string(t.input.bytes()), {}};
  r.suspended_ms = t.finished_ms;
  r.started_ms = t.started_ms;
  r.hook_id = std::move(sp.hook_id);
  r.node = flow.vertices[sp.vertex].name;
  r.metadata = std::string(sp.metadata.bytes());
  r.expires_ms = sp.timeout_ms ? t.finished_ms + sp.timeout_ms : 0;
  r.timeout_action = sp.timeout_action;
  r.nodes = std::move(t.done);
  r.logs = t.logs;
  encode(_scratch, r);
  if (_scratch.size() > core::wal_record_max) {
    t.status = trace_status::failed;
    t.error_code = "output_too_large";
    t.error_message = "the suspended trace's outputs and logs (" + std::to_string(_scratch.size()) +
                      " bytes) exceed what a write-ahead log record can hold";
    journal_end(t);
    return;
  }
  t.status = trace_status::suspended;
  if (t.hook_id != r.hook_id) unindex_hook(t);  // a later wait of a resumed trace: its new hook
  t.hook_id = r.hook_id;
  t.nodes[r.node].status = node_status::suspended;
  t.logs_journaled = t.logs.size();
  auto acked = _consumer->ack(t.id, _scratch);
  t.end_refused = !acked;
  t.ended = acked ? *acked : 0;
  if (!acked) return;  // still in flight: after a restart it runs to this wait again
  suspended_entry e;
  e.info = {t.id, r.hook_id, t.pipeline, r.node, r.suspended_ms, r.expires_ms, core::value(std::move(r.metadata))};
  e.version = t.version;
  e.trigger = t.trigger;
  e.trace_created_ms = t.created_ms;
  e.started_ms = t.started_ms;
  e.timeout_action = r.timeout_action;
  // With the memory backend the record went to this shard's WAL just now.
  if (_opts.wal && *acked && _opts.wal->last_location().lsn == *acked) {
    e.at = _opts.wal->last_location();
    _opts.wal->trace_started(e.at.segment);  // held until the resume
  } else {
    e.record = _scratch;
  }
  XLOG(debug, "trace %s suspended at %s (hook %s)", t.id.to_string().c_str(), e.info.node.c_str(),
       e.info.hook_id.c_str());
  add_suspension(std::move(e));
}

void engine::add_suspension(suspended_entry e) {
  key_t k{e.info.id.hi, e.info.id.lo};
  index_hook(e.info.hook_id, k);
  index_expiry(e.info.expires_ms, k);
  g_suspended.add(1, {e.info.pipeline});
  ++_suspension_adds;
  _suspended.insert_or_assign(k, std::move(e));
}

void engine::index_expiry(uint64_t expires_ms, key_t k) {
  if (!expires_ms) return;
  auto [x, end] = _expiries.equal_range(expires_ms);
  for (; x != end; ++x)
    if (x->second == k) return;
  _expiries.emplace_hint(end, expires_ms, k);
}

std::optional<engine::suspended_entry> engine::take_suspension(key_t k) {
  auto it = _suspended.find(k);
  if (it == _suspended.end()) return std::nullopt;
  suspended_entry e = std::move(it->second);
  _suspended.erase(it);
  // The hook stays indexed while the trace is in the store: a second resume is
  // then not_suspended, not not_found.
  for (auto [x, end] = _expiries.equal_range(e.info.expires_ms); x != end; ++x)
    if (x->second == k) {
      _expiries.erase(x);
      break;
    }
  g_suspended.add(-1, {e.info.pipeline});
  return e;
}

io::task<io::result<std::string>> engine::suspended_bytes(core::wal_location at, std::string kept) {
  if (!kept.empty()) co_return kept;
  auto reading = _opts.wal->read(at);
  co_return co_await std::move(reading);
}

std::shared_ptr<trace_record> engine::summary(const suspended_entry& e) {
  auto t = std::make_shared<trace_record>();
  t->id = e.info.id;
  t->pipeline = e.info.pipeline;
  t->version = e.version;
  t->trigger = e.trigger;
  t->status = trace_status::suspended;
  t->created_ms = e.trace_created_ms;
  t->started_ms = e.started_ms;
  t->finished_ms = e.info.created_ms;
  t->hook_id = e.info.hook_id;
  t->nodes[e.info.node].status = node_status::suspended;
  return t;
}

io::task<std::shared_ptr<trace_record>> engine::lookup_trace(core::trace_id id) {
  if (auto t = find_trace(id)) co_return t;
  auto it = _suspended.find({id.hi, id.lo});
  if (it == _suspended.end()) co_return nullptr;
  std::shared_ptr<trace_record> t = summary(it->second);
  auto reading = suspended_bytes(it->second.at, it->second.record);
  io::result<std::string> bytes = co_await std::move(reading);
  auto sr = bytes ? decode_suspended(*bytes) : std::nullopt;
  if (!sr) {  // (resumed meanwhile, or an I/O error): what the entry knew
    XLOG(warn, "trace %s: its suspended record cannot be read back; showing its summary", id.to_string().c_str());
    co_return t;
  }
  std::vector<node_record> nodes;
  auto full = from_snapshot(*sr, nodes);
  full->recovered = false;
  full->status = trace_status::suspended;
  full->finished_ms = t->finished_ms;
  full->hook_id = std::move(t->hook_id);
  full->nodes[sr->node].status = node_status::suspended;
  co_return full;
}

std::optional<engine::recovered_trace> engine::continued(core::admission_record a) {
  auto c = decode_continuation(a.continuation);
  if (!c) return std::nullopt;
  auto sr = decode_suspended(c->suspended);
  if (!sr || sr->start.id != a.id) return std::nullopt;
  return continued(std::move(*sr), c->decision, std::move(c->response_data));
}

engine::recovered_trace engine::continued(suspended_record sr, uint8_t decision, std::string response_data) {
  recovered_trace rt;
  core::trace_id id = sr.start.id;
  rt.trace = from_snapshot(sr, rt.nodes);
  rt.trace->recovered = false;
  rt.trace->hook_id = sr.hook_id;  // a second resume of it is not_suspended
  // The wait node completes with the decision as its port, response_data as output.
  static const char* const ports[] = {"out", "rejected", "escalated"};
  node_run& w = rt.trace->nodes[sr.node];
  w.status = node_status::completed;
  w.port = ports[decision];
  w.runs = 1;
  rt.nodes.push_back(node_record{id, sr.node, ports[decision], core::unix_ms_now(), 0, std::move(response_data), {}});
  return rt;
}

io::task<engine::resume_error> engine::resume_suspended(core::trace_id id, uint8_t decision,
                                                        core::value response_data) {
  key_t k{id.hi, id.lo};
  auto it = _suspended.find(k);
  if (it == _suspended.end() || it->second.resuming)
    co_return it != _suspended.end() || _traces.count(k) || _resumed.count(k) ? resume_error::not_suspended
                                                                              : resume_error::not_found;
  if (_recovery_pending || _running.closed() || (_opts.wal && !_opts.wal->healthy()))
    co_return resume_error::unavailable;
  // Marked before any suspension: a concurrent resume or the expiry gets
  // not_suspended, the relog leaves it alone. It stays suspended (unmarked,
  // its expiry armed again) if the resume cannot be admitted.
  it->second.resuming = true;
  auto give_up = [this, k] {
    if (auto i = _suspended.find(k); i != _suspended.end()) {
      i->second.resuming = false;
      index_expiry(i->second.info.expires_ms, k);
    }
    return resume_error::unavailable;
  };
  auto reading = suspended_bytes(it->second.at, it->second.record);
  io::result<std::string> payload = co_await std::move(reading);
  if (!payload) {
    XLOG(error, "trace %s: cannot read its suspended record back: %s", id.to_string().c_str(),
         payload.error().message().c_str());
    co_return give_up();
  }
  auto sr = decode_suspended(*payload);
  if (!sr || sr->start.id != id) {
    XLOG(error, "trace %s: its suspended record does not decode", id.to_string().c_str());
    co_return give_up();
  }
  std::string cont;
  encode(cont, continuation{std::move(*payload), decision, std::string(response_data.bytes())});
  const started_record& s = sr->start;
  auto ticket = _opts.queue->admit(core::admission{id, s.created_ms, s.pipeline, s.version, s.trigger, s.input, cont});
  if (!ticket) co_return give_up();
  suspended_entry e = std::move(*take_suspension(k));
  recovered_trace rt = continued(std::move(*sr), decision, std::string(response_data.bytes()));
  // The delivery takes it from _resumed; the store shows the trace again.
  rt.trace->ack = ack_state::waiting;
  rt.trace->admitted = *ticket;
  _traces[k] = rt.trace;
  _resumed.emplace(k, std::move(rt));
  g_resumes.inc({nodes::to_string(nodes::wait_decision(decision))});
  take_ready(nullptr);
  auto durable = _opts.queue->durable(*ticket);
  io::result<void> done = co_await std::move(durable);
  // Not durable: still suspended after a restart, so its record stays held.
  if (!done) co_return resume_error::unavailable;
  if (_opts.wal && e.record.empty()) _opts.wal->trace_finished(e.at.segment, core::unix_ms_now());
  co_return resume_error::none;
}

engine::suspension_page engine::suspensions(std::string_view pipeline_name, size_t max) const {
  std::vector<const suspension_info*> match;
  for (const auto& [k, e] : _suspended)
    if (!e.resuming && (pipeline_name.empty() || e.info.pipeline == pipeline_name)) match.push_back(&e.info);
  size_t n = std::min(max, match.size());
  // (Ties by id: pages of one listing neither repeat nor skip one.)
  std::partial_sort(match.begin(), match.begin() + n, match.end(), [](const suspension_info* a, const suspension_info* b) {
    return std::tie(a->created_ms, a->id.hi, a->id.lo) < std::tie(b->created_ms, b->id.hi, b->id.lo);
  });
  suspension_page out;
  out.total = match.size();
  for (size_t i = 0; i < n; ++i) out.oldest.push_back(*match[i]);
  return out;
}

engine::hook_traces engine::find_hook(std::string_view hook) const {
  hook_traces out;
  for (auto [h, end] = _hooks.equal_range(std::hash<std::string_view>{}(hook)); h != end; ++h) {
    core::trace_id id{h->second.first, h->second.second};
    if (auto s = _suspended.find(h->second); s != _suspended.end()) {
      if (s->second.info.hook_id == hook) out.suspended.push_back(id);
    } else if (auto t = _traces.find(h->second); t != _traces.end() && t->second->hook_id == hook) {
      out.resumed.push_back(id);
    }
  }
  return out;
}

void engine::index_hook(std::string_view hook, key_t k) {
  auto [h, end] = _hooks.equal_range(std::hash<std::string_view>{}(hook));
  for (; h != end; ++h)
    if (h->second == k) return;
  _hooks.emplace_hint(end, std::hash<std::string_view>{}(hook), k);
}

void engine::unindex_hook(const trace_record& t) {
  key_t k{t.id.hi, t.id.lo};
  if (t.hook_id.empty()) return;
  for (auto [h, end] = _hooks.equal_range(std::hash<std::string_view>{}(t.hook_id)); h != end; ++h)
    if (h->second == k) {
      _hooks.erase(h);
      return;
    }
}

// The oldest WAL segment has expired but suspensions recorded in it keep it
// (and every later one): their records are written again at the end of the
// log, and the old segment is released once the copies are durable. A
// suspension resumed meanwhile is skipped (the resume holds its own place).
io::task<void> engine::relog_suspensions(uint64_t segment) {
  struct done_t {
    engine& e;
    ~done_t() { e._relogging = false; }
  } done{*this};
  std::vector<key_t> keys;
  for (const auto& [k, e] : _suspended)
    if (e.record.empty() && e.at.segment == segment && !e.resuming) keys.push_back(k);
  if (keys.empty()) _relog_idle = {segment, _suspension_adds};
  size_t moved = 0;
  uint64_t last = 0;
  for (key_t k : keys) {
    if (_stop_taking.cancelled()) break;
    auto it = _suspended.find(k);
    if (it == _suspended.end() || it->second.resuming) continue;
    core::wal_location from = it->second.at;
    auto reading = _opts.wal->read(from);
    io::result<std::string> bytes = co_await std::move(reading);
    if (!bytes) {
      XLOG(warn, "WAL segment %llu: cannot read a suspended record back to write it again: %s; retrying later",
           static_cast<unsigned long long>(segment), bytes.error().message().c_str());
      break;
    }
    it = _suspended.find(k);
    if (it == _suspended.end() || it->second.resuming || it->second.at.lsn != from.lsn) continue;
    uint64_t lsn = _opts.wal->append(core::wal_type_final, *bytes);
    if (!lsn) break;  // refused (the disk fails): the next sweep asks again
    it->second.at = _opts.wal->last_location();
    _opts.wal->trace_started(it->second.at.segment);
    last = lsn;
    ++moved;
  }
  if (!moved) co_return;
  // The old segment is released only once the copies are on stable storage;
  // while the disk refuses writes they wait in the WAL's buffer.
  while (!_opts.wal->stable(last)) {
    auto durable = _opts.wal->wait(last);
    io::result<void> r = co_await std::move(durable);
    if (_opts.wal->stable(last)) break;
    if (_opts.wal->failed()) co_return;  // for good: a restart recovers from what is on disk
    auto slept = co_await io::sleep_for(std::chrono::milliseconds(r ? 10 : 1000), &_stop_taking);
    if (!slept) co_return;  // stopping: a restart recounts what holds the segment
  }
  for (size_t i = 0; i < moved; ++i) _opts.wal->trace_finished(segment, 0);
  XLOG(info, "WAL segment %llu: %zu suspended traces written again so that it can be deleted",
       static_cast<unsigned long long>(segment), moved);
}

// ---- cron triggers ----

// One timer per shard for the cron triggers it owns: wakes at the earliest
// instant (or after a second, or when a deploy may bring one sooner).
io::task<void> engine::cron_loop() {
  using std::chrono::nanoseconds;
  while (!_stop_taking.cancelled()) {
    uint64_t now = core::unix_ms_now();
    for (const cron_fire& f : _cron.due(now)) fire_cron(f, now);
    // To the nanosecond: rounding to milliseconds would add up to one each wake.
    auto next = _cron.next_ms();
    int64_t now_ns = core::unix_ns_now();
    int64_t wait_ns = next ? int64_t(*next) * 1'000'000 - now_ns : 1'000'000'000;
    wait_ns = std::clamp<int64_t>(wait_ns, 100'000, 1'000'000'000);
    io::cancel_source wake;
    _cron_sleep = &wake;
    auto slept = co_await io::sleep_for(nanoseconds(wait_ns), &wake);
    _cron_sleep = nullptr;
    (void)slept;  // woken early: a deploy, or stop() (the loop's condition)
  }
}

void engine::cron_ended(const trace_record& t) {
  _cron.ended(t.pipeline, t.trigger, t.cron);
  if (_cron_sleep && _cron.next_ms() == 0) _cron_sleep->cancel();  // a queued fire may go now
}

void engine::fire_cron(const cron_fire& f, uint64_t now_ms) {
  core::value_builder b;
  b.begin_object();
  std::string when;
  io::append_rfc3339_ms(when, uint64_t(f.scheduled_s) * 1000);
  b.key("scheduled_at");
  b.add_string(when);
  when.clear();
  io::append_rfc3339_ms(when, now_ms);
  b.key("fired_at");
  b.add_string(when);
  b.key("trigger");
  b.add_string(f.pipeline + "." + f.trigger);
  b.end();
  admission a = admit(f.pipeline, f.trigger, b.finish(), {}, &f);
  if (a.error == admit_error::none) return;
  _cron.refused(f, _opts.wal);
  // A paused or stopped pipeline takes no fires: expected, so quiet.
  if (a.error == admit_error::not_running || a.error == admit_error::trigger_disabled)
    XLOG(debug, "cron trigger %s.%s: not fired, %s %s", f.pipeline.c_str(), f.trigger.c_str(),
         a.detail.empty() ? "the trigger is" : "the pipeline is", a.detail.empty() ? "disabled" : a.detail.c_str());
  else
    XLOG(warn, "cron trigger %s.%s: the fire for %lld was refused (%s)", f.pipeline.c_str(), f.trigger.c_str(),
         static_cast<long long>(f.scheduled_s), a.detail.empty() ? "queue full or circuit open" : a.detail.c_str());
}

// ---- filesystem triggers ----

namespace {
// Keeps the watch alive for as long as it runs (the engine may drop it first).
io::task<void> run_watch(std::shared_ptr<fs_watch> w) { co_await w->run(); }
}  // namespace

void engine::sync_watches(const pipeline& p) {
  const std::string& name = p.flow->name;
  std::string prefix = name + ".";
  bool live = !_recovery_pending && !_stop_taking.cancelled();
  // The watches to run now, with the ones already running that stay as they are.
  std::map<std::string, std::shared_ptr<fs_watch>, std::less<>> kept;
  std::vector<const trigger_def*> fresh;
  for (size_t i = 0; i < p.flow->triggers.size(); ++i) {
    const trigger_def& t = p.flow->triggers[i];
    if (!t.fs || !live || p.triggers[i].off || trigger_owner(name, t.id, _opts.shard_count) != _opts.shard) continue;
    auto it = _watches.find(prefix + t.id);
    if (it != _watches.end() && it->second->params() == *t.fs) {
      kept.insert(_watches.extract(it));
      continue;
    }
    fresh.push_back(&t);
  }
  // The old ones first (removed, changed or switched off), so that an old
  // watch fires nothing into the new deployment.
  stop_watches(name);
  _watches.merge(kept);
  for (const trigger_def* t : fresh) {
    auto fire = [this, name, trigger = t->id](const fs_fire& f, const io::path_info* info) {
      return fire_fs(name, trigger, f, info);
    };
    auto w = std::make_shared<fs_watch>(prefix + t->id, t->fs, std::move(fire));
    if (!io::spawn(_timers, run_watch(w))) continue;
    _watches.emplace(prefix + t->id, std::move(w));
  }
}

void engine::stop_watches(std::string_view pipeline) {
  std::string prefix = std::string(pipeline) + ".";
  for (auto it = _watches.lower_bound(prefix); it != _watches.end() && it->first.starts_with(prefix);) {
    it->second->stop();
    it = _watches.erase(it);
  }
}

const fs_watch::status* engine::watch_state(std::string_view pipeline, std::string_view trigger) const {
  auto it = _watches.find(std::string(pipeline) + "." + std::string(trigger));
  return it == _watches.end() ? nullptr : &it->second->state();
}

bool engine::fire_fs(const std::string& pipeline, const std::string& trigger, const fs_fire& f,
                     const io::path_info* info) {
  if (_stop_taking.cancelled()) return false;  // stopping: admit nothing new
  core::value_builder b;
  b.begin_object();
  b.key("path");
  b.add_string(f.path);
  b.key("event");
  b.add_string(to_string(f.event));
  if (!f.from.empty()) {
    b.key("from");
    b.add_string(f.from);
  }
  b.key("size");
  if (info) b.add_int(int64_t(info->size));
  else b.add_null();
  b.key("mtime");
  if (info) {
    std::string when;
    io::append_rfc3339_ms(when, info->mtime_ms);
    b.add_string(when);
  } else {
    b.add_null();
  }
  b.key("trigger");
  b.add_string(pipeline + "." + trigger);
  b.end();
  admission a = admit(pipeline, trigger, b.finish());
  if (a.error == admit_error::none) return true;
  XLOG(debug, "filesystem trigger %s.%s: %s %s not admitted (%s)", pipeline.c_str(), trigger.c_str(),
       f.path.c_str(), to_string(f.event), a.detail.empty() ? "refused" : a.detail.c_str());
  return false;
}

// One timer per shard: wakes at the earliest expiry (and at least every
// second, so a suspension added meanwhile is not late by more than that).
io::task<void> engine::expiry_loop() {
  while (!_stop_taking.cancelled()) {
    uint64_t now = core::unix_ms_now();
    while (!_expiries.empty() && _expiries.begin()->first <= now) {
      key_t k = _expiries.begin()->second;
      _expiries.erase(_expiries.begin());  // (take_suspension then finds no index entry: fine)
      auto it = _suspended.find(k);
      if (it == _suspended.end()) continue;  // a retry's entry, resumed since
      g_expiries.inc({it->second.info.pipeline});
      auto spawned = io::spawn(_timers, expire(it->second.info.id, it->second.timeout_action));
      if (!spawned) co_return;
    }
    uint64_t wait_ms = _expiries.empty() ? 1000 : std::min<uint64_t>(1000, _expiries.begin()->first - now);
    auto slept = co_await io::sleep_for(std::chrono::milliseconds(wait_ms), &_stop_taking);
    if (!slept) co_return;
  }
}

io::task<void> engine::expire(core::trace_id id, uint8_t action) {
  core::value_builder b;
  b.begin_object();
  b.key("expired");
  b.add_bool(true);
  b.end();
  auto resuming = resume_suspended(id, action, b.finish());
  resume_error r = co_await std::move(resuming);
  if (r != resume_error::unavailable) co_return;
  XLOG(warn, "trace %s: its suspension expired but cannot be resumed now; retrying in a second",
       id.to_string().c_str());
  key_t k{id.hi, id.lo};
  if (_suspended.count(k)) _expiries.emplace(core::unix_ms_now() + 1000, k);
}

}  // namespace xerv::flows
