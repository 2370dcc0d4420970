#include "backends/memory/trace_queue.h"

#include "core/metrics.h"
#include "io/log.h"

namespace xerv::backends::memory {
namespace {

core::gauge g_depth{"xerv_dispatch_queue_depth",
                    "Traces admitted and not yet taken by a shard (the dispatch backend's own queue)"};

}  // namespace

class trace_queue::consumer final : public core::trace_consumer {
 public:
  consumer(trace_queue& q, std::string name) : _q(q), _name(std::move(name)) {}
  const std::string& name() const override { return _name; }

  io::task<std::vector<core::delivery>> take(size_t max, io::cancel_source& stop) override {
    ASSERT(max > 0, "take of nothing");
    while (_q._ready.empty() && !stop.cancelled()) {
      auto arrived = _q._arrived.wait(stop);
      co_await arrived;
    }
    if (stop.cancelled()) co_return std::vector<core::delivery>{};
    co_return _q.pop_ready(max, _name);
  }

  std::vector<core::delivery> poll(size_t max) override {
    if (_q._ready.empty()) return {};
    return _q.pop_ready(max, _name);
  }

  io::result<core::dispatch_ticket> ack(const core::trace_id& id, std::string_view final_record) override {
    return _q.ack(_name, id, final_record);
  }

  size_t take_over(std::string_view dead) override { return _q.take_over(dead); }

