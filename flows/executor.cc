#include "flows/executor.h"

#include <deque>
#include <memory>

#include "flows/expr.h"
#include "flows/nodes/structural.h"
#include "io/cancel.h"
#include "io/gate.h"
#include "io/ops.h"
#include "io/reactor.h"
#include "io/when_all.h"

namespace xerv::flows {

const char* to_string(trace_status s) {
  switch (s) {
    case trace_status::pending: return "pending";
    case trace_status::running: return "running";
    case trace_status::completed: return "completed";
    case trace_status::failed: return "failed";
    case trace_status::timed_out: return "timed_out";
    case trace_status::suspended: return "suspended";
  }
  return "unknown";
}

const char* to_string(node_status s) {
  switch (s) {
    case node_status::pending: return "pending";
    case node_status::running: return "running";
    case node_status::completed: return "completed";
    case node_status::skipped: return "skipped";
    case node_status::failed: return "failed";
    case node_status::suspended: return "suspended";
  }
  return "unknown";
}

namespace {

using nodes::loop_impl;
using nodes::merge_impl;
using nodes::merge_strategy;
using nodes::split_impl;
using nodes::split_mode;

class region_exec;

// Forwards a cancellation of `parent` (the trace's timeout or failure) to a
// node attempt's own cancel source, which also carries the attempt's deadline.
class cancel_link : private io::cancel_source::hook {
 public:
  cancel_link(io::cancel_source& parent, io::cancel_source& target) : _parent(parent), _target(target) {
    if (parent.cancelled()) {
      target.cancel(parent.reason());
      return;
    }
    fire = &on_fire;
    parent.attach(this);
  }
  ~cancel_link() { io::cancel_source::detach(this); }
  cancel_link(const cancel_link&) = delete;
  cancel_link& operator=(const cancel_link&) = delete;

 private:
  static void on_fire(io::cancel_source::hook* h) {
    auto* self = static_cast<cancel_link*>(h);
    self->_target.cancel(self->_parent.reason());  // (the hook is detached before it fires)
  }
  io::cancel_source& _parent;
  io::cancel_source& _target;
};

node_result timed_out(uint64_t timeout_ms) {
  return fail("node timed out after " + std::to_string(timeout_ms) + " ms", error_codes::node_timeout);
}

// A synchronous node cannot be interrupted: one whose run took longer than its
// timeout is timed out after the fact (its output is dropped), so that a timeout
// means the same for every node type and a retry or the error port handles it.
// `started_ns` is when the attempt began; `ended_ns` gets when it ended (one
// clock read per node on the inline path, which the completion reuses).
node_result run_sync(const vertex& vx, core::value_ref input, node_env& e, uint64_t timeout_ms, uint64_t started_ns,
                     uint64_t& ended_ns) {
  node_result r = vx.impl->run(input, e);
  ended_ns = io::monotonic_ns();
  if (ended_ns - started_ns > timeout_ms * 1'000'000) return timed_out(timeout_ms);
  return r;
}

// One per trace: limits, cancellation and the failure, shared by every region.
struct trace_ctx {
  const compiled_flow& flow;
  std::string trace_id;
  core::arena_region mem;     // the input and top-level outputs
  core::arena_ref input;
  trace_observer* observer;
  const replay_map* replay;
  io::cancel_source cancel;   // fires on trace timeout or failure
  uint32_t running = 0;       // plain nodes in flight, across regions
  std::deque<region_exec*> slot_waiters;
  bool failed = false;
  std::string error_node, error_code, error_message;
  std::optional<suspension> suspended;
  trace_services* services = nullptr;

  void fail_trace(std::string node, const node_failure& why) {
    if (failed) return;
    failed = true;
    error_node = std::move(node);
    error_code = why.code;
    error_message = why.message;
    cancel.cancel(io::errc::cancelled);
  }
  bool stopping() const { return failed || cancel.cancelled(); }
  void release_slot();
};

// A wake-up flag with at most one waiting coroutine.
struct wake_event {
  std::coroutine_handle<> waiter;
  bool signalled = false;
  void notify() {
    signalled = true;
    if (waiter) io::this_reactor().schedule(std::exchange(waiter, {}));
  }
  bool await_ready() const noexcept { return signalled; }
  void await_suspend(std::coroutine_handle<> h) { waiter = h; }
  void await_resume() { signalled = false; }
};

class region_exec : public selector_source {
 public:
  region_exec(trace_ctx& t, uint32_t region, const region_exec* parent, core::value_ref entry_input,
              uint16_t entry_port)
      : _t(t), _flow(t.flow), _region(t.flow.regions[region]), _region_id(region), _parent(parent),
        _entry_input(entry_input), _entry_port(entry_port) {
    size_t n = _region.members.size();
    _st.resize(n);
  }

