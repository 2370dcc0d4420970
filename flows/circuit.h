#pragma once
// A pipeline's circuit breaker (SPEC §4). Closed: every trace is admitted, and
// each shard counts its outcomes over the window. When, summed over every
// shard, at least `min_failures` traces failed in the window and the failure
// ratio exceeds the pipeline's threshold, the breaker opens: new traces are
// refused (503 circuit_open) for `open_for`. Then it is half-open: each shard
// admits `probes` traces at a time; `closing_successes` of them succeeding
// close it, one failing opens it again.
//
// The control shard decides every transition (flows/control.h) and applies it
// to every shard in one order, so every shard's copy of the state is the same;
// half-open needs no message, as it follows from the time the open state ends.
// Each decision has a generation: an outcome reported against an older one
// (a trace admitted before the last transition) changes nothing.
//
// Everything here is shard-local and takes the time as an argument.

#include <array>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

#include "io/task.h"

namespace xerv::flows {

enum class circuit_state : uint8_t { closed, open, half_open };
const char* to_string(circuit_state s);

struct circuit_options {
  uint64_t window_ms = 60'000;
  uint64_t open_ms = 30'000;
  uint32_t min_failures = 5;
  uint32_t probes = 3;  // traces admitted at once while half-open, per shard
  uint32_t closing_successes = 3;
};

struct circuit_counts {
  uint64_t ok = 0, failed = 0;
  void add(const circuit_counts& o) {
    ok += o.ok;
    failed += o.failed;
  }
};

// One shard's outcomes over the last window, in buckets of a tenth of it (so
// an outcome leaves the count between 0.9 and 1 window after it happened).
class circuit_window {
 public:
  void add(bool ok, uint64_t now_ms, uint64_t window_ms);
  circuit_counts total(uint64_t now_ms, uint64_t window_ms) const;
  void clear() { _buckets = {}; }

 private:
  static constexpr uint64_t buckets = 10;
  struct bucket {
    uint64_t epoch = 0;  // now / bucket width + 1; 0: unused
    circuit_counts counts;
  };
  std::array<bucket, buckets> _buckets{};
};

// What the control shard decided; applied as is on every shard.
struct circuit_decision {
  circuit_state state = circuit_state::closed;  // closed or open
  uint64_t generation = 0;
  uint64_t open_until_ms = 0;
};

// One shard's copy of one pipeline's breaker.
struct circuit {
  circuit_decision decided;
  uint32_t trials = 0;           // half-open traces running on this shard
  uint32_t trial_successes = 0;  // the deciding shard's count in this half-open period
  circuit_window window;

  circuit_state at(uint64_t now_ms) const {
    if (decided.state == circuit_state::open && now_ms >= decided.open_until_ms) return circuit_state::half_open;
    return decided.state;
  }
  void apply(const circuit_decision& d) {
    decided = d;
    trial_successes = 0;
    window.clear();  // a new closed or open period counts from zero
  }
};

// A trace's outcome as its shard reports it to the control shard: failures
// while closed, and every outcome of a half-open trial.
struct circuit_event {
  std::string pipeline;
  uint64_t generation = 0;  // the decision the trace was admitted under
  bool trial = false;       // admitted while half-open
  bool ok = false;
};

// Where a shard sends its events: the control plane, which decides for every
// shard. Callable on any shard; completes once the decision is applied.
class circuit_reporter {
 public:
  virtual ~circuit_reporter() = default;
  virtual io::task<void> report(circuit_event e) = 0;
};

// The deciding shard's rule: the next decision after `e`, given every shard's
// window summed (while closed); nullopt when nothing changes. Counts the
// successful trials in `current`.
std::optional<circuit_decision> decide(circuit& current, const circuit_event& e, circuit_counts summed,
                                       double threshold, const circuit_options& o, uint64_t now_ms);

}  // namespace xerv::flows
