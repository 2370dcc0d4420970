#include "flows/journal.h"

#include <cstring>

#include "core/codec.h"
#include "flows/executor.h"
#include "io/assert.h"

namespace xerv::flows {
namespace {

void put_logs(core::record_writer& w, std::span<const log_line> ls) {
  w.u64(ls.size());
  for (const auto& l : ls) {
    w.u64(l.unix_ms);
    w.u8(uint8_t(l.level));
    w.str(l.node);
    w.str(l.message);
  }
}

std::vector<log_line> get_logs(core::record_reader& rd) {
  uint64_t n = rd.u64();
  std::vector<log_line> out;
  // Each line takes at least 17 bytes: a count beyond that is damage.
  if (!rd.ok || n > rd.in.size() / 17) {
    rd.ok = false;
    return out;
  }
  out.reserve(n);
  for (uint64_t i = 0; i < n && rd.ok; ++i) {
    log_line l;
    l.unix_ms = rd.u64();
    uint8_t lvl = rd.u8();
    if (lvl > uint8_t(io::log_level::error)) rd.ok = false;
    l.level = io::log_level(lvl);
    l.node = rd.str();
    l.message = rd.str();
    out.push_back(std::move(l));
  }
  return out;
}

constexpr uint8_t ended_has_code = 0x80;
static_assert(suspended_status == uint8_t(trace_status::suspended));

}  // namespace

void encode(std::string& out, const node_view& r) {
  out.clear();
  core::record_writer w{out};
  w.id(r.id);
  w.str(r.node);
  w.str(r.port);
  w.u64(r.finished_ms);
  w.u64(r.duration_us);
  w.str(r.output);
  put_logs(w, r.logs);
}

void encode(std::string& out, const ended_view& r) {
  out.clear();
  core::record_writer w{out};
  w.id(r.id);
  // The high bit says an error code follows the logs (logs written before codes
  // existed lack it), so a truncated record still never decodes.
  ASSERT(r.status < ended_has_code);
  w.u8(uint8_t(r.status | (r.error_code.empty() ? 0 : ended_has_code)));
  w.u64(r.finished_ms);
  w.str(r.error_node);
  w.str(r.error_message);
  w.str(r.output);
  put_logs(w, r.logs);
  if (!r.error_code.empty()) w.str(r.error_code);
}

void encode(std::string& out, const started_view& r) { core::encode(out, r); }
void encode(std::string& out, const started_record& r) {
  core::encode(out, started_view{r.id, r.created_ms, r.pipeline, r.version, r.trigger, r.input, r.continuation});
}
void encode(std::string& out, const node_record& r) {
  encode(out, node_view{r.id, r.node, r.port, r.finished_ms, r.duration_us, r.output, r.logs});
}
void encode(std::string& out, const ended_record& r) {
  encode(out, ended_view{r.id, r.status, r.finished_ms, r.error_node, r.error_message, r.output, r.logs, r.error_code});
}

std::optional<started_record> decode_started(std::string_view p) { return core::decode_admission(p); }

std::optional<node_record> decode_node(std::string_view p) {
  core::record_reader rd{p};
  node_record r;
  r.id = rd.id();
  r.node = rd.str();
  r.port = rd.str();
  r.finished_ms = rd.u64();
  r.duration_us = rd.u64();
  r.output = rd.str();
  r.logs = get_logs(rd);
  if (!rd.done()) return std::nullopt;
  return r;
}

std::optional<ended_record> decode_ended(std::string_view p) {
  core::record_reader rd{p};
  ended_record r;
  r.id = rd.id();
  r.status = rd.u8();
  bool has_code = r.status & ended_has_code;
  r.status &= uint8_t(~ended_has_code);
  if (r.status == suspended_status) return std::nullopt;  // decode_suspended's
  r.finished_ms = rd.u64();
  r.error_node = rd.str();
  r.error_message = rd.str();
  r.output = rd.str();
  r.logs = get_logs(rd);
  if (has_code) {
    r.error_code = rd.str();
    if (r.error_code.empty()) return std::nullopt;
  }
  if (!rd.done()) return std::nullopt;
  return r;
}

void encode(std::string& out, const idempotency_record& r) {
  out.clear();
  core::record_writer w{out};
  w.id(r.id);
  w.u64(r.expires_ms);
  w.str(r.pipeline);
  w.str(r.key);
  w.u8(r.relogged);
}

std::optional<idempotency_record> decode_idempotency(std::string_view p) {
  core::record_reader rd{p};
  idempotency_record r;
  r.id = rd.id();
  r.expires_ms = rd.u64();
  r.pipeline = rd.str();
  r.key = rd.str();
  uint8_t relogged = rd.u8();
  r.relogged = relogged == 1;
  if (!rd.done() || r.key.empty() || relogged > 1) return std::nullopt;
  return r;
}

void encode(std::string& out, const cron_record& r) {
  out.clear();
  core::record_writer w{out};
  w.id(r.id);
  w.u64(uint64_t(r.scheduled_s));
  w.u64(uint64_t(r.previous_s));
  w.str(r.pipeline);
  w.str(r.trigger);
  w.u8(r.relogged);
  w.str(r.schedule);
}

std::optional<cron_record> decode_cron(std::string_view p) {
  core::record_reader rd{p};
  cron_record r;
  r.id = rd.id();
  r.scheduled_s = int64_t(rd.u64());
  r.previous_s = int64_t(rd.u64());
  r.pipeline = rd.str();
  r.trigger = rd.str();
  uint8_t relogged = rd.u8();
  r.relogged = relogged == 1;
  r.schedule = rd.str();
  if (!rd.done() || r.trigger.empty() || relogged > 1) return std::nullopt;
  return r;
}

void encode(std::string& out, const suspended_record& r) {
  out.clear();
  core::record_writer w{out};
  const started_record& a = r.start;
  w.id(a.id);
  w.u8(suspended_status);
  w.u64(r.suspended_ms);
  w.u64(a.created_ms);
  w.u64(r.started_ms);
  w.str(a.pipeline);
  w.str(a.version);
  w.str(a.trigger);
  w.str(a.input);
  w.str(r.hook_id);
  w.str(r.node);
  w.str(r.metadata);
  w.u64(r.expires_ms);
  w.u8(r.timeout_action);
  w.u64(r.nodes.size());
  for (const auto& n : r.nodes) {
    w.str(n.node);
    w.str(n.port);
    w.u64(n.finished_ms);
    w.u64(n.duration_us);
    w.str(n.output);
  }
  put_logs(w, r.logs);
}

std::optional<suspended_record> decode_suspended(std::string_view p) {
  core::record_reader rd{p};
  suspended_record r;
  started_record& a = r.start;
  a.id = rd.id();
  if (rd.u8() != suspended_status) return std::nullopt;
  r.suspended_ms = rd.u64();
  a.created_ms = rd.u64();
  r.started_ms = rd.u64();
  a.pipeline = rd.str();
  a.version = rd.str();
  a.trigger = rd.str();
  a.input = rd.str();
  r.hook_id = rd.str();
  r.node = rd.str();
  r.metadata = rd.str();
  r.expires_ms = rd.u64();
  r.timeout_action = rd.u8();
  uint64_t n = rd.u64();
  // Each node takes at least 36 bytes: a count beyond that is damage.
  if (!rd.ok || n > rd.in.size() / 36 || r.timeout_action > 2) return std::nullopt;
  r.nodes.reserve(n);
  for (uint64_t i = 0; i < n && rd.ok; ++i) {
    node_record nr;
    nr.id = a.id;
    nr.node = rd.str();
    nr.port = rd.str();
    nr.finished_ms = rd.u64();
    nr.duration_us = rd.u64();
    nr.output = rd.str();
    r.nodes.push_back(std::move(nr));
  }
  r.logs = get_logs(rd);
  if (!rd.done() || r.hook_id.empty() || r.node.empty()) return std::nullopt;
  return r;
}

void encode(std::string& out, const continuation& r) {
  out.clear();
  core::record_writer w{out};
  w.str(r.suspended);
  w.u8(r.decision);
  w.str(r.response_data);
}

std::optional<continuation> decode_continuation(std::string_view p) {
  core::record_reader rd{p};
  continuation r;
  r.suspended = rd.str();
  r.decision = rd.u8();
  r.response_data = rd.str();
  if (!rd.done() || r.decision > 2) return std::nullopt;
  return r;
}

std::optional<core::trace_id> record_trace(std::string_view p) { return core::record_trace_id(p); }

trace_status final_status(uint8_t status_byte) { return trace_status(status_byte & ~ended_has_code); }

}  // namespace xerv::flows
