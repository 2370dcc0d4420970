#include "core/trace_id.h"

#include <sys/random.h>
#include <time.h>

#include <cstdio>

namespace xerv::core {

namespace {
int64_t g_clock_offset_ns = 0;  // written once at start, read-only after
}

void set_clock_offset_ms(int64_t offset) { g_clock_offset_ns = offset * 1'000'000; }

int64_t unix_ns_now() {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  return int64_t(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec + g_clock_offset_ns;
}

uint64_t unix_ms_now() { return uint64_t(unix_ns_now() / 1'000'000); }

std::string trace_id::to_string() const {
  // By hand, not snprintf: a request formats its trace id several times.
  static constexpr char hex[] = "0123456789abcdef";
  std::string out(36, '-');
  auto put = [&out](size_t at, uint64_t v, int digits) {
    for (int i = digits - 1; i >= 0; --i, v >>= 4) out[at + size_t(i)] = hex[v & 15];
  };
  put(0, hi >> 32, 8);
  put(9, (hi >> 16) & 0xffff, 4);
  put(14, hi & 0xffff, 4);
  put(19, lo >> 48, 4);
  put(24, lo & 0xffff'ffff'ffff, 12);
  return out;
}

std::optional<trace_id> trace_id::parse(std::string_view s) {
  if (s.size() != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-') return std::nullopt;
  trace_id id;
  int nibbles = 0;
  for (char c : s) {
    if (c == '-') continue;
    int v;
    if (c >= '0' && c <= '9') v = c - '0';
    else if (c >= 'a' && c <= 'f') v = c - 'a' + 10;
    else if (c >= 'A' && c <= 'F') v = c - 'A' + 10;
    else return std::nullopt;
    uint64_t& half = nibbles < 16 ? id.hi : id.lo;
    half = (half << 4) | uint64_t(v);
    ++nibbles;
  }
  if (nibbles != 32) return std::nullopt;
  return id;
}

trace_id new_trace_id(unsigned shard) {
  thread_local uint64_t seq = [] {
    uint64_t r = 0;
    if (getrandom(&r, sizeof r, GRND_NONBLOCK) != sizeof r) r = uint64_t(clock());
    return r;
  }();
  thread_local uint64_t last_ms = 0;
  uint64_t ms = unix_ms_now();
  if (ms < last_ms) ms = last_ms;  // never go backwards within a shard
  last_ms = ms;
  return {(ms << 16) | (shard & 0xffff), ++seq};
}

}  // namespace xerv::core
