#include "backends/memory/trace_queue.h"

#include "io/log.h"

namespace xerv::backends::memory {

trace_queue::trace_queue(core::wal* wal)
    : _wal(wal), _local([this](const entry& e, std::string_view rec) { return journal_ack(e, rec); }) {}

trace_queue::~trace_queue() = default;

io::result<core::dispatch_ticket> trace_queue::admit(const core::admission& a) {
  entry e{a.id, &_local.slot(a.pipeline), {}, 1, 0, {}};
  core::encode(e.record, a);
  uint64_t lsn = 0;
  if (_wal) {
    if (e.record.size() > core::wal_record_max) return core::make_error_code(core::dispatch_errc::too_large);
    lsn = _wal->append(core::wal_type_admission, e.record);
    if (lsn == 0) return core::make_error_code(core::dispatch_errc::unavailable);
    e.tag = _wal->active_segment();
    _wal->trace_started(e.tag);
  }
  _local.push(std::move(e));
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

std::unique_ptr<core::trace_consumer> trace_queue::consume(std::string name) { return _local.consume(std::move(name)); }

io::result<core::dispatch_ticket> trace_queue::journal_ack(const entry& e, std::string_view rec) {
  if (!_wal) return core::dispatch_ticket{0};
  if (rec.size() > core::wal_record_max) return core::make_error_code(core::dispatch_errc::too_large);
  uint64_t lsn = _wal->append(core::wal_type_final, rec);
  // Refused (the disk is failing): still in flight, so a restart runs it again.
  if (lsn == 0) return core::make_error_code(core::dispatch_errc::unavailable);
  auto h = core::decode_final_header(rec);
  _wal->trace_finished(e.tag, h ? h->finished_ms : core::unix_ms_now());
  return lsn;
}

void trace_queue::replay(const core::wal_record& r) {
  if (r.type == core::wal_type_admission) {
    auto a = core::decode_admission(r.payload);
    if (!a) return;  // the engine reports records that do not decode
    entry e{a->id, &_local.slot(a->pipeline), std::string(r.payload), 1, r.segment, {}};
    auto [it, fresh] = _replayed.emplace(key_of(e.id), std::move(e));
    if (fresh) _replay_order.push_back(it->first);
  } else if (r.type == core::wal_type_final) {
    auto h = core::decode_final_header(r.payload);
    if (!h) return;
    auto it = _replayed.find(key_of(h->id));
    if (it == _replayed.end()) return;  // its start was deleted by retention
    _replayed_ends.emplace_back(it->second.tag, h->finished_ms);
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
    if (_wal) _wal->trace_started(e.tag);
    e.attempt = 2;  // its first owner was the process that died
    _local.push(std::move(e));
    ++n;
  }
  _replayed.clear();
  _replay_order.clear();
  if (_wal) _wal->start_sweeping();
  if (n) XLOG(debug, "%zu unfinished traces from the write-ahead log are deliverable again", n);
}

}  // namespace xerv::backends::memory
