#pragma once
// What a leader knows of one follower's log (§3.5, and etcd's "progress"):
// where it matches, what to send next, and how much is in flight. A follower
// is probed one append at a time until an append succeeds, then appends are
// pipelined: sent before the previous ones are answered, up to `inflight_max`
// messages (flow control by count; each carries at most `batch_bytes`).

#include <cstddef>

#include "raft/types.h"

namespace xerv::raft {

struct progress {
  index_t match;     // the highest index known to match the leader's log
  index_t next;      // the first index to send
  size_t inflight = 0;
  bool probing = true;
  bool active = false;  // answered since the last check-quorum (§6.2)
  // Sending it the snapshot (its next entries are compacted away), one chunk at a time.
  bool snapshotting = false;
  index_t snapshot_index;
  uint64_t snapshot_offset = 0;  // what it has received
  uint64_t snapshot_seq = 0;     // the chunk in flight: only its answer counts
  unsigned snapshot_quiet = 0;   // heartbeats since that chunk went out
  index_t commit_sent;           // the commit index the last append to it carried

  bool can_send(size_t inflight_max) const { return probing ? inflight == 0 : inflight < inflight_max; }
  // An append up to `last` went out.
  void sent(index_t last) {
    ++inflight;
    if (!probing && last.value + 1 > next.value) next = last.next();
  }
  void succeeded(index_t m) {
    active = true;
    if (inflight) --inflight;
    if (m > match) match = m;
    if (match.next() > next) next = match.next();
    probing = false;
  }
  // Refused: its log ends at `last` or does not match before `next`.
  void refused(index_t last) {
    active = true;
    inflight = 0;
    probing = true;
    uint64_t n = std::min(next.value > 1 ? next.value - 1 : 1, last.value + 1);
    next = index_t(std::max<uint64_t>(n, match.value + 1));
  }
};

}  // namespace xerv::raft
