#pragma once
// Trace ids: 128 bits, time-ordered, naming the shard that owns the trace, so any
// shard can route a lookup to the owner with one message. Layout: 48 bits of Unix
// milliseconds, 16 bits of shard, 64 bits of a per-shard sequence started at a
// random value. Written as a UUID-shaped string of 32 hex digits.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace xerv::core {

struct trace_id {
  uint64_t hi = 0;
  uint64_t lo = 0;

  unsigned shard() const { return unsigned(hi & 0xffff); }
  uint64_t unix_ms() const { return hi >> 16; }
  std::string to_string() const;
  static std::optional<trace_id> parse(std::string_view text);
  bool operator==(const trace_id&) const = default;
};

// A new id owned by `shard` (call on that shard: the sequence is per thread).
trace_id new_trace_id(unsigned shard);

// The wall clock every timestamp, trace id, cron instant and expiry reads:
// CLOCK_REALTIME plus the offset XERV_DEBUG_CLOCK_OFFSET_MS set at start (0 but
// in tests that play a long downtime without waiting for it).
uint64_t unix_ms_now();
int64_t unix_ns_now();
void set_clock_offset_ms(int64_t offset);  // before any shard starts

}  // namespace xerv::core