  // Runs the region to its end; nullopt when the trace failed or was cancelled.
  io::task<std::optional<core::value>> run();
  wake_event& wake() { return _wake; }
  void set_fired_trigger(uint32_t v) { _fired = v; }

  // selector_source
  std::optional<core::value_ref> node_output(uint32_t v) const override {
    const vertex& vx = _flow.vertices[v];
    if (vx.region == _region_id) {
      const state& s = _st[vx.local];
      if (s.status == node_status::completed) return output_of(s);
      return std::nullopt;
    }
    if (_parent) return _parent->node_output(v);
    return std::nullopt;
  }
  core::value_ref trace_input() const override { return _t.mem.get(_t.input); }
  core::value_ref pipeline_config() const override { return _flow.config.ref(); }
  std::string_view trace_id() const override { return _t.trace_id; }

 private:
  struct state {
    node_status status = node_status::pending;
    uint32_t unresolved = 0;
    std::vector<uint32_t> active_from;  // vertices that fed it actively (owner included)
    uint16_t port = 0;
    core::value output;               // body regions: transient, on the heap
    core::arena_ref stored = no_ref;  // the root region: in the trace's arena region
    uint64_t started_ns = 0;
  };
  static constexpr core::arena_ref no_ref = ~core::arena_ref(0);
  core::value_ref output_of(const state& s) const {
    return s.stored != no_ref ? _t.mem.get(s.stored) : s.output.ref();
  }

  class env final : public node_env {
   public:
    env(region_exec& r, uint32_t v, io::cancel_source* cs) : _r(r), _v(v), _cs(cs) {}
    const selector_source& selectors() const override { return _r; }
    void log(io::log_level level, std::string_view message) override {
      if (_r._t.observer) _r._t.observer->node_log(_v, level, message);
    }
    std::string_view node_name() const override { return _r._flow.vertices[_v].name; }
    io::cancel_source* cancel() override { return _cs; }
    io::task<enqueued> enqueue(std::string queue, core::value payload) override {
      if (!_r._t.services) return node_env::enqueue(std::move(queue), std::move(payload));
      // (Top-level nodes only, compile.cc: trace and node name the message.)
      // (A control character: no Idempotency-Key a client sends can collide.)
      return _r._t.services->enqueue(std::move(queue), std::move(payload),
                                     "\x01enqueue/" + _r._t.trace_id + "/" + _r._flow.vertices[_v].name);
    }
    std::vector<core::value_ref> inputs() const override {
      std::vector<core::value_ref> out;
      for (uint32_t from : _r.st(_v).active_from) out.push_back(_r.value_of(from));
      return out;
    }

   private:
    region_exec& _r;
    uint32_t _v;
    io::cancel_source* _cs;
  };

  state& st(uint32_t v) { return _st[_flow.vertices[v].local]; }
  const state& st(uint32_t v) const { return _st[_flow.vertices[v].local]; }
  bool in_region(uint32_t v) const { return _flow.vertices[v].region == _region_id; }

  void init();
  void resolve(uint32_t edge, bool active);
  void make_ready(uint32_t v);
  // `ended_ns`: when the node finished, if the caller read the clock already (0: now).
  void complete(uint32_t v, uint16_t port, core::value out, bool replayed = false, uint64_t ended_ns = 0);
  void skip(uint32_t v);
  void node_failed(uint32_t v, const node_failure& why);
  void park(uint32_t v, const core::value& input);
  core::value_ref value_of(uint32_t from) const {  // an active input of a node in this region
    return from == _region.owner ? _entry_input : output_of(st(from));
  }
  core::value input_for(uint32_t v);
  uint64_t timeout_ms_of(const vertex& vx) const {
    return vx.timeout_ms ? vx.timeout_ms : _flow.settings.node_timeout_ms;
  }
  bool start(uint32_t v);
  io::task<void> run_async(uint32_t v, core::value input);
  io::task<node_result> run_split(uint32_t v, core::value input, io::cancel_source* cs);
  io::task<node_result> run_loop(uint32_t v, core::value input, io::cancel_source* cs);
  io::task<std::optional<core::value>> run_body_item(uint32_t owner, core::value item, uint16_t port);
  core::value region_output() const;

