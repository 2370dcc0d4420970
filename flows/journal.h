#pragma once
// What the engine writes to the WAL about a trace (SPEC §6), and how it reads it
// back at recovery and in `xerv inspect`. Payloads are little-endian binary:
// integers fixed-width, strings and encoded values as u32 length + bytes.
//
// A trace's records, in log order: started (its input) → node, one per completed
// top-level node (its port, its output and the log lines written since the
// previous record) → ended (status, output, error, last log lines). Nodes inside a
// std::split or std::loop body are covered by the record of their container.

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/dispatch.h"
#include "core/trace_id.h"
#include "io/log.h"

namespace xerv::flows {

enum class journal_type : uint32_t {
  started = core::wal_type_admission,
  node = 2,
  ended = core::wal_type_final,
  idempotency = 4,  // an Idempotency-Key and the trace it started (flows/idempotency.h)
  cron = 5,         // a cron trigger's fire and the trace it started (flows/schedule.h)
};

struct log_line {
  uint64_t unix_ms;
  io::log_level level;
  std::string node;
  std::string message;
};

// The started record is the dispatch interface's admission (core/dispatch.h).
using started_record = core::admission_record;

struct node_record {
  core::trace_id id;
  std::string node, port;
  uint64_t finished_ms = 0;
  uint64_t duration_us = 0;
  std::string output;  // encoded value
  std::vector<log_line> logs;
};

struct ended_record {
  core::trace_id id;
  uint8_t status = 0;  // trace_status
  uint64_t finished_ms = 0;
  std::string error_node, error_message;
  std::string output;  // encoded value; empty when there is none
  std::vector<log_line> logs;
  std::string error_code;  // last, and optional: records written before codes existed lack it
};

// The same records as views of what the engine already holds: encoding one
// copies each byte once, into `out`.
using started_view = core::admission;
struct node_view {
  core::trace_id id;
  std::string_view node, port;
  uint64_t finished_ms, duration_us;
  std::string_view output;
  std::span<const log_line> logs;
};
struct ended_view {
  core::trace_id id;
  uint8_t status;
  uint64_t finished_ms;
  std::string_view error_node, error_message, output;
  std::span<const log_line> logs;
  std::string_view error_code;
};

struct idempotency_record {
  core::trace_id id;
  uint64_t expires_ms = 0;
  std::string pipeline, key;
  bool relogged = false;  // written again as its segment retired (not next to its trace's start)
};

// A cron trigger handled the instant `scheduled_s` (Unix seconds): fired it,
// starting trace `id` (the record goes just before its admission), or not;
// `previous_s` is the instant handled before, so a fire whose admission never
// made it to the log is undone at recovery.
struct cron_record {
  core::trace_id id;  // zero: no trace (a deploy, a refused instant, or a delete when scheduled_s is 0)
  int64_t scheduled_s = 0, previous_s = 0;
  std::string pipeline, trigger;
  bool relogged = false;  // written again as its segment retired
  std::string schedule;   // the schedule and zone it was written under
};

// The final record of a run that ended in a std::wait (SPEC §5): a final
// record (id, status `suspended`, the suspension time) holding everything the
// resume needs, so a waiting trace keeps no memory and no earlier record alive
// (its admission and node records may go with retention).
inline constexpr uint8_t suspended_status = 5;  // trace_status::suspended
struct suspended_record {
  started_record start;  // id, created time, pipeline, version, trigger, input
  uint64_t suspended_ms = 0;
  uint64_t started_ms = 0;
  std::string hook_id, node;
  std::string metadata;     // encoded value
  uint64_t expires_ms = 0;  // 0: no expiry
  uint8_t timeout_action = 1;
  std::vector<node_record> nodes;  // completed top-level nodes (no id, no logs: those are in `logs`)
  std::vector<log_line> logs;
};

// A resume (the continuation of the trace's new admission, core/dispatch.h):
// the suspended record, the decision (the wait node's port) and response_data
// (its output, an encoded value).
struct continuation {
  std::string suspended;
  uint8_t decision = 0;
  std::string response_data;
};

// Encoders replace the content of `out`, so one buffer serves every record.
void encode(std::string& out, const started_view& r);
void encode(std::string& out, const node_view& r);
void encode(std::string& out, const ended_view& r);
void encode(std::string& out, const started_record& r);
void encode(std::string& out, const node_record& r);
void encode(std::string& out, const ended_record& r);
void encode(std::string& out, const idempotency_record& r);
void encode(std::string& out, const cron_record& r);
void encode(std::string& out, const suspended_record& r);
void encode(std::string& out, const continuation& r);

// Decoders refuse (nullopt) anything truncated or with trailing bytes.
std::optional<started_record> decode_started(std::string_view p);
std::optional<node_record> decode_node(std::string_view p);
std::optional<ended_record> decode_ended(std::string_view p);
// The trace status a final (ended) record's status byte stands for
// (core::final_header::status).
enum class trace_status : uint8_t;  // flows/executor.h
trace_status final_status(uint8_t status_byte);
std::optional<idempotency_record> decode_idempotency(std::string_view p);
std::optional<cron_record> decode_cron(std::string_view p);
std::optional<suspended_record> decode_suspended(std::string_view p);
std::optional<continuation> decode_continuation(std::string_view p);

// The trace a record belongs to (every payload starts with it).
std::optional<core::trace_id> record_trace(std::string_view p);

}  // namespace xerv::flows
