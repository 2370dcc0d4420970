#include "http/api.h"

#include <algorithm>
#include <charconv>

#include "core/trace_id.h"
#include "flows/idempotency.h"
#include "flows/journal.h"
#include "flows/nodes/structural.h"
#include "io/log.h"
#include "io/strings.h"
#include "io/when_all.h"

// GCC 12 mishandles non-trivial temporaries inside a co_await expression (lambda
// captures destroyed twice, GCC bug 101367; strings built in the operand freed
// wrongly), so such operands are bound to named locals before being awaited.

namespace xerv::http {
namespace {

using ctx_t = const api_context*;

// This shard's engine; null once the shard has stopped.
flows::engine* here(ctx_t ctx) { return ctx->engines.local_or_null(); }

// ---- JSON text helpers ----

void key(std::string& out, std::string_view k) {
  if (out.back() != '{' && out.back() != '[') out += ',';
  io::append_json_string(out, k);
  out += ':';
}
void field(std::string& out, std::string_view k, std::string_view v) {
  key(out, k);
  io::append_json_string(out, v);
}
void field(std::string& out, std::string_view k, uint64_t v) {
  key(out, k);
  out += std::to_string(v);
}
// An RFC 3339 time, or null for 0.
void time_field(std::string& out, std::string_view k, uint64_t unix_ms) {
  key(out, k);
  if (!unix_ms) {
    out += "null";
    return;
  }
  out += '"';
  io::append_rfc3339_ms(out, unix_ms);
  out += '"';
}

void field_raw(std::string& out, std::string_view k, std::string_view raw) {
  key(out, k);
  out += raw;
}
void field_value(std::string& out, std::string_view k, core::value_ref v) {
  key(out, k);
  core::write_json(out, v);
}

response json_ok(int status, std::string body) {
  response r;
  r.status = status;
  r.body = std::move(body);
  return r;
}

std::string query_param(std::string_view query, std::string_view name) {
  while (!query.empty()) {
    size_t amp = query.find('&');
    std::string_view kv = query.substr(0, amp);
    size_t eq = kv.find('=');
    if (kv.substr(0, eq) == name) return eq == std::string_view::npos ? std::string() : std::string(kv.substr(eq + 1));
    if (amp == std::string_view::npos) break;
    query.remove_prefix(amp + 1);
  }
  return {};
}

// ---- pipelines ----

response unavailable(std::string_view why) { return json_error(503, "unavailable", why); }

struct pipeline_counters {
  uint64_t started = 0, completed = 0, failed = 0, active = 0, pending = 0;
  // Draining on any shard is draining; otherwise every shard is in one state.
  std::optional<flows::pipeline_state> state;
  flows::circuit_counts window;  // the breaker's window, every shard's

