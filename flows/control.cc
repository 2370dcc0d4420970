#include "flows/control.h"

#include "core/trace_id.h"
#include "io/log.h"
#include "io/ops.h"
#include "io/when_all.h"

namespace xerv::flows {
namespace {

using outcome = control_reply::outcome;

control_reply refused(outcome o, std::string name, std::string message) {
  control_reply r;
  r.result = o;
  r.name = std::move(name);
  r.message = std::move(message);
  return r;
}

control_reply store_error(std::string name, std::error_code e) {
  if (e == core::dispatch_errc::conflict)
    return refused(outcome::conflict, name, "pipeline '" + name + "' was changed by another deploy; read it again");
  if (e == core::dispatch_errc::not_found) return refused(outcome::not_found, name, "no pipeline named '" + name + "'");
  return refused(outcome::unavailable, name, "cannot store the pipeline: " + e.message());
}

// On each shard: applies one change; answers the state the pipeline is in there.
std::optional<core::pipeline_state> apply_here(io::sharded<engine>& engines, const core::pipeline_change& c,
                                               const std::shared_ptr<const compiled_flow>& flow, uint64_t deployed_ms) {
  engine* e = engines.local_or_null();
  if (!e) return std::nullopt;  // stopping
  switch (c.what) {
    case core::pipeline_change::kind::deploy: {
      auto state = e->install(local_handle(flow), c.revision, c.state, deployed_ms);
      e->set_disabled(c.name, c.disabled);
      return state;
    }
    case core::pipeline_change::kind::remove: e->remove(c.name); return std::nullopt;
    case core::pipeline_change::kind::state: return e->set_state(c.name, c.state);
    case core::pipeline_change::kind::triggers: {
      e->set_disabled(c.name, c.disabled);
      const pipeline* p = e->find(c.name);
      return p ? std::optional(p->state) : std::nullopt;
    }
  }
  return std::nullopt;
}

}  // namespace

std::shared_ptr<const compiled_flow> local_handle(const std::shared_ptr<const compiled_flow>& shared) {
  return std::shared_ptr<const compiled_flow>(shared.get(), [keep = shared](const compiled_flow*) {});
}

io::task<core::pipeline_state> control_plane::apply(core::pipeline_change c, std::shared_ptr<const compiled_flow> flow,
                                                    uint64_t deployed_ms) {
  uint64_t& seen = _applied_seq[c.name];
  seen = std::max(seen, c.seq);
  io::sharded<engine>* engines = &_engines;
  auto job = io::invoke_on_all([engines, c, flow, deployed_ms] { return apply_here(*engines, c, flow, deployed_ms); });
  auto states = co_await std::move(job);
  // A drain with traces in flight on any shard is draining until they end.
  core::pipeline_state now = c.state == core::pipeline_state::draining ? core::pipeline_state::stopped : c.state;
  for (const auto& st : states)
    if (st == core::pipeline_state::draining) now = *st;
  co_return now;
}

io::task<control_reply> control_plane::deploy(deploy_request req) {
  auto held = co_await _lock.lock();
  // A large flow takes a while to compile: let this shard's waiting work run first.
  co_await io::yield();
  flow_limits limits;
  limits.paths_must_exist = req.persist;  // through the API, not from XERV_PIPELINES_DIR at start
  auto compiled = compile_flow(req.yaml, limits);
  if (auto* errs = std::get_if<std::vector<flow_error>>(&compiled)) {
    control_reply r = refused(outcome::invalid, {}, std::to_string(errs->size()) + " problem(s) in the flow");
    r.errors = std::move(*errs);
    co_return r;
  }
  std::shared_ptr<const compiled_flow> flow = std::move(std::get<std::unique_ptr<compiled_flow>>(compiled));
  engine& here = _engines.local();
  std::string name = flow->name;
  const pipeline* existing = here.find(name);
  bool existed = existing != nullptr;
  // An update keeps the pipeline's state (a drain in progress is stored as its
  // end, stopped); a new pipeline starts in the requested one.
  core::pipeline_state state = existed ? existing->state : req.initial;
  if (!req.update.empty()) {
    if (!here.find(req.update)) co_return refused(outcome::not_found, req.update, "no pipeline named '" + req.update + "'");
    if (name != req.update)
      co_return refused(outcome::invalid, name, "the flow's name '" + name + "' does not match '" + req.update + "'");
  }
  // Webhook paths, and queues, are unique across pipelines.
  for (const auto& t : flow->triggers) {
    if (t.type == "queue") {
      auto consumer = here.find_queue(t.queue);
      if (consumer && consumer->first != name)
        co_return refused(outcome::invalid, name,
                          "queue '" + t.queue + "' is already consumed by pipeline '" + consumer->first + "'");
    }
    if (t.type != "webhook") continue;
    auto owner = here.find_webhook(t.method, t.path);
    if (owner && owner->first != name)
      co_return refused(outcome::invalid, name,
                        "webhook " + t.method + " " + t.path + " is already used by pipeline '" + owner->first + "'");
  }
  core::pipeline_change c;
  c.what = core::pipeline_change::kind::deploy;
  c.name = name;
  c.source = req.yaml;
  c.state = state == core::pipeline_state::draining ? core::pipeline_state::stopped : state;
  c.persist = req.persist;
  // Switched-off triggers stay off through an update, if the flow still has them.
  for (const auto& t : existed ? existing->disabled : req.disabled)
    if (flow->find_trigger(t)) c.disabled.push_back(t);
  auto publishing = _store.publish(std::move(c), req.expected_revision);
  auto published = co_await std::move(publishing);
  if (!published) co_return store_error(name, published.error());
  control_reply r;
  r.result = existed ? outcome::updated : outcome::created;
  r.name = name;
  r.revision = published->revision;
  r.flow = flow;
  r.deployed_ms = core::unix_ms_now();  // one time for every shard
  core::pipeline_change applied = std::move(*published);
  applied.source.clear();  // the shards get the compiled flow, not the YAML
  auto applying = apply(std::move(applied), flow, r.deployed_ms);
  r.state = co_await std::move(applying);
  co_return r;
}

io::task<control_reply> control_plane::remove(std::string name) {
  auto held = co_await _lock.lock();
  if (!_engines.local().find(name)) co_return refused(outcome::not_found, name, "no pipeline named '" + name + "'");
  core::pipeline_change c;
  c.what = core::pipeline_change::kind::remove;
  c.name = name;
  auto publishing = _store.publish(std::move(c), 0);
  auto published = co_await std::move(publishing);
  if (!published) co_return store_error(name, published.error());
  auto applying = apply(*published, nullptr, 0);
  co_await std::move(applying);
  control_reply r;
  r.result = outcome::deleted;
  r.name = name;
  r.revision = published->revision;
  co_return r;
}

io::task<control_reply> control_plane::set_state(std::string name, core::pipeline_state target) {
  auto held = co_await _lock.lock();
  const pipeline* p = _engines.local().find(name);
  if (!p) co_return refused(outcome::not_found, name, "no pipeline named '" + name + "'");
  core::pipeline_change c;
  c.what = core::pipeline_change::kind::state;
  c.name = name;
  // A drain is stored as draining: every node that follows the store drains
  // too (runs what it had admitted, then stops), and one restarted mid-drain
  // finishes it (a drain with nothing left to run ends stopped at once).
  c.state = target;
  auto publishing = _store.publish(std::move(c), 0);
  auto published = co_await std::move(publishing);
  if (!published) co_return store_error(name, published.error());
  core::pipeline_change applied = std::move(*published);
  control_reply r;
  r.result = outcome::changed;
  r.name = name;
  r.revision = applied.revision;
  auto applying = apply(std::move(applied), nullptr, 0);
  r.state = co_await std::move(applying);
  co_return r;
}

io::task<control_reply> control_plane::set_trigger(std::string name, std::string trigger, bool enabled) {
  auto held = co_await _lock.lock();
  const pipeline* p = _engines.local().find(name);
  if (!p) co_return refused(outcome::not_found, name, "no pipeline named '" + name + "'");
  if (!p->flow->find_trigger(trigger))
    co_return refused(outcome::not_found, name, "pipeline '" + name + "' has no trigger '" + trigger + "'");
  core::pipeline_change c;
  c.what = core::pipeline_change::kind::triggers;
  c.name = name;
  c.disabled = p->disabled;
  std::erase(c.disabled, trigger);
  if (!enabled) c.disabled.push_back(trigger);
  std::sort(c.disabled.begin(), c.disabled.end());
  auto publishing = _store.publish(std::move(c), 0);
  auto published = co_await std::move(publishing);
  if (!published) co_return store_error(name, published.error());
  control_reply r;
  r.result = outcome::changed;
  r.name = name;
  r.revision = published->revision;
  auto applying = apply(std::move(*published), nullptr, 0);
  r.state = co_await std::move(applying);
  co_return r;
}

namespace {

// On the key's owner: the admission, durable.
io::task<enqueued> admit_here(io::sharded<engine>& engines, std::string pipeline, std::string trigger,
                              core::value input, std::string key) {
  engine* e = engines.local_or_null();
  if (!e || e->stopped()) co_return enqueued{{}, "xerv is stopping", "unavailable", true};
  admission a = e->admit(pipeline, trigger, std::move(input), key);
  switch (a.error) {
    case admit_error::none: break;
    case admit_error::pipeline_not_found:
      co_return enqueued{{}, "its consumer '" + pipeline + "' is not deployed", "pipeline_not_found"};
    case admit_error::trigger_not_found:
      co_return enqueued{{}, "its consumer '" + pipeline + "' has no trigger '" + trigger + "'", "trigger_not_found"};
    case admit_error::queue_full:
      co_return enqueued{{}, "the queue is full (capacity " + a.detail + ")", "queue_full"};
    case admit_error::trigger_disabled: co_return enqueued{{}, "its trigger is disabled", "trigger_disabled"};
    case admit_error::not_running:
      co_return enqueued{{}, "its consumer '" + pipeline + "' is " + a.detail, "pipeline_not_running"};
    default:
      if (a.detail == "shutting down") co_return enqueued{{}, "xerv is stopping", "unavailable", true};
      co_return enqueued{{}, "its consumer '" + pipeline + "' cannot take traces now (" + a.detail + ")",
                         "unavailable"};
  }
  if (a.replayed) co_return enqueued{a.replayed_id.to_string(), {}};
  auto acked = e->wait_acknowledged(a.trace);
  if (!co_await std::move(acked))
    co_return enqueued{{}, "the write-ahead log could not write the message", "unavailable"};
  co_return enqueued{a.trace->id.to_string(), {}};
}

}  // namespace

io::task<enqueued> control_plane::admit_keyed(std::string pipeline, std::string trigger, core::value input,
                                              std::string key) {
  unsigned owner = idempotency_owner(pipeline, key, io::shard_count());
  io::sharded<engine>* engines = &_engines;
  // (core::value owns plain heap bytes: it may move to another shard.)
  auto job = io::submit_to(owner, [engines, pipeline = std::move(pipeline), trigger = std::move(trigger),
                                   input = std::move(input), key = std::move(key)]() mutable {
    return admit_here(*engines, std::move(pipeline), std::move(trigger), std::move(input), std::move(key));
  });
  co_return co_await std::move(job);
}

io::task<void> control_plane::report(circuit_event e) {
  auto job = io::submit_to(control_shard, [this, e = std::move(e)] { return decide_circuit(e); });
  co_await std::move(job);
}

io::task<void> control_plane::decide_circuit(circuit_event e) {
  auto held = co_await _circuit_lock.lock();
  if (!_engines.local_or_null()) co_return;  // stopping
  io::sharded<engine>* engines = &_engines;
  uint64_t now = core::unix_ms_now();
  circuit_counts summed;
  if (!e.trial) {
    // Closed: the failure ratio is over every shard's window.
    auto gathering = io::invoke_on_all([engines, name = e.pipeline, now] {
      engine* here = engines->local_or_null();
      return here ? here->circuit_window(name, now) : circuit_counts{};
    });
    auto parts = co_await std::move(gathering);
    for (const auto& c : parts) summed.add(c);
  }
  engine* here = _engines.local_or_null();
  if (!here) co_return;
  auto d = here->circuit_decide(e, summed, now);
  if (!d) co_return;
  auto applying = io::invoke_on_all([engines, name = e.pipeline, d = *d] {
    if (engine* there = engines->local_or_null()) there->apply_circuit(name, d);
  });
  co_await std::move(applying);
}

io::task<std::vector<std::string>> control_plane::restore() {
  auto held = co_await _lock.lock();
  std::vector<std::string> problems;
  _watch = _store.watch();
  auto loading = _store.load();
  auto loaded = co_await std::move(loading);
  if (!loaded) {
    problems.push_back("cannot load the stored pipelines: " + loaded.error().message());
    co_return problems;
  }
  for (auto& c : *loaded) {
    auto compiled = compile_flow(c.source);
    if (auto* errs = std::get_if<std::vector<flow_error>>(&compiled)) {
      problems.push_back("stored pipeline " + c.name + ":\n" + format_errors(*errs, c.name + ".yaml"));
      continue;
    }
    std::shared_ptr<const compiled_flow> flow = std::move(std::get<std::unique_ptr<compiled_flow>>(compiled));
    c.name = flow->name;
    c.source.clear();
    // A drain a restart interrupted ends where it was going.
    if (c.state == core::pipeline_state::draining) c.state = core::pipeline_state::stopped;
    auto applying = apply(std::move(c), flow, core::unix_ms_now());
    co_await std::move(applying);
    co_await io::yield();
  }
  co_return problems;
}

void control_plane::start_following() {
  if (auto started = io::spawn(_following, follow()); !started) XLOG(error, "the control plane cannot follow the store");
}

io::task<void> control_plane::stop_following() {
  _stop_following.cancel();
  auto closing = _following.close();
  co_await std::move(closing);
}

io::task<void> control_plane::follow() {
  while (_watch) {
    auto next = _watch->next(_stop_following);
    std::optional<core::pipeline_change> c = co_await std::move(next);
    if (!c) co_return;
    auto held = co_await _lock.lock();
    auto seen = _applied_seq.find(c->name);
    if (seen != _applied_seq.end() && c->seq <= seen->second) continue;
    std::shared_ptr<const compiled_flow> flow;
    if (c->what == core::pipeline_change::kind::deploy) {
      co_await io::yield();
      // The node that published it compiled it with the same rules: a failure
      // here is this node's (a path its machine lacks), and is only logged.
      auto compiled = compile_flow(c->source);
      if (auto* errs = std::get_if<std::vector<flow_error>>(&compiled)) {
        XLOG(error, "pipeline %s (revision %llu) deployed on another node does not compile here:\n%s", c->name.c_str(),
             static_cast<unsigned long long>(c->revision), format_errors(*errs, c->name + ".yaml").c_str());
        _applied_seq[c->name] = c->seq;
        continue;
      }
      flow = std::move(std::get<std::unique_ptr<compiled_flow>>(compiled));
      c->source.clear();
    }
    XLOG(info, "pipeline %s: %s (revision %llu) from another node", c->name.c_str(),
         c->what == core::pipeline_change::kind::deploy   ? "deployed"
         : c->what == core::pipeline_change::kind::remove ? "deleted"
                                                          : "changed",
         static_cast<unsigned long long>(c->revision));
    auto applying = apply(std::move(*c), flow, core::unix_ms_now());
    co_await std::move(applying);
  }
}

}  // namespace xerv::flows