 private:
  trace_queue& _q;
  std::string _name;
};

trace_queue::trace_queue(core::wal* wal) : _wal(wal) {
  _wake.q = this;
  _wake.run = [](io::turn_hook* h) {
    trace_queue& q = *static_cast<wake_hook*>(h)->q;
    if (!q._ready.empty()) q._arrived.notify();
  };
}

trace_queue::~trace_queue() {
  if (_wake.queued) io::this_reactor().cancel_turn_end(&_wake);
  ASSERT(!_arrived.has_waiters(), "trace queue destroyed while a consumer waits on it");
  g_depth.add(-int64_t(_total.ready));
}

trace_queue::pipeline_slot& trace_queue::slot(std::string_view pipeline) {
  auto it = _by_pipeline.find(pipeline);
  if (it == _by_pipeline.end()) it = _by_pipeline.emplace(std::string(pipeline), core::queue_depth{}).first;
  return *it;
}

void trace_queue::count(pipeline_slot& p, int64_t ready, int64_t in_flight) {
  p.second.ready += ready;
  p.second.in_flight += in_flight;
  _total.ready += ready;
  _total.in_flight += in_flight;
  g_depth.add(ready);
}

core::queue_depth trace_queue::depth(std::string_view pipeline) const {
  auto it = _by_pipeline.find(pipeline);
  return it == _by_pipeline.end() ? core::queue_depth{} : it->second;
}

io::result<core::dispatch_ticket> trace_queue::admit(const core::admission& a) {
  entry e{a.id, &slot(a.pipeline), {}, 1, 0, {}};
  core::encode(e.record, a);
  uint64_t lsn = 0;
  if (_wal) {
    if (e.record.size() > core::wal_record_max) return core::make_error_code(core::dispatch_errc::too_large);
    lsn = _wal->append(core::wal_type_admission, e.record);
    if (lsn == 0) return core::make_error_code(core::dispatch_errc::unavailable);
    e.segment = _wal->active_segment();
    _wal->trace_started(e.segment);
  }
  push_ready(std::move(e), false);
  return lsn;
}

namespace {
io::task<io::result<void>> durable_now() { co_return io::result<void>{}; }
}  // namespace

// Not a coroutine: the WAL's own wait is the task (one frame less per wait).
io::task<io::result<void>> trace_queue::durable(core::dispatch_ticket t) {
  if (!_wal || t == 0) return durable_now();
  return _wal->wait(t);
}

std::unique_ptr<core::trace_consumer> trace_queue::consume(std::string name) {
  return std::make_unique<consumer>(*this, std::move(name));
}

void trace_queue::push_ready(entry e, bool front) {
  count(*e.pipeline, 1, 0);
  if (front) _ready.push_front(std::move(e));
  else _ready.push_back(std::move(e));
  if (_arrived.has_waiters()) io::this_reactor().at_turn_end(&_wake);
}

std::vector<core::delivery> trace_queue::pop_ready(size_t max, const std::string& holder) {
  std::vector<core::delivery> out;
  out.reserve(std::min(max, _ready.size()));
  while (!_ready.empty() && out.size() < max) {
    entry e = std::move(_ready.front());
    _ready.pop_front();
    count(*e.pipeline, -1, 1);
    e.holder = holder;
    auto [it, fresh] = _in_flight.emplace(key_of(e.id), std::move(e));
    ASSERT(fresh, "trace %s taken twice", it->second.id.to_string().c_str());
    // Views into the in-flight entry (map nodes do not move): valid until acked.
    const entry& held = it->second;
    out.push_back(core::delivery{held.id, held.pipeline->first, held.record, held.attempt});
  }
  return out;
}

io::result<core::dispatch_ticket> trace_queue::ack(const std::string& holder, const core::trace_id& id,
                                                   std::string_view rec) {
  auto it = _in_flight.find(key_of(id));
  if (it == _in_flight.end() || it->second.holder != holder) return core::dispatch_ticket{0};  // idempotent
  ASSERT(core::record_trace_id(rec) == id, "final record of another trace");
  uint64_t lsn = 0;
  if (_wal) {
    if (rec.size() > core::wal_record_max) return core::make_error_code(core::dispatch_errc::too_large);
    lsn = _wal->append(core::wal_type_final, rec);
    // Refused (the disk is failing): still in flight, so a restart runs it again.
    if (lsn == 0) return core::make_error_code(core::dispatch_errc::unavailable);
    auto h = core::decode_final_header(rec);
    _wal->trace_finished(it->second.segment, h ? h->finished_ms : core::unix_ms_now());
  }
  count(*it->second.pipeline, 0, -1);
  _in_flight.erase(it);
  return lsn;
}

size_t trace_queue::take_over(std::string_view dead) {
  std::vector<key> moved;
  for (auto& [k, e] : _in_flight)
    if (e.holder == dead) moved.push_back(k);
  // In the order they were admitted (ids are time-ordered), ahead of new work.
  for (auto it = moved.rbegin(); it != moved.rend(); ++it) {
    auto node = _in_flight.extract(*it);
    entry e = std::move(node.mapped());
    count(*e.pipeline, 0, -1);
    e.holder.clear();
    ++e.attempt;
    push_ready(std::move(e), true);
  }
  return moved.size();
}

void trace_queue::replay(const core::wal_record& r) {
  if (r.type == core::wal_type_admission) {
    auto a = core::decode_admission(r.payload);
    if (!a) return;  // the engine reports records that do not decode
    entry e{a->id, &slot(a->pipeline), std::string(r.payload), 1, r.segment, {}};
    auto [it, fresh] = _replayed.emplace(key_of(e.id), std::move(e));
    if (fresh) _replay_order.push_back(it->first);
  } else if (r.type == core::wal_type_final) {
    auto h = core::decode_final_header(r.payload);
    if (!h) return;
    auto it = _replayed.find(key_of(h->id));
    if (it == _replayed.end()) return;  // its start was deleted by retention
    _replayed_ends.emplace_back(it->second.segment, h->finished_ms);
    _replayed.erase(it);
  }
}

void trace_queue::end_replay() {
  // Finished traces keep their segments for the retention period.
  if (_wal)
    for (auto [segment, finished_ms] : _replayed_ends) {
      _wal->trace_started(segment);
      _wal->trace_finished(segment, finished_ms);
    }
  _replayed_ends.clear();
  size_t n = 0;
  for (const key& k : _replay_order) {
    auto it = _replayed.find(k);
    if (it == _replayed.end()) continue;
    entry e = std::move(it->second);
    _replayed.erase(it);  // a resumed trace's id is in _replay_order twice
    if (_wal) _wal->trace_started(e.segment);
    e.attempt = 2;  // its first owner was the process that died
    push_ready(std::move(e), false);
    ++n;
  }
  _replayed.clear();
  _replay_order.clear();
  if (_wal) _wal->start_sweeping();
  if (n) XLOG(debug, "%zu unfinished traces from the write-ahead log are deliverable again", n);
}

}  // namespace xerv::backends::memory
