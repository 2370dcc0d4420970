#pragma once
// The little-endian binary framing of WAL payloads (flows/journal.h, the
// admission record of core/dispatch.h): integers fixed-width, strings as u32
// length + bytes, every record starting with its trace id.

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include "core/trace_id.h"

namespace xerv::core {

struct record_writer {
  std::string& out;
  void u8(uint8_t v) { out.push_back(char(v)); }
  void u64(uint64_t v) { out.append(reinterpret_cast<const char*>(&v), 8); }
  void str(std::string_view s) {
    uint32_t n = uint32_t(s.size());
    out.append(reinterpret_cast<const char*>(&n), 4);
    out.append(s);
  }
  void id(const trace_id& t) {
    u64(t.hi);
    u64(t.lo);
  }
};

// A read past the end, or a length beyond it, sets ok = false; later reads
// return zeros and empty strings.
struct record_reader {
  std::string_view in;
  bool ok = true;
  bool take(void* dst, size_t n) {
    if (!ok || in.size() < n) return ok = false;
    std::memcpy(dst, in.data(), n);
    in.remove_prefix(n);
    return true;
  }
  uint8_t u8() {
    uint8_t v = 0;
    take(&v, 1);
    return v;
  }
  uint64_t u64() {
    uint64_t v = 0;
    take(&v, 8);
    return v;
  }
  std::string str() {
    uint32_t n = 0;
    if (!take(&n, 4) || in.size() < n) {
      ok = false;
      return {};
    }
    std::string s(in.substr(0, n));
    in.remove_prefix(n);
    return s;
  }
  trace_id id() {
    trace_id t;
    t.hi = u64();
    t.lo = u64();
    return t;
  }
  bool done() const { return ok && in.empty(); }
};

}  // namespace xerv::core
