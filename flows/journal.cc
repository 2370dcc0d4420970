#include "flows/journal.h"

#include <cstring>

#include "io/assert.h"

namespace xerv::flows {
namespace {

struct writer {
  std::string& out;
  void u8(uint8_t v) { out.push_back(char(v)); }
  void u64(uint64_t v) { out.append(reinterpret_cast<const char*>(&v), 8); }
  void str(std::string_view s) {
    uint32_t n = uint32_t(s.size());
    out.append(reinterpret_cast<const char*>(&n), 4);
    out.append(s);
  }
  void id(const core::trace_id& t) {
    u64(t.hi);
    u64(t.lo);
  }
  void logs(std::span<const log_line> ls) {
    u64(ls.size());
    for (const auto& l : ls) {
      u64(l.unix_ms);
      u8(uint8_t(l.level));
      str(l.node);
      str(l.message);
    }
  }
};

struct reader {
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
  core::trace_id id() {
    core::trace_id t;
    t.hi = u64();
    t.lo = u64();
    return t;
  }
  std::vector<log_line> logs() {
    uint64_t n = u64();
    std::vector<log_line> out;
    // Each line takes at least 17 bytes: a count beyond that is damage.
    if (!ok || n > in.size() / 17) {
      ok = false;
      return out;
    }
    out.reserve(n);
    for (uint64_t i = 0; i < n && ok; ++i) {
      log_line l;
      l.unix_ms = u64();
      uint8_t lvl = u8();
      if (lvl > uint8_t(io::log_level::error)) ok = false;
      l.level = io::log_level(lvl);
      l.node = str();
      l.message = str();
      out.push_back(std::move(l));
    }
    return out;
  }
  bool done() const { return ok && in.empty(); }
};

constexpr uint8_t ended_has_code = 0x80;

}  // namespace

void encode(std::string& out, const started_view& r) {
  out.clear();
  writer w{out};
  w.id(r.id);
  w.u64(r.created_ms);
  w.str(r.pipeline);
  w.str(r.version);
  w.str(r.trigger);
  w.str(r.input);
}

void encode(std::string& out, const node_view& r) {
  out.clear();
  writer w{out};
  w.id(r.id);
  w.str(r.node);
  w.str(r.port);
  w.u64(r.finished_ms);
  w.u64(r.duration_us);
  w.str(r.output);
  w.logs(r.logs);
}

void encode(std::string& out, const ended_view& r) {
  out.clear();
  writer w{out};
  w.id(r.id);
  // The high bit says an error code follows the logs (logs written before codes
  // existed lack it), so a truncated record still never decodes.
  ASSERT(r.status < ended_has_code);
  w.u8(uint8_t(r.status | (r.error_code.empty() ? 0 : ended_has_code)));
  w.u64(r.finished_ms);
  w.str(r.error_node);
  w.str(r.error_message);
  w.str(r.output);
  w.logs(r.logs);
  if (!r.error_code.empty()) w.str(r.error_code);
}

void encode(std::string& out, const started_record& r) {
  encode(out, started_view{r.id, r.created_ms, r.pipeline, r.version, r.trigger, r.input});
}
void encode(std::string& out, const node_record& r) {
  encode(out, node_view{r.id, r.node, r.port, r.finished_ms, r.duration_us, r.output, r.logs});
}
void encode(std::string& out, const ended_record& r) {
  encode(out, ended_view{r.id, r.status, r.finished_ms, r.error_node, r.error_message, r.output, r.logs, r.error_code});
}

std::optional<started_record> decode_started(std::string_view p) {
  reader rd{p};
  started_record r;
  r.id = rd.id();
  r.created_ms = rd.u64();
  r.pipeline = rd.str();
  r.version = rd.str();
  r.trigger = rd.str();
  r.input = rd.str();
  if (!rd.done()) return std::nullopt;
  return r;
}

std::optional<node_record> decode_node(std::string_view p) {
  reader rd{p};
  node_record r;
  r.id = rd.id();
  r.node = rd.str();
  r.port = rd.str();
  r.finished_ms = rd.u64();
  r.duration_us = rd.u64();
  r.output = rd.str();
  r.logs = rd.logs();
  if (!rd.done()) return std::nullopt;
  return r;
}

std::optional<ended_record> decode_ended(std::string_view p) {
  reader rd{p};
  ended_record r;
  r.id = rd.id();
  r.status = rd.u8();
  bool has_code = r.status & ended_has_code;
  r.status &= uint8_t(~ended_has_code);
  r.finished_ms = rd.u64();
  r.error_node = rd.str();
  r.error_message = rd.str();
  r.output = rd.str();
  r.logs = rd.logs();
  if (has_code) {
    r.error_code = rd.str();
    if (r.error_code.empty()) return std::nullopt;
  }
  if (!rd.done()) return std::nullopt;
  return r;
}

std::optional<core::trace_id> record_trace(std::string_view p) {
  reader rd{p};
  core::trace_id t = rd.id();
  if (!rd.ok) return std::nullopt;
  return t;
}

}  // namespace xerv::flows
