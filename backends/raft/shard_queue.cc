#include "backends/raft/shard_queue.h"

#include "backends/raft/replica.h"
#include "io/runtime.h"

namespace xerv::backends::raft {

namespace {
io::task<io::result<void>> ready_now() { co_return io::result<void>{}; }
}  // namespace

shard_queue::shard_queue(replica* r, unsigned shard)
    : _replica(r), _shard(shard), _local([this](const local_queue::entry& e, std::string_view rec) {
        return queue_command(shard_command{true, e.id, std::string(rec)});
      }) {
  _flush.q = this;
  _flush.run = [](io::turn_hook* h) {
    shard_queue& q = *static_cast<flush_hook*>(h)->q;
    std::vector<shard_command> batch = std::move(q._batch);
    std::vector<uint64_t> tickets = std::move(q._batch_tickets);
    q._batch.clear();
    q._batch_tickets.clear();
    if (auto sent = io::spawn(q._gate, q.send(std::move(batch), tickets)); !sent) q.resolve(tickets, {});
  };
}

shard_queue::~shard_queue() {
  if (_flush.queued) io::this_reactor().cancel_turn_end(&_flush);
}

io::task<void> shard_queue::stop() {
  auto closing = _gate.close();
  co_await std::move(closing);
}

io::result<core::dispatch_ticket> shard_queue::admit(const core::admission& a) {
  shard_command c{false, a.id, {}};
  core::encode(c.record, a);
  return queue_command(std::move(c));
}

io::result<core::dispatch_ticket> shard_queue::queue_command(shard_command c) {
  if (_gate.closed()) return core::make_error_code(core::dispatch_errc::unavailable);
  uint64_t t = ++_next;
  _pending.open(t);
  _batch.push_back(std::move(c));
  _batch_tickets.push_back(t);
  io::this_reactor().at_turn_end(&_flush);
  return t;
}

io::task<io::result<void>> shard_queue::durable(core::dispatch_ticket t) {
  if (t == 0) return ready_now();
  return _pending.wait(t);
}

io::task<void> shard_queue::send(std::vector<shard_command> batch, std::vector<uint64_t> tickets) {
  replica* r = _replica;
  unsigned shard = _shard;
  auto calling = io::submit_to(0, [r, shard, b = std::move(batch)]() mutable { return r->submit_from(shard, std::move(b)); });
  std::vector<std::error_code> results = co_await std::move(calling);
  resolve(tickets, results);
}

void shard_queue::resolve(const std::vector<uint64_t>& tickets, const std::vector<std::error_code>& results) {
  for (size_t i = 0; i < tickets.size(); ++i) {
    auto it = _pending.find(tickets[i]);
    if (it == _pending.end()) continue;
    _pending.settle(it, i < results.size() ? results[i] : core::make_error_code(core::dispatch_errc::unavailable));
  }
}

io::task<std::optional<core::trace_whereabouts>> shard_queue::locate(const core::trace_id& id) {
  replica* r = _replica;
  auto asking = io::submit_to(0, [r, id] { return r->locate(id); });
  co_return co_await std::move(asking);
}

void shard_queue::receive(std::vector<shard_delivery> changes) {
  for (auto& d : changes) {
    if (d.what == shard_delivery::kind::remove) {
      _local.remove(d.id);
      continue;
    }
    if (d.what == shard_delivery::kind::push_if_absent && _local.contains(d.id)) continue;
    _local.push(local_queue::entry{d.id, &_local.slot(d.pipeline), std::move(d.record), d.attempt, 0, {}});
  }
}

}  // namespace xerv::backends::raft
