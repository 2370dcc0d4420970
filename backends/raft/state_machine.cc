#include "backends/raft/state_machine.h"

#include <algorithm>

namespace xerv::backends::raft {

namespace {

enum class op : uint8_t { admit = 1, finish = 2, reassign = 3, pipeline = 4, address = 5 };
constexpr uint8_t snapshot_version = 1;

// Each command: op, the request_ref, then its body as one string (a reader
// skips what it does not need without knowing the body's layout).
void add(std::string& entry, op o, request_ref r, const std::string& body) {
  core::record_writer w{entry};
  w.u8(uint8_t(o));
  w.u64(r.origin);
  w.u64(r.id);
  w.str(body);
}


void write_pipeline(core::record_writer& w, const std::string& name, const stored_pipeline& p) {
  w.str(name);
  w.str(p.source);
  w.u8(uint8_t(p.state));
  w.u64(p.disabled.size());
  for (const auto& d : p.disabled) w.str(d);
  w.u64(p.revision);
  w.u8(p.persist ? 1 : 0);
}

}  // namespace

void add_admit(std::string& entry, request_ref r, uint64_t owner, uint32_t shard, std::string_view admission) {
  std::string body;
  core::record_writer w{body};
  w.u64(owner);
  w.u64(shard);
  w.str(admission);
  add(entry, op::admit, r, body);
}

void add_finish(std::string& entry, request_ref r, std::string_view final_record) {
  std::string body;
  core::record_writer{body}.str(final_record);
  add(entry, op::finish, r, body);
}

void add_reassign(std::string& entry, request_ref r, uint64_t from, std::span<const uint64_t> to) {
  std::string body;
  core::record_writer w{body};
  w.u64(from);
  w.u64(to.size());
  for (uint64_t n : to) w.u64(n);
  add(entry, op::reassign, r, body);
}

void add_pipeline(std::string& entry, request_ref r, const core::pipeline_change& c, uint64_t expected_revision) {
  std::string body;
  core::record_writer w{body};
  core::write_change(w, c);
  w.u64(expected_revision);
  add(entry, op::pipeline, r, body);
}

void add_address(std::string& entry, request_ref r, uint64_t id, std::string_view host, uint16_t port) {
  std::string body;
  core::record_writer w{body};
  w.u64(id);
  w.str(host);
  w.u64(port);
  add(entry, op::address, r, body);
}

bool state_machine::apply(std::string_view entry, listener& l) {
  core::record_reader in{entry};
  while (!in.in.empty()) {
    uint8_t o = in.u8();
    request_ref r{in.u64(), in.u64()};
    std::string body = in.str();
    if (!in.ok) return false;
    core::record_reader b{body};
    bool ok = false;
    switch (op(o)) {
      case op::admit: ok = apply_admit(b, r, l); break;
      case op::finish: ok = apply_finish(b, r, l); break;
      case op::reassign: ok = apply_reassign(b, r, l); break;
      case op::pipeline: ok = apply_pipeline(b, r, l); break;
      case op::address: ok = apply_address(b, r, l); break;
    }
    if (!ok) return false;
  }
  return true;
}

bool state_machine::apply_admit(core::record_reader& in, request_ref r, listener& l) {
  uint64_t owner = in.u64();
  uint64_t shard = in.u64();
  std::string record = in.str();
  if (!in.done()) return false;
  auto rec = core::decode_admission(record);
  if (!rec) return false;
  key k = key_of(rec->id);
  // A retried proposal (the proposer timed out, or a new leader re-committed
  // it): the first one stands.
  if (!_traces.count(k) && !_finished_at.count(k)) {
    trace_state t{std::move(record), rec->pipeline, owner, uint32_t(shard), 1, ++_order};
    auto& placed = _traces.emplace(k, std::move(t)).first->second;
    count(owner, 1);
    l.on_assigned(rec->id, placed);
  }
  l.on_result(r, {}, nullptr);
  return true;
}

bool state_machine::apply_finish(core::record_reader& in, request_ref r, listener& l) {
  std::string record = in.str();
  if (!in.done()) return false;
  auto h = core::decode_final_header(record);
  if (!h) return false;
  auto it = _traces.find(key_of(h->id));
  if (it != _traces.end()) {
    uint64_t owner = it->second.owner;
    uint32_t shard = it->second.shard;
    auto rec = core::decode_admission(it->second.record);
    finished_trace f{h->id, std::move(it->second.pipeline), rec ? rec->created_ms : 0, it->second.attempt, owner,
                     h->status, h->finished_ms};
    count(owner, -1);
    _traces.erase(it);
    remember(std::move(f));
    l.on_finished(h->id, owner, shard, r);
  }
  l.on_result(r, {}, nullptr);
  return true;
}

bool state_machine::apply_reassign(core::record_reader& in, request_ref r, listener& l) {
  uint64_t from = in.u64();
  uint64_t n = in.u64();
  if (!in.ok || n > in.in.size() / 8) return false;
  std::vector<uint64_t> to(n);
  for (auto& t : to) t = in.u64();
  if (!in.done()) return false;
  to.erase(std::remove(to.begin(), to.end(), from), to.end());
  if (!to.empty()) {
    // In admission order, each to whichever target holds the fewest (ties:
    // the first listed), so the dead node's backlog spreads evenly.
    std::vector<std::pair<uint64_t, key>> moving;
    for (auto& [k, t] : _traces)
      if (t.owner == from) moving.push_back({t.order, k});
    std::sort(moving.begin(), moving.end());
    for (auto& [order, k] : moving) {
      auto& t = _traces.at(k);
      uint64_t best = *std::min_element(to.begin(), to.end(),
                                        [&](uint64_t a, uint64_t b) { return load(a) < load(b); });
      count(from, -1);
      count(best, 1);
      t.owner = best;
      t.attempt += 1;
      core::trace_id id{k.first, k.second};
      l.on_unassigned(id, from);
      l.on_assigned(id, t);
    }
  }
  l.on_result(r, {}, nullptr);
  return true;
}

bool state_machine::apply_pipeline(core::record_reader& in, request_ref r, listener& l) {
  using kind = core::pipeline_change::kind;
  core::pipeline_change c = core::read_change(in);
  uint64_t expected = in.u64();
  if (!in.done()) return false;
  if (std::find(_recent_changes.begin(), _recent_changes.end(), r) != _recent_changes.end()) return true;
  _recent_changes.push_back(r);
  if (_recent_changes.size() > recent_changes_max) _recent_changes.pop_front();
  auto it = _pipelines.find(c.name);
  std::optional<core::pipeline_change> stored;
  if (it != _pipelines.end()) {
    const stored_pipeline& p = it->second;
    stored.emplace();
    stored->source = p.source;
    stored->state = p.state;
    stored->disabled = p.disabled;
    stored->revision = p.revision;
    stored->persist = p.persist;
  }
  auto ruled = core::apply_publish(std::move(c), stored ? &*stored : nullptr, expected);
  if (!ruled) {
    l.on_result(r, ruled.error(), nullptr);
    return true;
  }
  c = std::move(*ruled);
  if (c.what == kind::remove) _pipelines.erase(it);
  else _pipelines[c.name] = stored_pipeline{c.source, c.state, c.disabled, c.revision, c.persist};
  c.seq = ++_seq;
  l.on_pipeline(c);
  l.on_result(r, {}, &c);
  return true;
}

bool state_machine::apply_address(core::record_reader& in, request_ref r, listener& l) {
  uint64_t id = in.u64();
  node_address a;
  a.host = in.str();
  uint64_t port = in.u64();
  if (!in.done() || port == 0 || port > 65535 || a.host.empty()) return false;
  a.port = uint16_t(port);
  _addresses[id] = a;
  l.on_address(id, a);
  l.on_result(r, {}, nullptr);
  return true;
}

void state_machine::count(uint64_t owner, int64_t d) {
  uint64_t& n = _load[owner];
  n += uint64_t(d);
  if (n == 0) _load.erase(owner);
}

uint64_t state_machine::load(uint64_t owner) const {
  auto it = _load.find(owner);
  return it == _load.end() ? 0 : it->second;
}

void state_machine::remember(finished_trace f) {
  _finished_at[key_of(f.id)] = _finished_base + _finished_order.size();
  _finished_order.push_back(std::move(f));
  while (_finished_order.size() > _finished_max) {
    _finished_at.erase(key_of(_finished_order.front().id));
    _finished_order.pop_front();
    ++_finished_base;
  }
}

const finished_trace* state_machine::finished(const core::trace_id& id) const {
  auto it = _finished_at.find(key_of(id));
  return it == _finished_at.end() ? nullptr : &_finished_order[it->second - _finished_base];
}

std::string state_machine::snapshot() const {
  std::string out;
  core::record_writer w{out};
  w.u8(snapshot_version);
  w.u64(_seq);
  w.u64(_order);
  w.u64(_traces.size());
  for (const auto& [k, t] : _traces) {
    w.str(t.record);
    w.u64(t.owner);
    w.u64(t.shard);
    w.u64(t.attempt);
    w.u64(t.order);
  }
  w.u64(_finished_order.size());
  for (const auto& f : _finished_order) {
    w.id(f.id);
    w.str(f.pipeline);
    w.u64(f.created_ms);
    w.u64(f.attempt);
    w.u64(f.owner);
    w.u8(f.status);
    w.u64(f.finished_ms);
  }
  w.u64(_pipelines.size());
  for (const auto& [name, p] : _pipelines) write_pipeline(w, name, p);
  w.u64(_recent_changes.size());
  for (const auto& r : _recent_changes) {
    w.u64(r.origin);
    w.u64(r.id);
  }
  w.u64(_addresses.size());
  for (const auto& [id, a] : _addresses) {
    w.u64(id);
    w.str(a.host);
    w.u64(a.port);
  }
  return out;
}

bool state_machine::restore(std::string_view snap) {
  state_machine s(_finished_max);
  core::record_reader in{snap};
  if (in.u8() != snapshot_version) return false;
  s._seq = in.u64();
  s._order = in.u64();
  uint64_t n = in.u64();
  for (uint64_t i = 0; in.ok && i < n; ++i) {
    trace_state t;
    t.record = in.str();
    t.owner = in.u64();
    t.shard = uint32_t(in.u64());
    t.attempt = uint32_t(in.u64());
    t.order = in.u64();
    auto rec = core::decode_admission(t.record);
    if (!in.ok || !rec) return false;
    t.pipeline = rec->pipeline;
    s.count(t.owner, 1);
    s._traces.emplace(key_of(rec->id), std::move(t));
  }
  n = in.u64();
  for (uint64_t i = 0; in.ok && i < n; ++i) {
    finished_trace f;
    f.id = in.id();
    f.pipeline = in.str();
    f.created_ms = in.u64();
    f.attempt = uint32_t(in.u64());
    f.owner = in.u64();
    f.status = in.u8();
    f.finished_ms = in.u64();
    if (in.ok) s.remember(std::move(f));
  }
  n = in.u64();
  for (uint64_t i = 0; in.ok && i < n; ++i) {
    std::string name = in.str();
    stored_pipeline p;
    p.source = in.str();
    p.state = core::pipeline_state(in.u8());
    uint64_t d = in.u64();
    if (d > in.in.size()) return false;
    for (uint64_t j = 0; in.ok && j < d; ++j) p.disabled.push_back(in.str());
    p.revision = in.u64();
    p.persist = in.u8() != 0;
    if (uint8_t(p.state) > uint8_t(core::pipeline_state::draining)) return false;
    s._pipelines.emplace(std::move(name), std::move(p));
  }
  n = in.u64();
  for (uint64_t i = 0; in.ok && i < n; ++i) s._recent_changes.push_back({in.u64(), in.u64()});
  n = in.u64();
  for (uint64_t i = 0; in.ok && i < n; ++i) {
    uint64_t id = in.u64();
    node_address a;
    a.host = in.str();
    a.port = uint16_t(in.u64());
    s._addresses[id] = std::move(a);
  }
  if (!in.done()) return false;
  *this = std::move(s);
  return true;
}

}  // namespace xerv::backends::raft