  trace_ctx& _t;
  const compiled_flow& _flow;
  const region_def& _region;
  uint32_t _region_id;
  const region_exec* _parent;
  core::value_ref _entry_input;
  uint16_t _entry_port;
  std::vector<state> _st;
  std::deque<uint32_t> _ready;
  uint32_t _in_flight = 0;
  io::gate _tasks;
  wake_event _wake;
  uint32_t _fired = no_index;  // root: the trigger that started the trace
  friend struct trace_ctx;
};

void trace_ctx::release_slot() {
  --running;
  while (!slot_waiters.empty()) {
    region_exec* r = slot_waiters.front();
    slot_waiters.pop_front();
    r->wake().notify();
    break;
  }
}

void region_exec::init() {
  for (uint32_t v : _region.members) {
    uint32_t n = 0;
    for (uint32_t e : _flow.vertices[v].in_edges) {
      const edge_def& ed = _flow.edges[e];
      if (!ed.back && (in_region(ed.from) || ed.from == _region.owner)) ++n;
    }
    st(v).unresolved = n;
  }
  if (_region.owner == no_index) {
    // The trigger that fired emits the input; the others are dead paths.
    for (uint32_t v : _region.members) {
      if (!_flow.vertices[v].is_trigger) continue;
      if (v == _fired) {
        st(v).started_ns = io::monotonic_ns();
        complete(v, 0, core::value(std::string(_entry_input.bytes())));
      } else {
        skip(v);
      }
    }
    return;
  }
  for (uint32_t v : _region.entries)
    for (uint32_t e : _flow.vertices[v].in_edges)
      if (_flow.edges[e].from == _region.owner) resolve(e, _flow.edges[e].port == _entry_port);
}

void region_exec::resolve(uint32_t e, bool active) {
  const edge_def& ed = _flow.edges[e];
  uint32_t w = ed.to;
  if (!in_region(w)) return;  // the back edge into a loop, or an edge into a body
  state& s = st(w);
  if (s.status != node_status::pending) return;  // first_arrival merges start early
  --s.unresolved;
  if (active) s.active_from.push_back(ed.from);
  const vertex& wv = _flow.vertices[w];
  if (wv.type && wv.type->shape == node_shape::merge) {
    auto* m = static_cast<const merge_impl*>(wv.impl.get());
    if (m->strategy == merge_strategy::first_arrival && !s.active_from.empty()) return make_ready(w);
    if (m->strategy == merge_strategy::wait_n && s.active_from.size() >= m->wait_count) return make_ready(w);
  }
  if (s.unresolved == 0) {
    if (s.active_from.empty()) skip(w);
    else make_ready(w);
  }
}

void region_exec::make_ready(uint32_t v) {
  state& s = st(v);
  s.status = node_status::running;  // claimed: later resolutions are ignored
  _ready.push_back(v);
}

void region_exec::complete(uint32_t v, uint16_t port, core::value out, bool replayed, uint64_t ended_ns) {
  state& s = st(v);
  s.status = node_status::completed;
  s.port = port;
  if (_region_id == 0) s.stored = _t.mem.store(out.bytes());
  else s.output = std::move(out);
  if (_t.observer && !replayed)
    _t.observer->node_finished(v, node_status::completed, port, output_of(s),
                               (ended_ns ? ended_ns : io::monotonic_ns()) - s.started_ns);
  const vertex& vx = _flow.vertices[v];
  for (uint16_t p = 0; p < vx.out_edges.size(); ++p)
    for (uint32_t e : vx.out_edges[p])
      if (!_flow.edges[e].back) resolve(e, p == port);
}

void region_exec::skip(uint32_t v) {
  state& s = st(v);
  s.status = node_status::skipped;
  if (_t.observer) _t.observer->node_finished(v, node_status::skipped, 0, core::value().ref(), 0);
  for (const auto& outs : _flow.vertices[v].out_edges)
    for (uint32_t e : outs)
      if (!_flow.edges[e].back) resolve(e, false);
}

void region_exec::node_failed(uint32_t v, const node_failure& why) {
  const vertex& vx = _flow.vertices[v];
  if (vx.has_error_edge() && !_t.stopping()) {
    core::value_builder b;
    b.begin_object();
    b.key("error");
    b.add_string(why.code);
    b.key("message");
    b.add_string(why.message);
    b.key("node");
    b.add_string(vx.name);
    b.end();
    complete(v, vx.error_port(), b.finish());
    return;
  }
  state& s = st(v);
  s.status = node_status::failed;
  if (_t.observer) _t.observer->node_finished(v, node_status::failed, 0, core::value().ref(), io::monotonic_ns() - s.started_ns);
  _t.fail_trace(vx.name, why);
}

// A wait node routes nothing: the trace runs on until nothing else can, then
// ends its run suspended; a resume continues it with the decision as the port.
void region_exec::park(uint32_t v, const core::value& input) {
  st(v).status = node_status::suspended;
  if (_t.suspended) return;
  auto* w = static_cast<const nodes::wait_impl*>(_flow.vertices[v].impl.get());
  suspension sp;
  sp.vertex = v;
  if (w->hook_id) w->hook_id->render_text(sp.hook_id, *this);
  if (sp.hook_id.empty()) sp.hook_id = _t.trace_id;
  core::value_builder b;
  b.begin_object();
  for (const auto& [key, path] : w->metadata_fields)
    if (auto x = path.resolve(input.ref())) {
      b.key(key);
      b.add(*x);
    }
  b.end();
  sp.metadata = b.finish();
  sp.timeout_ms = w->timeout_secs * 1000;
  sp.timeout_action = uint8_t(w->timeout_action);
  _t.suspended = std::move(sp);
}

core::value region_exec::input_for(uint32_t v) {
  const state& s = st(v);
  const vertex& vx = _flow.vertices[v];
  if (vx.type && vx.type->shape == node_shape::merge) {
    core::value_builder b;
    b.begin_object();
    for (uint32_t from : s.active_from) {
      b.key(_flow.vertices[from].name);
      b.add(value_of(from));
    }
    b.end();
    return b.finish();
  }
  // A plain node with several active inputs takes the first one to arrive (the
  // others are available through node_env::inputs()).
  return core::value(std::string(value_of(s.active_from.front()).bytes()));
}

// Starts v; returns false when no slot is free (v stays queued).
bool region_exec::start(uint32_t v) {
  const vertex& vx = _flow.vertices[v];
  node_shape shape = vx.type->shape;
  bool container = shape == node_shape::split || shape == node_shape::loop;
  if (!container && _t.running >= _flow.settings.max_concurrent_nodes) return false;
  state& s = st(v);
  s.started_ns = io::monotonic_ns();
  if (_region_id == 0 && _t.replay) {
    // Completed before a restart: never run again, route its recorded result.
    if (auto it = _t.replay->find(v); it != _t.replay->end()) {
      complete(v, it->second.port, core::value(it->second.output.bytes()), true);
      return true;
    }
  }
  core::value input = input_for(v);
  if (shape == node_shape::wait) {
    park(v, input);
    return true;
  }
  if (_t.observer) _t.observer->node_started(v);
  if (!container && !vx.impl->is_async() && vx.retry.backoff_ms == 0) {
    // Synchronous nodes run inline: no coroutine, no allocation beyond the output.
    env e(*this, v, &_t.cancel);
    uint64_t attempt_ns = s.started_ns, ended_ns = 0;
    for (uint32_t attempt = 1;; ++attempt, attempt_ns = ended_ns) {
      node_result r = run_sync(vx, input.ref(), e, timeout_ms_of(vx), attempt_ns, ended_ns);
      if (auto* out = std::get_if<flows::node_output>(&r)) {
        complete(v, out->port, std::move(out->value), false, ended_ns);
        return true;
      }
      if (attempt >= vx.retry.max_attempts) {
        node_failed(v, std::get<node_failure>(r));
        return true;
      }
    }
  }
  if (!container) ++_t.running;
  ++_in_flight;
  auto spawned = io::spawn(_tasks, run_async(v, std::move(input)));
  ASSERT(spawned.ok(), "region gate closed while running");
  return true;
}

// Containers (split, loop) run once, bounded by the trace. Other nodes run up to
// retry.max_attempts times; each attempt has its own cancel source, linked to the
// trace's and armed with a fresh node timeout, so a timed-out attempt leaves
// nothing cancelled behind and is retried like a failed one, after backoff_ms.
io::task<void> region_exec::run_async(uint32_t v, core::value input) {
  const vertex& vx = _flow.vertices[v];
  node_shape shape = vx.type->shape;
  bool container = shape == node_shape::split || shape == node_shape::loop;
  node_result r = fail("not run");
  if (container) {
    // (Not a ?: with two co_awaits: GCC 12 miscompiles that.)
    if (shape == node_shape::split) r = co_await run_split(v, input, &_t.cancel);
    else r = co_await run_loop(v, input, &_t.cancel);
  } else {
    uint64_t timeout_ms = timeout_ms_of(vx);
    for (uint32_t attempt = 1;; ++attempt) {
      {
        io::cancel_source attempt_cs;
        cancel_link link(_t.cancel, attempt_cs);
        io::deadline limit(std::chrono::milliseconds(timeout_ms), attempt_cs);
        env e(*this, v, &attempt_cs);
        if (vx.impl->is_async()) r = co_await vx.impl->run_async(input, e);
        else {
          uint64_t ended_ns = 0;
          r = run_sync(vx, input.ref(), e, timeout_ms, io::monotonic_ns(), ended_ns);
        }
        bool deadline_hit = attempt_cs.reason() == io::errc::timed_out && !_t.stopping();
        if (deadline_hit && std::holds_alternative<flows::node_failure>(r)) r = timed_out(timeout_ms);
      }
      if (std::holds_alternative<flows::node_output>(r) || attempt >= vx.retry.max_attempts || _t.stopping()) break;
      if (vx.retry.backoff_ms) {
        auto slept = co_await io::sleep_for(std::chrono::milliseconds(vx.retry.backoff_ms), &_t.cancel);
        (void)slept;  // cut short only when the trace ends, which the check below sees
      }
      if (_t.stopping()) break;
    }
  }

  if (!container) _t.release_slot();
  --_in_flight;
  if (_t.stopping()) {
    // The trace is ending; record the node without routing further.
    state& s = st(v);
    s.status = node_status::failed;
    if (_t.observer) _t.observer->node_finished(v, node_status::failed, 0, core::value().ref(), io::monotonic_ns() - s.started_ns);
  } else if (auto* out = std::get_if<flows::node_output>(&r)) {
    complete(v, out->port, std::move(out->value));
  } else {
    node_failed(v, std::get<node_failure>(r));
  }
  _wake.notify();
}

io::task<std::optional<core::value>> region_exec::run_body_item(uint32_t owner, core::value item, uint16_t port) {
  region_exec child(_t, _flow.vertices[owner].body, this, item.ref(), port);
  co_return co_await child.run();
}

io::task<node_result> region_exec::run_split(uint32_t v, core::value input, io::cancel_source*) {
  const vertex& vx = _flow.vertices[v];
  auto* cfg = static_cast<const split_impl*>(vx.impl.get());
  auto arr = cfg->field.resolve(input.ref());
  if (!arr || arr->type() != core::json_type::array)
    co_return fail("std::split field '" + cfg->field.text() + "' is not an array", error_codes::invalid_input);
  if (arr->size() > cfg->max_items)
    co_return fail("std::split: more than " + std::to_string(cfg->max_items) + " items", error_codes::invalid_input);
  uint32_t n = arr->size();
  uint32_t window = cfg->mode == split_mode::sequential ? 1
                    : cfg->mode == split_mode::batched  ? cfg->batch_size
                                                        : cfg->max_parallel;
  uint16_t out_port = 0;  // "out"
  std::vector<core::value> results;
  results.reserve(n);
  for (uint32_t base = 0; base < n; base += window) {
    if (_t.stopping()) co_return fail("trace stopped");
    std::vector<io::task<std::optional<core::value>>> batch;
    for (uint32_t i = base; i < std::min(n, base + window); ++i)
      batch.push_back(run_body_item(v, core::value(std::string(arr->at(i).bytes())), out_port));
    auto outs = co_await io::when_all(std::move(batch));
    for (auto& o : outs) {
      if (!o) co_return fail("a std::split item failed");
      results.push_back(std::move(*o));
    }
  }
  core::value_builder b;
  b.begin_array();
  for (const auto& r : results) b.add(r.ref());
  b.end();
  co_return emit(1, b.finish());  // "done"
}

io::task<node_result> region_exec::run_loop(uint32_t v, core::value input, io::cancel_source*) {
  const vertex& vx = _flow.vertices[v];
  auto* cfg = static_cast<const loop_impl*>(vx.impl.get());
  core::value current = std::move(input);
  for (uint32_t i = 0; i < cfg->max_iterations; ++i) {
    if (_t.stopping()) co_return fail("trace stopped");
    region_exec body(_t, vx.body, this, current.ref(), 0);  // port 0: "continue"
    auto out = co_await body.run();
    if (!out) co_return fail("the std::loop body failed");
    current = std::move(*out);
    if (cfg->until_true) {
      auto flag = cfg->until_true->resolve(current.ref());
      if (flag && flag->type() == core::json_type::boolean && flag->as_bool()) break;
    }
    // Selectors in the expression see this iteration's body nodes.
    if (cfg->until_expression && evaluate(*cfg->until_expression, body)) break;
    co_await io::yield{};  // long loops must not starve the shard
  }
  co_return emit(1, std::move(current));  // "exit"
}

core::value region_exec::region_output() const {
  std::vector<uint32_t> done;
  for (uint32_t v : _region.sinks)
    if (_st[_flow.vertices[v].local].status == node_status::completed) done.push_back(v);
  if (done.empty()) return core::value();
  if (done.size() == 1) return core::value(std::string(output_of(_st[_flow.vertices[done[0]].local]).bytes()));
  core::value_builder b;
  b.begin_object();
  for (uint32_t v : done) {
    b.key(_flow.vertices[v].name);
    b.add(output_of(_st[_flow.vertices[v].local]));
  }
  b.end();
  return b.finish();
}

io::task<std::optional<core::value>> region_exec::run() {
  init();
  for (;;) {
    while (!_ready.empty() && !_t.stopping()) {
      uint32_t v = _ready.front();
      if (!start(v)) {
        _t.slot_waiters.push_back(this);
        break;
      }
      _ready.pop_front();
    }
    if (_in_flight == 0 && (_ready.empty() || _t.stopping())) break;
    co_await _wake;
  }
  co_await _tasks.close();
  if (_t.stopping()) co_return std::nullopt;
  co_return region_output();
}

}  // namespace

// Stops a trace at shutdown with errc::closed, which no node failure uses.
struct shutdown_link : io::cancel_source::hook {
  io::cancel_source* trace = nullptr;
  ~shutdown_link() { io::cancel_source::detach(this); }  // on every way out
};

io::task<trace_outcome> execute_trace(const compiled_flow& flow, core::value input, std::string trace_id,
                                      uint32_t trigger_vertex, trace_observer* observer, execution_options opts) {
  trace_ctx t{flow, std::move(trace_id), core::arena_region(opts.arena), 0, observer, opts.replay, {}, 0, {}, false,
              {},   {},  {},  {}, opts.services};
  t.input = t.mem.store(input.bytes());
  input = core::value();
  io::deadline limit(std::chrono::milliseconds(flow.settings.execution_timeout_ms), t.cancel);
  shutdown_link link;
  link.trace = &t.cancel;
  link.fire = [](io::cancel_source::hook* h) { static_cast<shutdown_link*>(h)->trace->cancel(io::errc::closed); };
  if (opts.shutdown) {
    if (opts.shutdown->cancelled()) t.cancel.cancel(io::errc::closed);
    else opts.shutdown->attach(&link);
  }
  region_exec root(t, 0, nullptr, t.mem.get(t.input), 0);
  root.set_fired_trigger(trigger_vertex);
  auto out = co_await root.run();
  trace_outcome o;
  if (!out && t.cancel.reason() == io::errc::closed) {
    o.aborted = true;
  } else if (out && t.suspended) {
    o.status = trace_status::suspended;
    o.suspended = std::move(t.suspended);
  } else if (out) {
    o.status = trace_status::completed;
    o.output = std::move(*out);
  } else if (t.failed) {
    o.status = trace_status::failed;
    o.error_node = t.error_node;
    o.error_code = t.error_code;
    o.error_message = t.error_message;
  } else {
    o.status = trace_status::timed_out;
    o.error_code = std::string(error_codes::timeout);
    o.error_message = "trace exceeded execution_timeout_ms (" + std::to_string(flow.settings.execution_timeout_ms) + " ms)";
  }
  co_return o;
}

}  // namespace xerv::flows
