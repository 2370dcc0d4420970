#include "backends/local_queue.h"

#include <algorithm>

#include "core/metrics.h"

namespace xerv::backends {
namespace {

core::gauge g_depth{"xerv_dispatch_queue_depth",
                    "Traces admitted and not yet taken by a shard (the dispatch backend's own queue)"};

}  // namespace

class local_queue::consumer final : public core::trace_consumer {
 public:
  consumer(local_queue& q, std::string name) : _q(q), _name(std::move(name)) {}
  const std::string& name() const override { return _name; }

  io::task<std::vector<core::delivery>> take(size_t max, io::cancel_source& stop) override {
    ASSERT(max > 0, "take of nothing");
    while (_q._ready.empty() && !stop.cancelled()) {
      auto arrived = _q._arrived.wait(stop);
      co_await arrived;
    }
    if (stop.cancelled()) co_return std::vector<core::delivery>{};
    co_return _q.pop(max, _name);
  }

  std::vector<core::delivery> poll(size_t max) override {
    if (_q._ready.empty()) return {};
    return _q.pop(max, _name);
  }

  io::result<core::dispatch_ticket> ack(const core::trace_id& id, std::string_view final_record) override {
    return _q.ack(_name, id, final_record);
  }

  size_t take_over(std::string_view dead) override { return _q.take_over(dead); }

 private:
  local_queue& _q;
  std::string _name;
};

local_queue::local_queue(ack_fn on_ack) : _on_ack(std::move(on_ack)) {
  _wake.q = this;
  _wake.run = [](io::turn_hook* h) {
    local_queue& q = *static_cast<wake_hook*>(h)->q;
    if (!q._ready.empty()) q._arrived.notify();
  };
}

local_queue::~local_queue() {
  if (_wake.queued) io::this_reactor().cancel_turn_end(&_wake);
  ASSERT(!_arrived.has_waiters(), "trace queue destroyed while a consumer waits on it");
  g_depth.add(-int64_t(_total.ready));
}

local_queue::pipeline_slot& local_queue::slot(std::string_view pipeline) {
  auto it = _by_pipeline.find(pipeline);
  if (it == _by_pipeline.end()) it = _by_pipeline.emplace(std::string(pipeline), core::queue_depth{}).first;
  return *it;
}

void local_queue::count(pipeline_slot& p, int64_t ready, int64_t in_flight) {
  p.second.ready += ready;
  p.second.in_flight += in_flight;
  _total.ready += ready;
  _total.in_flight += in_flight;
  g_depth.add(ready);
}

core::queue_depth local_queue::depth(std::string_view pipeline) const {
  auto it = _by_pipeline.find(pipeline);
  return it == _by_pipeline.end() ? core::queue_depth{} : it->second;
}

std::unique_ptr<core::trace_consumer> local_queue::consume(std::string name) {
  return std::make_unique<consumer>(*this, std::move(name));
}

void local_queue::push(entry e, bool front) {
  count(*e.pipeline, 1, 0);
  if (front) _ready.push_front(std::move(e));
  else _ready.push_back(std::move(e));
  if (_arrived.has_waiters()) io::this_reactor().at_turn_end(&_wake);
}

bool local_queue::remove(const core::trace_id& id) {
  if (auto it = _in_flight.find(key_of(id)); it != _in_flight.end()) {
    count(*it->second.pipeline, 0, -1);
    _in_flight.erase(it);
    return true;
  }
  auto it = std::find_if(_ready.begin(), _ready.end(), [&](const entry& e) { return e.id == id; });
  if (it == _ready.end()) return false;
  count(*it->pipeline, -1, 0);
  _ready.erase(it);
  return true;
}

bool local_queue::contains(const core::trace_id& id) const {
  return _in_flight.count(key_of(id)) ||
         std::any_of(_ready.begin(), _ready.end(), [&](const entry& e) { return e.id == id; });
}

std::vector<core::delivery> local_queue::pop(size_t max, const std::string& holder) {
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

io::result<core::dispatch_ticket> local_queue::ack(const std::string& holder, const core::trace_id& id,
                                                   std::string_view rec) {
  auto it = _in_flight.find(key_of(id));
  if (it == _in_flight.end() || it->second.holder != holder) return core::dispatch_ticket{0};  // idempotent
  ASSERT(core::record_trace_id(rec) == id, "final record of another trace");
  auto ticket = _on_ack(it->second, rec);
  if (!ticket) return ticket;  // still in flight: a restart (or a take-over) runs it again
  count(*it->second.pipeline, 0, -1);
  _in_flight.erase(it);
  return ticket;
}

size_t local_queue::take_over(std::string_view dead) {
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
    push(std::move(e), true);
  }
  return moved.size();
}

}  // namespace xerv::backends