  void add(const pipeline_counters& o) {
    started += o.started;
    completed += o.completed;
    failed += o.failed;
    active += o.active;
    pending += o.pending;
    if (!state || o.state == flows::pipeline_state::draining) state = o.state;
    window.add(o.window);
  }
};

// This shard's counters of `only` (every pipeline when empty), by name.
std::vector<std::pair<std::string, pipeline_counters>> local_counters(ctx_t ctx, std::string only) {
  std::vector<std::pair<std::string, pipeline_counters>> out;
  if (!here(ctx)) return out;  // the shard has stopped
  uint64_t now = core::unix_ms_now();
  for (const auto& [name, p] : here(ctx)->pipelines()) {
    if (!only.empty() && name != only) continue;
    pipeline_counters c{p->started, p->completed, p->failed, p->active, p->pending.size() + p->undelivered, p->state,
                        here(ctx)->circuit_window(name, now)};
    out.emplace_back(name, c);
  }
  return out;
}

// Every shard's counters, summed per pipeline.
io::task<std::map<std::string, pipeline_counters>> counters_everywhere(ctx_t ctx, std::string only) {
  auto job = io::invoke_on_all([ctx, only] { return local_counters(ctx, only); });
  auto parts = co_await std::move(job);
  std::map<std::string, pipeline_counters> sum;
  for (const auto& part : parts)
    for (const auto& [name, c] : part) sum[name].add(c);
  co_return sum;
}

void append_trigger(std::string& out, const flows::compiled_flow& f, const flows::trigger_def& t) {
  out += '{';
  field(out, "id", f.name + "." + t.id);
  field(out, "pipeline_id", f.name);
  field(out, "trigger", t.id);
  field(out, "type", t.type);
  if (t.type == "webhook") {
    field(out, "path", t.path);
    field(out, "method", t.method);
    field(out, "respond", t.respond == flows::respond_mode::sync ? "sync" : "async");
  }
  if (!t.queue.empty()) {
    field(out, "queue", t.queue);
    field(out, "capacity", uint64_t(t.capacity));
  }
  if (t.cron) {
    field(out, "schedule", t.cron->schedule.text());
    field(out, "timezone", t.cron->zone.name());
    field(out, "missed", flows::to_string(t.cron->missed));
    field(out, "overlap", flows::to_string(t.cron->overlap));
  }
  if (t.fs) {
    auto list = [&out](std::string_view k, const std::vector<std::string>& items) {
      key(out, k);
      out += '[';
      for (const auto& i : items) {
        if (out.back() != '[') out += ',';
        io::append_json_string(out, i);
      }
      out += ']';
    };
    list("paths", t.fs->paths);
    std::vector<std::string> events;
    for (unsigned b = 1; b <= 8; b <<= 1)
      if (t.fs->events & b) events.push_back(flows::to_string(flows::fs_event(b)));
    list("events", events);
    list("patterns", t.fs->patterns);
    field_raw(out, "recursive", t.fs->recursive ? "true" : "false");
    field(out, "debounce_ms", uint64_t(t.fs->debounce_ms));
  }
  out += '}';
}

std::string pipeline_json(const flows::pipeline& p, const pipeline_counters* c, bool details) {
  const flows::compiled_flow& f = *p.flow;
  std::string out = "{";
  field(out, "id", f.name);
  field(out, "name", f.name);
  field(out, "version", f.version);
  field(out, "revision", p.revision);
  field(out, "description", f.description);
  field(out, "state", flows::to_string(c && c->state ? *c->state : p.state));
  field(out, "deployed_at_ms", p.deployed_ms);
  size_t nodes = std::count_if(f.vertices.begin(), f.vertices.end(), [](const flows::vertex& v) { return !v.is_trigger; });
  field(out, "node_count", nodes);
  key(out, "triggers");
  out += '[';
  for (const auto& t : f.triggers) {
    if (out.back() != '[') out += ',';
    append_trigger(out, f, t);
  }
  out += ']';
  if (details) {
    uint64_t now = core::unix_ms_now();
    const flows::circuit& b = p.breaker;
    key(out, "circuit");
    out += '{';
    field(out, "state", flows::to_string(b.at(now)));
    if (b.at(now) == flows::circuit_state::open) field(out, "retry_after_secs", (b.decided.open_until_ms - now + 999) / 1000);
    if (c) {
      field(out, "window_failed", c->window.failed);
      field(out, "window_traces", c->window.ok + c->window.failed);
    }
    out += '}';
    key(out, "nodes");
    out += '[';
    for (const auto& v : f.vertices) {
      if (v.is_trigger) continue;
      if (out.back() != '[') out += ',';
      out += '{';
      field(out, "name", v.name);
      field(out, "type", v.type->name);
      out += '}';
    }
    out += ']';
    field(out, "edge_count", f.edges.size());
    key(out, "settings");
    out += '{';
    field(out, "max_concurrent_executions", f.settings.max_concurrent_executions);
    field(out, "execution_timeout_ms", f.settings.execution_timeout_ms);
    field(out, "node_timeout_ms", f.settings.node_timeout_ms);
    field(out, "max_concurrent_nodes", f.settings.max_concurrent_nodes);
    field_raw(out, "debug", f.settings.debug ? "true" : "false");
    out += '}';
  }
  if (c) {
    key(out, "counters");
    out += '{';
    field(out, "traces_started", c->started);
    field(out, "traces_completed", c->completed);
    field(out, "traces_failed", c->failed);
    field(out, "active_traces", c->active);
    field(out, "pending_traces", c->pending);
    out += '}';
  }
  out += '}';
  return out;
}

std::string errors_json(const std::vector<flows::flow_error>& errors) {
  std::string out = "{\"errors\":[";
  for (const auto& e : errors) {
    if (out.back() != '[') out += ',';
    out += '{';
    field(out, "line", uint64_t(e.line));
    field(out, "column", uint64_t(e.column));
    field(out, "message", e.message);
    out += '}';
  }
  out += "]}";
  return out;
}

response pipeline_not_found(std::string_view name) {
  std::string details = "{";
  field(details, "pipeline_id", name);
  details += '}';
  return json_error(404, "pipeline_not_found", "no pipeline named '" + std::string(name) + "'", details);
}

io::task<response> list_pipelines(ctx_t ctx) {
  auto counting = counters_everywhere(ctx, "");
  auto counters = co_await std::move(counting);
  // Rendered from this shard's pipelines after the last suspension.
  std::string out = "{\"pipelines\":[";
  size_t n = 0;
  if (here(ctx)) {
    for (const auto& [name, p] : here(ctx)->pipelines()) {
      if (out.back() != '[') out += ',';
      out += pipeline_json(*p, &counters[name], false);
      ++n;
    }
  }
  out += "],\"count\":" + std::to_string(n) + "}";
  co_return json_ok(200, std::move(out));
}

io::task<response> get_pipeline(ctx_t ctx, std::string name) {
  if (!here(ctx) || !here(ctx)->find(name)) co_return pipeline_not_found(name);
  auto counting = counters_everywhere(ctx, name);
  auto counters = co_await std::move(counting);
  const flows::pipeline* p = here(ctx) ? here(ctx)->find(name) : nullptr;
  if (!p) co_return pipeline_not_found(name);
  co_return json_ok(200, pipeline_json(*p, &counters[name], true));
}

io::task<response> validate_pipeline(std::string yaml) {
  flows::flow_limits limits;
  limits.paths_must_exist = true;  // as a deploy would check
  auto r = flows::compile_flow(yaml, limits);
  if (auto* errs = std::get_if<std::vector<flows::flow_error>>(&r))
    co_return json_error(400, "invalid_flow", std::to_string(errs->size()) + " problem(s) in the flow", errors_json(*errs));
  const auto& f = *std::get<std::unique_ptr<flows::compiled_flow>>(r);
  std::string out = "{\"valid\":true";
  field(out, "name", f.name);
  field(out, "version", f.version);
  out += '}';
  co_return json_ok(200, std::move(out));
}

// ---- pipeline changes, through the control plane on shard 0 ----

// A deploy's answer: the version it installed (a later deploy may already have
// replaced it) with every shard's counters as they are now.
io::task<response> deploy_reply(ctx_t ctx, flows::control_reply r) {
  auto counting = counters_everywhere(ctx, r.name);
  auto counters = co_await std::move(counting);
  flows::pipeline installed;
  installed.flow = r.flow;
  installed.revision = r.revision;
  installed.state = r.state;
  installed.deployed_ms = r.deployed_ms;
  if (const flows::pipeline* now = here(ctx) ? here(ctx)->find(r.name) : nullptr) installed.breaker = now->breaker;
  pipeline_counters& c = counters[r.name];
  c.state = r.state;
  int status = r.result == flows::control_reply::outcome::updated ? 200 : 201;
  co_return json_ok(status, pipeline_json(installed, &c, true));
}

// A refused change as the API shows it.
response control_error(const flows::control_reply& r) {
  using outcome = flows::control_reply::outcome;
  switch (r.result) {
    case outcome::invalid:
      if (!r.errors.empty()) return json_error(400, "invalid_flow", r.message, errors_json(r.errors));
      return json_error(400, "invalid_flow", r.message);
    case outcome::not_found: return pipeline_not_found(r.name);
    case outcome::conflict: {
      std::string details = "{";
      field(details, "pipeline_id", r.name);
      details += '}';
      return json_error(409, "conflict", r.message, details);
    }
    default: return unavailable(r.message);
  }
}

io::task<response> control_deploy(ctx_t ctx, flows::deploy_request req) {
  auto deploying = ctx->control.deploy(std::move(req));
  flows::control_reply r = co_await std::move(deploying);
  if (!r.ok()) co_return control_error(r);
  auto replying = deploy_reply(ctx, std::move(r));
  co_return co_await std::move(replying);
}

io::task<response> control_delete(ctx_t ctx, std::string name) {
  auto removing = ctx->control.remove(name);
  flows::control_reply r = co_await std::move(removing);
  if (!r.ok()) co_return control_error(r);
  std::string out = "{";
  field(out, "id", name);
  field_raw(out, "deleted", "true");
  out += '}';
  co_return json_ok(200, std::move(out));
}

io::task<response> control_state(ctx_t ctx, std::string name, flows::pipeline_state target) {
  auto changing = ctx->control.set_state(name, target);
  flows::control_reply r = co_await std::move(changing);
  if (!r.ok()) co_return control_error(r);
  std::string out = "{";
  field(out, "id", name);
  field(out, "state", flows::to_string(r.state));
  field(out, "revision", r.revision);
  out += '}';
  co_return json_ok(200, std::move(out));
}

io::task<response> control_trigger(ctx_t ctx, std::string id, bool enabled) {
  size_t dot = id.find('.');
  std::string name = id.substr(0, dot), trigger = dot == std::string::npos ? "" : id.substr(dot + 1);
  auto changing = ctx->control.set_trigger(name, trigger, enabled);
  flows::control_reply r = co_await std::move(changing);
  if (r.result == flows::control_reply::outcome::not_found && here(ctx) && here(ctx)->find(name)) {
    std::string details = "{";
    field(details, "pipeline_id", name);
    field(details, "trigger", trigger);
    details += '}';
    co_return json_error(404, "trigger_not_found", r.message, details);
  }
  if (!r.ok()) co_return control_error(r);
  std::string out = "{";
  field(out, "id", id);
  field_raw(out, "enabled", enabled ? "true" : "false");
  out += '}';
  co_return json_ok(200, std::move(out));
}

io::task<response> switch_trigger(ctx_t ctx, std::string id, bool enabled) {
  auto job = io::submit_to(flows::control_shard, [ctx, id, enabled] { return control_trigger(ctx, id, enabled); });
  co_return co_await std::move(job);
}

io::task<response> delete_pipeline(ctx_t ctx, std::string name) {
  auto job = io::submit_to(flows::control_shard, [ctx, name] { return control_delete(ctx, name); });
  co_return co_await std::move(job);
}

io::task<response> change_state(ctx_t ctx, std::string name, std::string action) {
  flows::pipeline_state target;
  if (action == "start" || action == "resume") target = flows::pipeline_state::running;
  else if (action == "pause") target = flows::pipeline_state::paused;
  else if (action == "drain") target = flows::pipeline_state::draining;
  else target = flows::pipeline_state::stopped;
  auto job = io::submit_to(flows::control_shard, [ctx, name, target] { return control_state(ctx, name, target); });
  co_return co_await std::move(job);
}

// ---- traces ----

// Traces journaled before error codes existed have none.
std::string_view error_code(const flows::trace_record& t) {
  if (!t.error_code.empty()) return t.error_code;
  return t.status == flows::trace_status::timed_out ? "timeout" : "node_failed";
}

std::string trace_summary(const flows::trace_record& t) {
  std::string out = "{";
  field(out, "trace_id", t.id.to_string());
  field(out, "pipeline_id", t.pipeline);
  field(out, "version", t.version);
  field(out, "trigger", t.trigger);
  field(out, "status", flows::to_string(t.status));
  field(out, "created_at_ms", t.created_ms);
  if (t.started_ms) field(out, "started_at_ms", t.started_ms);
  if (t.finished_ms) {
    field(out, "finished_at_ms", t.finished_ms);
    field(out, "duration_ms", t.finished_ms - (t.started_ms ? t.started_ms : t.created_ms));
  }
  if (!t.error_message.empty()) {
    key(out, "error");
    out += '{';
    field(out, "code", error_code(t));
    field(out, "message", t.error_message);
    field(out, "node", t.error_node);
    out += '}';
  }
  if (!t.waiting_for.empty()) field(out, "waiting_for", t.waiting_for);
  if (t.status == flows::trace_status::suspended) field(out, "hook_id", t.hook_id);
  out += '}';
  return out;
}

std::string trace_details(const flows::trace_record& t) {
  std::string out = trace_summary(t);
  out.pop_back();
  field_value(out, "input", t.input.ref());
  if (t.status == flows::trace_status::completed) field_value(out, "output", t.output.ref());
  key(out, "nodes");
  out += '{';
  for (const auto& [name, n] : t.nodes) {
    key(out, name);
    out += '{';
    field(out, "status", flows::to_string(n.status));
    if (!n.port.empty()) field(out, "port", n.port);
    if (n.started_ms) field(out, "started_at_ms", n.started_ms);
    field(out, "duration_us", n.duration_us);
    if (n.runs > 1) field(out, "runs", n.runs);
    if (n.status == flows::node_status::suspended && t.status == flows::trace_status::suspended)
      field(out, "hook_id", t.hook_id);
    out += '}';
  }
  out += "}}";
  return out;
}

void append_log(std::string& out, const flows::log_line& l) {
  out += '{';
  key(out, "timestamp");
  out += '"';
  io::append_rfc3339_ms(out, l.unix_ms);
  out += '"';
  field(out, "level", io::to_string(l.level));
  field(out, "node", l.node);
  field(out, "message", l.message);
  out += '}';
}

// What the owner shard answered about a trace.
struct owner_reply {
  enum kind_t { found, not_found, unavailable, conflict } kind = not_found;
  std::string body;  // found: what `render` made; otherwise: why
};

// A trace not found while its shard still replays the WAL, or once it has
// stopped, may exist: unavailable, not not_found.
owner_reply absent(ctx_t ctx) {
  if (!here(ctx)) return {owner_reply::unavailable, "xerv is stopping"};
  if (here(ctx)->recovering()) return {owner_reply::unavailable, "recovering the write-ahead log; retry shortly"};
  return {};
}

// On the owner: `render(trace)` (a suspended trace as its record shows it).
template <class F>
io::task<owner_reply> render_local(ctx_t ctx, core::trace_id id, F render) {
  if (!here(ctx)) co_return absent(ctx);
  auto looking = here(ctx)->lookup_trace(id);
  std::shared_ptr<flows::trace_record> t = co_await std::move(looking);
  if (!t) co_return absent(ctx);
  co_return owner_reply{owner_reply::found, render(*t)};
}

template <class F>
io::task<owner_reply> on_owner(ctx_t ctx, core::trace_id id, F render) {
  if (id.shard() >= io::shard_count()) co_return owner_reply{};
  co_return co_await io::submit_to(id.shard(), [ctx, id, render] { return render_local(ctx, id, render); });
}

response trace_not_found(std::string_view id) {
  std::string details = "{";
  field(details, "trace_id", id);
  details += '}';
  return json_error(404, "trace_not_found", "no trace " + std::string(id), details);
}

response owner_response(const owner_reply& r, std::string_view id) {
  if (r.kind == owner_reply::unavailable) return unavailable(r.body);
  if (r.kind == owner_reply::conflict) return json_error(409, "conflict", r.body);
  if (r.kind == owner_reply::not_found) return trace_not_found(id);
  return json_ok(200, r.body);
}

// A trace another node ran, as the dispatch backend's replicated state has it
// (status, owner, times: the details stay on the node that ran it).
std::string whereabouts_json(const core::trace_id& id, const core::trace_whereabouts& w) {
  std::string out = "{";
  field(out, "id", id.to_string());
  field(out, "pipeline_id", w.pipeline);
  field(out, "status", w.finished ? flows::to_string(flows::final_status(w.status)) : "running");
  field(out, "node_id", w.owner);
  field(out, "attempt", uint64_t(w.attempt));
  time_field(out, "started_at", w.created_ms);
  if (w.finished) time_field(out, "finished_at", w.finished_ms);
  out += '}';
  return out;
}

io::task<response> get_trace(ctx_t ctx, std::string id_text) {
  auto id = core::trace_id::parse(id_text);
  if (!id) co_return trace_not_found(id_text);
  auto reply = co_await on_owner(ctx, *id, [](const flows::trace_record& t) { return trace_details(t); });
  if (reply.kind == owner_reply::not_found && here(ctx)) {
    auto locating = here(ctx)->options().queue->locate(*id);
    std::optional<core::trace_whereabouts> w = co_await std::move(locating);
    if (w) co_return json_ok(200, whereabouts_json(*id, *w));
  }
  co_return owner_response(reply, id_text);
}

io::task<response> get_logs(ctx_t ctx, std::string id_text) {
  auto id = core::trace_id::parse(id_text);
  if (!id) co_return trace_not_found(id_text);
  auto reply = co_await on_owner(ctx, *id, [](const flows::trace_record& t) {
    std::string out = "{\"logs\":[";
    for (const auto& l : t.logs) {
      if (out.back() != '[') out += ',';
      append_log(out, l);
    }
    out += "]}";
    return out;
  });
  co_return owner_response(reply, id_text);
}

// On the owner: ends the trace if it is a recovered one waiting for its pipeline.
io::task<owner_reply> discard_local(ctx_t ctx, core::trace_id id) {
  if (!here(ctx)) co_return absent(ctx);
  auto looking = here(ctx)->lookup_trace(id);
  std::shared_ptr<flows::trace_record> t = co_await std::move(looking);
  if (!t) co_return absent(ctx);
  if (t->waiting_for.empty())
    co_return owner_reply{owner_reply::conflict, "trace " + id.to_string() +
                                                     " is not waiting for its pipeline; only such traces can be discarded"};
  std::string pipeline = t->pipeline;
  auto discarding = here(ctx)->discard_waiting(pipeline, id);
  co_await std::move(discarding);
  co_return owner_reply{owner_reply::found, trace_summary(*t)};
}

io::task<response> discard_trace(ctx_t ctx, std::string id_text) {
  auto id = core::trace_id::parse(id_text);
  if (!id || id->shard() >= io::shard_count()) co_return trace_not_found(id_text);
  core::trace_id tid = *id;
  auto job = io::submit_to(tid.shard(), [ctx, tid] { return discard_local(ctx, tid); });
  owner_reply r = co_await std::move(job);
  co_return owner_response(r, id_text);
}

io::task<size_t> discard_here(ctx_t ctx, std::string pipeline) {
  if (!here(ctx)) co_return 0;
  auto discarding = here(ctx)->discard_waiting(pipeline, std::nullopt);
  co_return co_await std::move(discarding);
}

// Every waiting trace of one pipeline, on every shard.
io::task<response> discard_traces(ctx_t ctx, request& req) {
  auto parsed = core::parse_json(req.body());
  auto* v = std::get_if<core::value>(&parsed);
  std::optional<core::value_ref> pid;
  if (v && v->ref().type() == core::json_type::object) pid = v->ref().find("pipeline_id");
  if (!pid || pid->type() != core::json_type::string)
    co_return json_error(400, "invalid_payload", "a JSON object with pipeline_id (a string) is required");
  std::string pipeline(pid->as_string());
  auto job = io::invoke_on_all([ctx, pipeline] { return discard_here(ctx, pipeline); });
  auto counts = co_await std::move(job);
  size_t n = 0;
  for (size_t c : counts) n += c;
  std::string out = "{";
  field(out, "pipeline_id", pipeline);
  field(out, "discarded", n);
  out += '}';
  co_return json_ok(200, std::move(out));
}

struct log_batch {
  bool found = false;
  bool finished = false;
  std::string status;
  std::vector<std::string> lines;  // JSON objects
};

// On the owner: lines from `from` on, waiting for a change when there are none.
io::task<log_batch> next_logs(ctx_t ctx, core::trace_id id, size_t from) {
  log_batch b;
  if (!here(ctx)) co_return b;  // the shard is stopping
  auto looking = here(ctx)->lookup_trace(id);
  std::shared_ptr<flows::trace_record> t = co_await std::move(looking);
  if (!t || !here(ctx)) co_return b;
  b.found = true;
  if (t->logs.size() <= from && !t->finished()) {
    auto changed = here(ctx)->wait_change(t);
    co_await std::move(changed);
  }
  if (!here(ctx)) co_return b;
  for (size_t i = from; i < t->logs.size(); ++i) {
    std::string line = "{";
    line.pop_back();
    append_log(line, t->logs[i]);
    b.lines.push_back(std::move(line));
  }
  b.finished = (t->finished() || here(ctx)->stopped()) && from + b.lines.size() >= t->logs.size();
  b.status = flows::to_string(t->status);
  co_return b;
}

io::task<io::result<void>> stream_logs(stream& s, ctx_t ctx, core::trace_id id) {
  size_t sent = 0;
  for (;;) {
    auto next = io::submit_to(id.shard(), [ctx, id, sent] { return next_logs(ctx, id, sent); });
    log_batch b = co_await std::move(next);
    for (const auto& line : b.lines) {
      std::string event = "event: log\ndata: " + line + "\n\n";
      auto w = co_await s.write(event);
      if (!w) co_return w;
    }
    sent += b.lines.size();
    if (!b.found || b.finished) {
      std::string event = "event: end\ndata: {\"status\":\"" + (b.found ? b.status : std::string("unknown")) + "\"}\n\n";
      auto w = co_await s.write(event);
      if (!w) co_return w;
      co_return co_await s.finish();
    }
  }
}

io::task<response> stream_trace_logs(ctx_t ctx, std::string id_text) {
  auto id = core::trace_id::parse(id_text);
  if (!id || id->shard() >= io::shard_count()) co_return trace_not_found(id_text);
  auto exists = co_await on_owner(ctx, *id, [](const flows::trace_record&) { return std::string(); });
  if (exists.kind != owner_reply::found) co_return owner_response(exists, id_text);
  response r;
  r.content_type = "text/event-stream";
  r.headers.emplace_back("Cache-Control", "no-cache");
  core::trace_id tid = *id;
  r.streamer = [ctx, tid](stream& s) { return stream_logs(s, ctx, tid); };
  co_return r;
}

std::optional<flows::trace_status> parse_status(std::string_view s) {
  for (auto st : {flows::trace_status::pending, flows::trace_status::running, flows::trace_status::completed,
                  flows::trace_status::failed, flows::trace_status::timed_out, flows::trace_status::suspended})
    if (s == flows::to_string(st)) return st;
  return std::nullopt;
}

struct listed {
  uint64_t created_ms;
  std::string json;
};

struct listed_page {
  size_t total = 0;            // every match on this shard
  std::vector<listed> first;  // the first `max` of them, in the listing's order
};

listed_page local_traces(ctx_t ctx, std::string pipeline, std::optional<flows::trace_status> status, size_t max) {
  listed_page out;
  if (!here(ctx)) return out;  // the shard has stopped
  auto page = here(ctx)->list_traces(pipeline, status, max);
  out.total = page.total;
  for (const auto& t : page.newest) out.first.push_back({t->created_ms, trace_summary(*t)});
  return out;
}

io::task<response> list_traces(ctx_t ctx, request& req) {
  std::string pipeline = query_param(req.query(), "pipeline_id");
  std::string status_text = query_param(req.query(), "status");
  std::optional<flows::trace_status> status;
  if (!status_text.empty()) {
    status = parse_status(status_text);
    if (!status) co_return json_error(400, "invalid_payload", "unknown status '" + status_text + "'");
  }
  auto number = [&](const char* name, uint64_t fallback, uint64_t max) -> std::optional<uint64_t> {
    std::string t = query_param(req.query(), name);
    if (t.empty()) return fallback;
    uint64_t v = 0;
    auto [p, ec] = std::from_chars(t.data(), t.data() + t.size(), v);
    if (ec != std::errc() || p != t.data() + t.size() || v > max) return std::nullopt;
    return v;
  };
  auto limit = number("limit", 100, 1000);
  auto offset = number("offset", 0, 1'000'000);
  if (!limit || !offset) co_return json_error(400, "invalid_payload", "limit must be 0-1000 and offset a number");
  size_t want = size_t(*limit + *offset);
  auto job = io::invoke_on_all([ctx, pipeline, status, want] { return local_traces(ctx, pipeline, status, want); });
  auto parts = co_await std::move(job);
  std::vector<listed> all;
  size_t total = 0;
  for (auto& p : parts) {
    total += p.total;
    for (auto& l : p.first) all.push_back(std::move(l));
  }
  std::stable_sort(all.begin(), all.end(), [](const listed& a, const listed& b) { return a.created_ms > b.created_ms; });
  std::string out = "{\"traces\":[";
  for (size_t i = *offset; i < all.size() && i < *offset + *limit; ++i) {
    if (out.back() != '[') out += ',';
    out += all[i].json;
  }
  out += "],\"total\":" + std::to_string(total) + ",\"offset\":" + std::to_string(*offset) +
         ",\"limit\":" + std::to_string(*limit) + "}";
  co_return json_ok(200, std::move(out));
}

// ---- admission ----

response admission_error(const flows::admission& a, std::string_view pipeline, std::string_view trigger) {
  std::string details = "{";
  field(details, "pipeline_id", pipeline);
  switch (a.error) {
    case flows::admit_error::pipeline_not_found: return pipeline_not_found(pipeline);
    case flows::admit_error::trigger_not_found:
      field(details, "trigger", trigger);
      details += '}';
      return json_error(404, "trigger_not_found", "pipeline '" + std::string(pipeline) + "' has no trigger '" +
                                                     std::string(trigger) + "'", details);
    case flows::admit_error::trigger_disabled:
      field(details, "trigger", trigger);
      details += '}';
      return json_error(503, "trigger_disabled", "trigger '" + std::string(pipeline) + "." + std::string(trigger) +
                                                     "' is disabled (POST /api/v1/triggers/{id}/enable)", details);
    case flows::admit_error::not_running:
      field(details, "state", a.detail);
      details += '}';
      return json_error(503, "pipeline_not_running", "pipeline '" + std::string(pipeline) + "' is " + a.detail, details);
    case flows::admit_error::circuit_open: {
      field_raw(details, "retry_after_secs", a.detail);
      details += '}';
      response r = json_error(503, "circuit_open",
                              "pipeline '" + std::string(pipeline) +
                                  "' failed too often: its circuit breaker is open; retry in " + a.detail + " s",
                              details);
      r.headers.emplace_back("Retry-After", a.detail);
      return r;
    }
    case flows::admit_error::queue_full: {
      field(details, "trigger", trigger);
      field_raw(details, "capacity", a.detail);
      details += '}';
      response r = json_error(503, "queue_full",
                              "the queue of '" + std::string(pipeline) + "." + std::string(trigger) + "' is full (" +
                                  a.detail + " messages); retry later",
                              details);
      r.headers.emplace_back("Retry-After", "1");
      return r;
    }
    case flows::admit_error::pending_full: {
      field_raw(details, "pending_max", a.detail);
      details += '}';
      response r = json_error(503, "unavailable",
                              "too many traces of pipeline '" + std::string(pipeline) + "' wait for a slot (" +
                                  a.detail + " per shard); retry later",
                              details);
      r.headers.emplace_back("Retry-After", "1");
      return r;
    }
    case flows::admit_error::unavailable:
      details += '}';
      return json_error(503, "unavailable", "cannot accept traces now: " + a.detail + "; retry later", details);
    case flows::admit_error::none: break;
  }
  return json_error(500, "internal", "admission failed");
}

std::optional<response> parse_input(ctx_t ctx, std::string_view body, core::value& out) {
  if (body.size() > ctx->opts.max_body_bytes)
    return json_error(413, "payload_too_large", "body exceeds " + std::to_string(ctx->opts.max_body_bytes) + " bytes");
  if (body.find_first_not_of(" \t\r\n") == std::string_view::npos) {
    out = core::value();
    return std::nullopt;
  }
  auto r = core::parse_json(body);
  if (auto* e = std::get_if<core::json_error>(&r)) {
    std::string details = "{\"offset\":" + std::to_string(e->offset) + "}";
    return json_error(400, "invalid_payload", "malformed JSON: " + e->message, details);
  }
  out = std::get<core::value>(std::move(r));
  return std::nullopt;
}

response trace_result(const flows::trace_record& t, bool wrapped) {
  if (t.status == flows::trace_status::suspended) {  // waits in a std::wait (SPEC §5)
    std::string out = "{";
    field(out, "trace_id", t.id.to_string());
    field(out, "status", "suspended");
    field(out, "hook_id", t.hook_id);
    out += '}';
    response r = json_ok(202, std::move(out));
    r.headers.emplace_back("X-Xerv-Trace-Id", t.id.to_string());
    return r;
  }
  if (t.status == flows::trace_status::completed) {
    if (!wrapped) {
      response r = json_ok(200, core::to_json(t.output.ref()));
      r.headers.emplace_back("X-Xerv-Trace-Id", t.id.to_string());
      return r;
    }
    std::string out = "{";
    field(out, "trace_id", t.id.to_string());
    field(out, "status", "completed");
    field_value(out, "output", t.output.ref());
    out += '}';
    response r = json_ok(200, std::move(out));
    r.headers.emplace_back("X-Xerv-Trace-Id", t.id.to_string());
    return r;
  }
  std::string details = "{";
  field(details, "trace_id", t.id.to_string());
  field(details, "status", flows::to_string(t.status));
  field(details, "code", error_code(t));
  field(details, "node", t.error_node);
  field(details, "message", t.error_message);
  details += '}';
  response r = json_error(500, "execution_failed", "trace " + std::string(flows::to_string(t.status)) +
                                                       (t.error_message.empty() ? "" : ": " + t.error_message), details);
  r.headers.emplace_back("X-Xerv-Trace-Id", t.id.to_string());
  return r;
}

response accepted(const core::trace_id& id) {
  std::string out = "{";
  field(out, "trace_id", id.to_string());
  out += '}';
  response r = json_ok(202, std::move(out));
  r.headers.emplace_back("X-Xerv-Trace-Id", id.to_string());
  return r;
}

// The Idempotency-Key header: absent (empty), or a usable key; a bad one is 400.
std::optional<response> idempotency_key(request& req, std::string& out) {
  std::string_view k = req.header("Idempotency-Key");
  if (k.empty()) return std::nullopt;
  if (!flows::valid_idempotency_key(k))
    return json_error(400, "invalid_payload", "Idempotency-Key must be 1 to 255 visible ASCII characters");
  out = std::string(k);
  return std::nullopt;
}

// Admits on this shard; answers 202, or for `wait` the trace's result. A
// replayed idempotency key answers for the trace it started.
io::task<response> admit_trace(ctx_t ctx, std::string pipeline, std::string trigger, core::value input, bool wait,
                               bool wrapped, std::string key) {
  flows::engine* e = here(ctx);
  if (!e) co_return unavailable("xerv is stopping");
  flows::admission a = e->admit(pipeline, trigger, std::move(input), key);
  if (a.error != flows::admit_error::none) co_return admission_error(a, pipeline, trigger);
  auto replay_marked = [&a](response r) {
    if (a.replayed) r.headers.emplace_back("Idempotency-Replayed", "true");
    return r;
  };
  if (a.replayed && !a.trace) co_return replay_marked(accepted(a.replayed_id));  // its result left the store
  // Acknowledge only what a crash cannot lose (SPEC §6).
  // (Tasks bound to names first: GCC 12 and temporaries in co_await, docs/runtime.md.)
  auto acked = e->wait_acknowledged(a.trace);
  if (!co_await std::move(acked)) {
    a.error = flows::admit_error::unavailable;
    a.detail = "the write-ahead log could not write the trace (disk full?)";
    co_return admission_error(a, pipeline, trigger);
  }
  if (!wait) co_return replay_marked(accepted(a.trace->id));
  auto done = e->wait_finished(a.trace);
  if (!co_await std::move(done)) {
    response r = json_error(503, "unavailable",
                            a.trace->finished() ? "the trace finished, but its end could not be made durable (disk "
                                                  "full?); it resumes after a restart"
                                                : "xerv is stopping; the trace resumes after the restart");
    r.headers.emplace_back("X-Xerv-Trace-Id", a.trace->id.to_string());
    co_return r;
  }
  co_return replay_marked(trace_result(*a.trace, wrapped));
}

// A keyed admission runs on the key's owner shard, where the key is recorded.
// (Not a coroutine: the unkeyed path costs no extra frame.)
io::task<response> start_trace(ctx_t ctx, std::string pipeline, std::string trigger, core::value input, bool wait,
                               bool wrapped, std::string key) {
  if (key.empty())
    return admit_trace(ctx, std::move(pipeline), std::move(trigger), std::move(input), wait, wrapped, {});
  // (core::value owns plain heap bytes: it may move to another shard.)
  unsigned owner = flows::idempotency_owner(pipeline, key, io::shard_count());
  return io::submit_to(owner, [ctx, pipeline = std::move(pipeline), trigger = std::move(trigger),
                               input = std::move(input), wait, wrapped, key = std::move(key)]() mutable {
    return admit_trace(ctx, std::move(pipeline), std::move(trigger), std::move(input), wait, wrapped, std::move(key));
  });
}

io::task<response> post_trace(ctx_t ctx, request& req) {
  std::string key;
  if (auto bad = idempotency_key(req, key)) co_return std::move(*bad);
  core::value body;
  if (auto err = parse_input(ctx, req.body(), body)) co_return std::move(*err);
  core::value_ref b = body.ref();
  auto pid = b.find("pipeline_id");
  if (!pid || pid->type() != core::json_type::string)
    co_return json_error(400, "invalid_payload", "pipeline_id (a string) is required");
  std::string pipeline(pid->as_string());
  const flows::pipeline* p = here(ctx) ? here(ctx)->find(pipeline) : nullptr;
  if (!p) co_return pipeline_not_found(pipeline);
  std::string trigger;
  if (auto t = b.find("trigger"); t && t->type() == core::json_type::string) trigger = std::string(t->as_string());
  else {
    // The first manual trigger, else the first trigger.
    for (const auto& t2 : p->flow->triggers)
      if (t2.type == "manual") {
        trigger = t2.id;
        break;
      }
    if (trigger.empty()) trigger = p->flow->triggers.front().id;
  }
  core::value input;
  if (auto in = b.find("input")) input = core::value(std::string(in->bytes()));
  bool wait = false;
  if (auto w = b.find("wait"); w && w->type() == core::json_type::boolean) wait = w->as_bool();
  co_return co_await start_trace(ctx, pipeline, trigger, std::move(input), wait, true, std::move(key));
}

io::task<response> fire_trigger(ctx_t ctx, request& req) {
  std::string id(req.param("id"));
  size_t dot = id.find('.');
  if (dot == std::string::npos) co_return json_error(404, "trigger_not_found", "trigger ids are pipeline.trigger");
  std::string key;
  if (auto bad = idempotency_key(req, key)) co_return std::move(*bad);
  core::value body;
  if (auto err = parse_input(ctx, req.body(), body)) co_return std::move(*err);
  core::value payload;
  if (body.ref().type() == core::json_type::object)
    if (auto p = body.ref().find("payload")) payload = core::value(std::string(p->bytes()));
  co_return co_await start_trace(ctx, id.substr(0, dot), id.substr(dot + 1), std::move(payload), false, true,
                                 std::move(key));
}

// One shard's view of a trigger: its admissions here, and for a cron or
// filesystem trigger run by this shard, its schedule's or watch's state (JSON
// fields; `error`: the watch's, which makes the trigger's state "error").
struct trigger_part {
  uint64_t fires = 0, last_ms = 0;
  std::string extra;
  std::string error;
};

std::map<std::string, trigger_part, std::less<>> local_triggers(ctx_t ctx) {
  std::map<std::string, trigger_part, std::less<>> out;
  if (!here(ctx)) return out;
  for (const auto& [name, p] : here(ctx)->pipelines())
    for (size_t i = 0; i < p->flow->triggers.size(); ++i) {
      const flows::trigger_def& t = p->flow->triggers[i];
      trigger_part& part = out[name + "." + t.id];
      part.fires = p->triggers[i].fires;
      part.last_ms = p->triggers[i].last_ms;
      std::string j = "{";
      if (const flows::fs_watch::status* w = t.fs ? here(ctx)->watch_state(name, t.id) : nullptr) {
        field(j, "watched_dirs", w->watches);
        field(j, "events_count", w->events);
        field(j, "overflow_count", w->overflows);
        field(j, "dropped_count", w->dropped);
        field(j, "refused_count", w->refused);
        if (!w->error.empty()) field(j, "error", w->error);
        part.error = w->error;
      }
      auto v = t.cron ? here(ctx)->cron_state(name, t.id) : std::nullopt;
      if (v) {
        time_field(j, "next_fire_at", v->next_s ? uint64_t(*v->next_s) * 1000 : 0);
        time_field(j, "last_scheduled_at", uint64_t(v->last_s) * 1000);
        field(j, "skipped_count", v->skipped);
        field(j, "running", v->running);
      }
      if (j.size() > 1) part.extra = j.substr(1);
    }
  return out;
}

io::task<response> list_triggers(ctx_t ctx) {
  if (!here(ctx)) co_return unavailable("xerv is stopping");
  auto job = io::invoke_on_all([ctx] { return local_triggers(ctx); });
  auto parts = co_await std::move(job);
  std::map<std::string, trigger_part, std::less<>> all;
  for (auto& part : parts)
    for (auto& [id, tp] : part) {
      trigger_part& sum = all[id];
      sum.fires += tp.fires;
      sum.last_ms = std::max(sum.last_ms, tp.last_ms);
      if (!tp.extra.empty()) sum.extra = std::move(tp.extra);
      if (!tp.error.empty()) sum.error = std::move(tp.error);
    }
  if (!here(ctx)) co_return unavailable("xerv is stopping");
  std::string out = "{\"triggers\":[";
  for (const auto& [name, p] : here(ctx)->pipelines())
    for (size_t i = 0; i < p->flow->triggers.size(); ++i) {
      const flows::trigger_def& t = p->flow->triggers[i];
      if (out.back() != '[') out += ',';
      append_trigger(out, *p->flow, t);
      out.pop_back();
      field(out, "pipeline_state", flows::to_string(p->state));
      bool on = !p->triggers[i].off;
      field_raw(out, "enabled", on ? "true" : "false");
      auto sum = all.find(name + "." + t.id);
      bool failing = sum != all.end() && !sum->second.error.empty();
      field(out, "state", !on ? "disabled" : failing ? "error" : "active");
      field(out, "fire_count", sum == all.end() ? 0 : sum->second.fires);
      time_field(out, "last_fired_at", sum == all.end() ? 0 : sum->second.last_ms);
      if (sum != all.end() && !sum->second.extra.empty()) out += "," + sum->second.extra;
      out += '}';
    }
  out += "]}";
  co_return json_ok(200, std::move(out));
}

io::task<response> webhook_trace(ctx_t ctx, std::string pipeline, std::string trigger, std::string body,
                                 std::string key) {
  const flows::pipeline* p = here(ctx) ? here(ctx)->find(pipeline) : nullptr;
  if (!p) co_return pipeline_not_found(pipeline);
  const flows::trigger_def* t = p->flow->find_trigger(trigger);
  bool sync = t && t->respond == flows::respond_mode::sync;
  core::value input;
  if (auto err = parse_input(ctx, body, input)) co_return std::move(*err);
  co_return co_await start_trace(ctx, pipeline, trigger, std::move(input), sync, false, std::move(key));
}

// ---- queues (SPEC §3) ----

response queue_not_found(std::string_view name) {
  std::string details = "{";
  field(details, "queue", name);
  details += '}';
  return json_error(404, "queue_not_found", "no pipeline consumes queue '" + std::string(name) + "'", details);
}

// A message is a trace of the queue's consumer, admitted durably (202 once it
// is): it runs exactly once, across kill -9 too.
io::task<response> post_message(ctx_t ctx, request& req) {
  std::string name(req.param("name"));
  std::string key;
  if (auto bad = idempotency_key(req, key)) co_return std::move(*bad);
  if (!here(ctx)) co_return unavailable("xerv is stopping");
  auto consumer = here(ctx)->find_queue(name);
  if (!consumer) co_return queue_not_found(name);
  core::value input;
  if (auto err = parse_input(ctx, req.body(), input)) co_return std::move(*err);
  co_return co_await start_trace(ctx, consumer->first, consumer->second, std::move(input), false, true, std::move(key));
}

// Depth per queue on this shard: "pipeline.trigger" -> messages waiting.
std::map<std::string, uint64_t, std::less<>> local_depths(ctx_t ctx) {
  std::map<std::string, uint64_t, std::less<>> out;
  if (!here(ctx)) return out;
  for (const auto& [name, p] : here(ctx)->pipelines())
    for (size_t i = 0; i < p->flow->triggers.size(); ++i)
      if (!p->flow->triggers[i].queue.empty()) out[name + "." + p->flow->triggers[i].id] = p->triggers[i].queued;
  return out;
}

io::task<response> list_queues(ctx_t ctx) {
  if (!here(ctx)) co_return unavailable("xerv is stopping");
  auto job = io::invoke_on_all([ctx] { return local_depths(ctx); });
  auto parts = co_await std::move(job);
  if (!here(ctx)) co_return unavailable("xerv is stopping");
  std::string out = "{\"queues\":[";
  for (const auto& [name, p] : here(ctx)->pipelines())
    for (const auto& t : p->flow->triggers) {
      if (t.queue.empty()) continue;
      uint64_t depth = 0;
      for (const auto& part : parts)
        if (auto d = part.find(name + "." + t.id); d != part.end()) depth += d->second;
      if (out.back() != '[') out += ',';
      out += '{';
      field(out, "name", t.queue);
      field(out, "pipeline_id", name);
      field(out, "trigger", t.id);
      field(out, "depth", depth);
      field(out, "capacity", uint64_t(t.capacity));
      out += '}';
    }
  out += "]}";
  co_return json_ok(200, std::move(out));
}

// ---- suspensions (SPEC §5) ----

listed_page local_suspensions(ctx_t ctx, std::string pipeline, size_t max) {
  listed_page out;
  if (!here(ctx)) return out;
  auto page = here(ctx)->suspensions(pipeline, max);
  out.total = page.total;
  for (const auto& s : page.oldest) {
    std::string j = "{";
    field(j, "trace_id", s.id.to_string());
    field(j, "hook_id", s.hook_id);
    field(j, "pipeline_id", s.pipeline);
    field(j, "node", s.node);
    field_value(j, "metadata", s.metadata.ref());
    time_field(j, "created_at", s.created_ms);
    time_field(j, "expires_at", s.expires_ms);
    j += '}';
    out.first.push_back({s.created_ms, std::move(j)});
  }
  return out;
}

io::task<response> list_suspensions(ctx_t ctx, request& req) {
  std::string pipeline = query_param(req.query(), "pipeline_id");
  uint64_t limit = 100, offset = 0;
  for (auto [name, v, max] : {std::tuple{"limit", &limit, uint64_t(1000)}, std::tuple{"offset", &offset, uint64_t(1) << 40}}) {
    std::string t = query_param(req.query(), name);
    if (t.empty()) continue;
    auto [p, ec] = std::from_chars(t.data(), t.data() + t.size(), *v);
    if (ec != std::errc() || p != t.data() + t.size() || *v > max)
      co_return json_error(400, "invalid_payload", "limit must be 0-1000 and offset a number");
  }
  size_t want = size_t(offset + limit);
  auto job = io::invoke_on_all([ctx, pipeline, want] { return local_suspensions(ctx, pipeline, want); });
  auto parts = co_await std::move(job);
  std::vector<listed> all;
  size_t total = 0;
  for (auto& p : parts) {
    total += p.total;
    for (auto& l : p.first) all.push_back(std::move(l));
  }
  std::stable_sort(all.begin(), all.end(), [](const listed& a, const listed& b) { return a.created_ms < b.created_ms; });
  std::string out = "{\"suspensions\":[";
  for (size_t i = offset; i < all.size() && i < offset + limit; ++i) {
    if (out.back() != '[') out += ',';
    out += all[i].json;
  }
  out += "],\"count\":" + std::to_string(total) + ",\"offset\":" + std::to_string(offset) +
         ",\"limit\":" + std::to_string(limit) + "}";
  co_return json_ok(200, std::move(out));
}

flows::engine::hook_traces local_hooks(ctx_t ctx, std::string hook) {
  return here(ctx) ? here(ctx)->find_hook(hook) : flows::engine::hook_traces{};
}

io::task<flows::engine::resume_error> resume_here(ctx_t ctx, core::trace_id id, uint8_t decision, core::value data) {
  if (!here(ctx)) co_return flows::engine::resume_error::unavailable;
  auto resuming = here(ctx)->resume_suspended(id, decision, std::move(data));
  co_return co_await std::move(resuming);
}

io::task<response> resume_suspension(ctx_t ctx, request& req) {
  std::string target(req.param("id"));
  core::value body;
  if (auto err = parse_input(ctx, req.body(), body)) co_return std::move(*err);
  auto d = body.ref().type() == core::json_type::object ? body.ref().find("decision") : std::nullopt;
  std::optional<flows::nodes::wait_decision> decision;
  if (d && d->type() == core::json_type::string) decision = flows::nodes::parse_wait_decision(d->as_string());
  if (!decision) co_return json_error(400, "invalid_payload", "decision must be approve, reject or escalate");
  core::value data;
  if (auto rd = body.ref().find("response_data")) data = core::value(std::string(rd->bytes()));
  else data = std::get<core::value>(core::parse_json("{}"));
  // A trace id names its shard; a hook id is looked up on every shard.
  std::optional<core::trace_id> id = core::trace_id::parse(target);
  if (!id) {
    auto job = io::invoke_on_all([ctx, target] { return local_hooks(ctx, target); });
    auto parts = co_await std::move(job);
    std::vector<core::trace_id> found;
    size_t resumed = 0;
    for (auto& p : parts) {
      found.insert(found.end(), p.suspended.begin(), p.suspended.end());
      resumed += p.resumed.size();
    }
    if (found.empty() && resumed)
      co_return json_error(409, "not_suspended", "hook '" + target + "' was resumed already");
    if (found.empty())
      co_return json_error(404, "trace_not_found", "no suspended trace waits on hook '" + target + "'");
    if (found.size() > 1) {
      std::string details = "{\"trace_ids\":[";
      for (const auto& f : found) {
        if (details.back() != '[') details += ',';
        details += '"' + f.to_string() + '"';
      }
      details += "]}";
      co_return json_error(409, "conflict", "several suspended traces wait on hook '" + target +
                                                "'; resume one by its trace id", details);
    }
    id = found.front();
  }
  if (id->shard() >= io::shard_count()) co_return trace_not_found(target);
  uint8_t dec = uint8_t(*decision);
  core::trace_id tid = *id;
  auto job = io::submit_to(tid.shard(), [ctx, tid, dec, data = std::move(data)]() mutable {
    return resume_here(ctx, tid, dec, std::move(data));
  });
  flows::engine::resume_error r = co_await std::move(job);
  switch (r) {
    case flows::engine::resume_error::none: break;
    case flows::engine::resume_error::not_found: co_return trace_not_found(target);
    case flows::engine::resume_error::not_suspended:
      co_return json_error(409, "not_suspended", "trace " + tid.to_string() + " is not suspended (resumed already?)");
    case flows::engine::resume_error::unavailable:
      co_return unavailable("cannot resume the trace now (recovering, stopping, or the write-ahead log fails); retry");
  }
  std::string out = "{";
  field(out, "trace_id", tid.to_string());
  field(out, "decision", flows::nodes::to_string(*decision));
  out += '}';
  response resp = json_ok(200, std::move(out));
  resp.headers.emplace_back("X-Xerv-Trace-Id", tid.to_string());
  co_return resp;
}

io::task<response> post_pipeline(ctx_t ctx, request& req, bool update) {
  if (req.body().size() > ctx->opts.flow_bytes_max)
    co_return json_error(413, "payload_too_large",
                         "flow YAML exceeds " + std::to_string(ctx->opts.flow_bytes_max) + " bytes");
  flows::deploy_request dr;
  dr.yaml = std::string(req.body());
  if (update) dr.update = std::string(req.param("id"));
  // ?revision=N: refuse with 409 unless the pipeline is still at revision N.
  if (std::string rev = query_param(req.query(), "revision"); !rev.empty()) {
    auto [p, ec] = std::from_chars(rev.data(), rev.data() + rev.size(), dr.expected_revision);
    if (ec != std::errc() || p != rev.data() + rev.size() || dr.expected_revision == 0)
      co_return json_error(400, "invalid_payload", "revision must be a positive number");
  }
  auto job = io::submit_to(flows::control_shard, [ctx, dr] { return control_deploy(ctx, dr); });
  co_return co_await std::move(job);
}

io::task<response> answer_now(response r) { co_return r; }

}  // namespace

std::optional<io::task<response>> webhook(const api_context& c, request& req) {
  ctx_t ctx = &c;
  flows::engine* e = here(ctx);
  if (!e) return std::nullopt;
  auto hit = e->find_webhook(req.method(), req.path());
  if (!hit) return std::nullopt;
  req.route = "webhook";
  std::string key;
  if (auto bad = idempotency_key(req, key)) return answer_now(std::move(*bad));
  return webhook_trace(ctx, hit->first, hit->second, std::string(req.body()), std::move(key));
}

void add_api_routes(router& r, const api_context& c) {
  ctx_t ctx = &c;
  r.add("GET", "/api/v1/pipelines", [ctx](request&) { return list_pipelines(ctx); });
  r.add("POST", "/api/v1/pipelines", [ctx](request& q) { return post_pipeline(ctx, q, false); });
  r.add("POST", "/api/v1/pipelines/validate", [](request& q) { return validate_pipeline(std::string(q.body())); });
  r.add("GET", "/api/v1/pipelines/{id}", [ctx](request& q) { return get_pipeline(ctx, std::string(q.param("id"))); });
  r.add("PUT", "/api/v1/pipelines/{id}", [ctx](request& q) { return post_pipeline(ctx, q, true); });
  r.add("DELETE", "/api/v1/pipelines/{id}",
        [ctx](request& q) { return delete_pipeline(ctx, std::string(q.param("id"))); });
  for (const char* action : {"start", "pause", "resume", "drain", "stop"}) {
    std::string a = action;
    r.add("POST", "/api/v1/pipelines/{id}/" + a,
          [ctx, a](request& q) { return change_state(ctx, std::string(q.param("id")), a); });
  }
  r.add("GET", "/api/v1/traces", [ctx](request& q) { return list_traces(ctx, q); });
  r.add("POST", "/api/v1/traces", [ctx](request& q) { return post_trace(ctx, q); });
  r.add("POST", "/api/v1/traces/discard", [ctx](request& q) { return discard_traces(ctx, q); });
  r.add("GET", "/api/v1/traces/{id}", [ctx](request& q) { return get_trace(ctx, std::string(q.param("id"))); });
  r.add("POST", "/api/v1/traces/{id}/discard",
        [ctx](request& q) { return discard_trace(ctx, std::string(q.param("id"))); });
  r.add("GET", "/api/v1/traces/{id}/logs", [ctx](request& q) { return get_logs(ctx, std::string(q.param("id"))); });
  r.add("GET", "/api/v1/traces/{id}/logs/stream",
        [ctx](request& q) { return stream_trace_logs(ctx, std::string(q.param("id"))); });
  r.add("GET", "/api/v1/suspensions", [ctx](request& q) { return list_suspensions(ctx, q); });
  r.add("GET", "/api/v1/queues", [ctx](request&) { return list_queues(ctx); });
  r.add("POST", "/api/v1/queues/{name}/messages", [ctx](request& q) { return post_message(ctx, q); });
  r.add("POST", "/api/v1/suspensions/{id}/resume", [ctx](request& q) { return resume_suspension(ctx, q); });
  r.add("GET", "/api/v1/triggers", [ctx](request&) { return list_triggers(ctx); });
  r.add("POST", "/api/v1/triggers/{id}/fire", [ctx](request& q) { return fire_trigger(ctx, q); });
  r.add("POST", "/api/v1/triggers/{id}/enable",
        [ctx](request& q) { return switch_trigger(ctx, std::string(q.param("id")), true); });
  r.add("POST", "/api/v1/triggers/{id}/disable",
        [ctx](request& q) { return switch_trigger(ctx, std::string(q.param("id")), false); });
}

}  // namespace xerv::http
