#pragma once
// The memory backend's trace queue (XERV_DISPATCH_BACKEND=memory): one per
// shard, in-process, journaled to that shard's WAL. An admission is the WAL's
// `started` record and is durable when the WAL's group commit reaches it; an
// acknowledgement is the `ended` record. Admissions are taken by the consumers
// of the same shard (the shard's engine is the one consumer in the server).
//
// A dead owner's traces: at start, replay() sees every record of the log; the
// admissions without an end are what the previous process held when it died,
// and end_replay() makes them deliverable again (attempt 2). In one process, a
// consumer destroyed with traces in flight is dead; take_over(name) hands its
// traces to the caller's next take.
//
// Lives on its shard; no locks. Bounded by the WAL (an admission the WAL
// refuses is refused) and by the engine's pending limits.

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "backends/local_queue.h"
#include "core/dispatch.h"
#include "core/wal.h"

namespace xerv::backends::memory {

class trace_queue final : public core::trace_queue {
 public:
  // `wal` null: nothing is journaled and every ticket is durable at once.
  explicit trace_queue(core::wal* wal);
  ~trace_queue() override;

  // Journals into `wal` from now on (it is opened after the queue exists).
  void attach(core::wal* wal) { _wal = wal; }
  // Recovery: every WAL record in log order, then end_replay(), which also lets
  // the WAL delete segments (every replayed trace is accounted for then).
  void replay(const core::wal_record& r);
  void end_replay();

  io::result<core::dispatch_ticket> admit(const core::admission& a) override;
  io::task<io::result<void>> durable(core::dispatch_ticket t) override;
  std::unique_ptr<core::trace_consumer> consume(std::string name) override;
  core::queue_depth depth() const override { return _local.depth(); }
  core::queue_depth depth(std::string_view pipeline) const override { return _local.depth(pipeline); }

 private:
  using entry = local_queue::entry;
  using key = std::pair<uint64_t, uint64_t>;
  static key key_of(const core::trace_id& id) { return {id.hi, id.lo}; }
  io::result<core::dispatch_ticket> journal_ack(const entry& e, std::string_view rec);

  core::wal* _wal;
  local_queue _local;
  // Recovery: admissions seen in the log, in log order, until their end, and
  // the (segment, finish time) of the traces that ended, accounted to the WAL
  // in end_replay() (the WAL does not exist yet while it replays).
  std::map<key, entry> _replayed;
  std::vector<key> _replay_order;
  std::vector<std::pair<uint64_t, uint64_t>> _replayed_ends;
};

}  // namespace xerv::backends::memory
