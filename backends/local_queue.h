#pragma once
// The traces one shard can hand to its consumers: admitted (or redelivered)
// and not taken, then taken and not acknowledged. Every backend keeps one per
// shard for what is deliverable there; what an admission or an acknowledgement
// writes (a WAL record, a Raft command) is the backend's, through `on_ack`.
//
// Lives on its shard; no locks. Entries never move once taken (map nodes), so
// a delivery's views stay valid until its ack.

#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/dispatch.h"
#include "io/event.h"
#include "io/reactor.h"

namespace xerv::backends {

class local_queue {
 public:
  // A pipeline's name and depth. One per name ever seen, never erased: entries
  // point at theirs, so counting and delivering need no lookup or copy per trace.
  using pipeline_slot = std::pair<const std::string, core::queue_depth>;
  struct entry {
    core::trace_id id;
    pipeline_slot* pipeline = nullptr;
    std::string record;  // the encoded admission; deliveries point into it
    uint32_t attempt = 1;
    uint64_t tag = 0;    // the backend's (the memory backend: the WAL segment of the admission)
    std::string holder;  // the consumer that took it; empty: nobody yet
  };
  // Records a held trace's acknowledgement; an error leaves it in flight.
  using ack_fn = std::function<io::result<core::dispatch_ticket>(const entry& e, std::string_view final_record)>;

  explicit local_queue(ack_fn on_ack);
  ~local_queue();
  local_queue(const local_queue&) = delete;
  local_queue& operator=(const local_queue&) = delete;

  pipeline_slot& slot(std::string_view pipeline);
  // Deliverable from now on; `front`: ahead of what waits (redeliveries).
  void push(entry e, bool front = false);
  // Forgets a trace wherever it is (the backend moved it to another node);
  // false when it is not here.
  bool remove(const core::trace_id& id);
  bool contains(const core::trace_id& id) const;
  std::unique_ptr<core::trace_consumer> consume(std::string name);
  size_t take_over(std::string_view dead);
  core::queue_depth depth() const { return _total; }
  core::queue_depth depth(std::string_view pipeline) const;

 private:
  class consumer;
  using key = std::pair<uint64_t, uint64_t>;
  static key key_of(const core::trace_id& id) { return {id.hi, id.lo}; }
  std::vector<core::delivery> pop(size_t max, const std::string& holder);
  io::result<core::dispatch_ticket> ack(const std::string& holder, const core::trace_id& id, std::string_view rec);
  void count(pipeline_slot& p, int64_t ready, int64_t in_flight);

  ack_fn _on_ack;
  std::deque<entry> _ready;
  std::map<key, entry> _in_flight;
  std::map<std::string, core::queue_depth, std::less<>> _by_pipeline;  // map nodes do not move
  core::queue_depth _total;
  io::event _arrived;
  // Waiters are woken at the end of the turn, and only if traces are still
  // ready then: the engine takes its own admissions in the same turn, so a
  // wake-up per admission would cost a loop turn for nothing.
  struct wake_hook : io::turn_hook {
    local_queue* q = nullptr;
  } _wake;
};

}  // namespace xerv::backends
