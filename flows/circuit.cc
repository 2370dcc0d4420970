#include "flows/circuit.h"

namespace xerv::flows {

const char* to_string(circuit_state s) {
  switch (s) {
    case circuit_state::closed: return "closed";
    case circuit_state::open: return "open";
    case circuit_state::half_open: return "half_open";
  }
  return "unknown";
}

void circuit_window::add(bool ok, uint64_t now_ms, uint64_t window_ms) {
  uint64_t width = window_ms / buckets ? window_ms / buckets : 1;
  uint64_t epoch = now_ms / width + 1;
  bucket& b = _buckets[epoch % buckets];
  if (b.epoch != epoch) b = bucket{epoch, {}};
  ++(ok ? b.counts.ok : b.counts.failed);
}

circuit_counts circuit_window::total(uint64_t now_ms, uint64_t window_ms) const {
  uint64_t width = window_ms / buckets ? window_ms / buckets : 1;
  uint64_t epoch = now_ms / width + 1;
  circuit_counts sum;
  for (const bucket& b : _buckets)
    if (b.epoch != 0 && b.epoch + buckets > epoch) sum.add(b.counts);
  return sum;
}

std::optional<circuit_decision> decide(circuit& current, const circuit_event& e, circuit_counts summed,
                                       double threshold, const circuit_options& o, uint64_t now_ms) {
  const circuit_decision& d = current.decided;
  if (e.generation != d.generation) return std::nullopt;  // decided since the trace was admitted
  circuit_decision next{circuit_state::open, d.generation + 1, now_ms + o.open_ms};
  switch (current.at(now_ms)) {
    case circuit_state::closed: {
      if (e.ok || e.trial) return std::nullopt;
      uint64_t all = summed.ok + summed.failed;
      if (summed.failed < o.min_failures || double(summed.failed) <= threshold * double(all)) return std::nullopt;
      return next;
    }
    case circuit_state::half_open:
      if (!e.trial) return std::nullopt;  // admitted while closed, ended late
      if (!e.ok) return next;
      if (++current.trial_successes < o.closing_successes) return std::nullopt;
      return circuit_decision{circuit_state::closed, d.generation + 1, 0};
    case circuit_state::open: return std::nullopt;
  }
  return std::nullopt;
}

}  // namespace xerv::flows
