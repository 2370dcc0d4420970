#pragma once
// The Raft backend's trace_queue on a shard other than the replica's (the
// replica lives on shard 0). Admissions and acknowledgements made here go to
// the replica in one cross-shard message per turn and are answered in one;
// the traces this node owns that were admitted here (or moved here) come back
// from the replica as they are applied and are taken by this shard's
// consumers like any local trace.
//
// Lives on its shard; the replica only reaches it by messages to this shard.

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "backends/local_queue.h"
#include "backends/raft/tickets.h"
#include "core/dispatch.h"
#include "io/event.h"
#include "io/gate.h"

namespace xerv::backends::raft {

class replica;

// One admission or acknowledgement of a shard, for the replica.
struct shard_command {
  bool finish = false;
  core::trace_id id;
  std::string record;  // the encoded admission, or the final record
};

// A change to a shard's deliverable traces, from the replica.
struct shard_delivery {
  enum class kind : uint8_t { push, push_if_absent, remove } what = kind::push;
  core::trace_id id;
  std::string pipeline, record;
  uint32_t attempt = 1;
};

class shard_queue final : public core::trace_queue {
 public:
  // `r` is the replica on shard 0: only dereferenced there.
  shard_queue(replica* r, unsigned shard);
  ~shard_queue() override;
  io::task<void> stop();

  io::result<core::dispatch_ticket> admit(const core::admission& a) override;
  io::task<io::result<void>> durable(core::dispatch_ticket t) override;
  std::unique_ptr<core::trace_consumer> consume(std::string name) override { return _local.consume(std::move(name)); }
  core::queue_depth depth() const override { return _local.depth(); }
  core::queue_depth depth(std::string_view pipeline) const override { return _local.depth(pipeline); }
  io::task<std::optional<core::trace_whereabouts>> locate(const core::trace_id& id) override;

  // From the replica, in apply order.
  void receive(std::vector<shard_delivery> changes);

 private:
  io::result<core::dispatch_ticket> queue_command(shard_command c);
  io::task<void> send(std::vector<shard_command> batch, std::vector<uint64_t> tickets);
  void resolve(const std::vector<uint64_t>& tickets, const std::vector<std::error_code>& results);

  replica* _replica;
  unsigned _shard;
  local_queue _local;
  std::vector<shard_command> _batch;
  std::vector<uint64_t> _batch_tickets;
  uint64_t _next = 0;
  ticket_table<> _pending;
  struct flush_hook : io::turn_hook {
    shard_queue* q = nullptr;
  } _flush;
  io::gate _gate;
};

}  // namespace xerv::backends::raft
