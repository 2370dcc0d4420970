#pragma once
// The dispatch interface: what every backend (memory, Raft, Redis Streams, NATS
// JetStream; SPEC §7) does for the engine. docs/architecture.md maps each call
// onto each backend.
//
// Traces: a shard admits a trace (trace_queue::admit) and answers its client once
// the admission is durable; a consumer (one per shard) takes admitted traces,
// runs them, and acknowledges each with its final record. A consumer that dies
// holding traces loses them to take_over (or, for backends that detect death
// themselves, to redelivery); each such trace goes to exactly one new taker.
//
// Pipelines: the control plane publishes deploys, deletes and state changes to
// the pipeline_store, which gives each a place in one order (seq) and each
// pipeline a revision; every watcher sees the changes in that order.
//
// Implementations are per shard: each shard has its own trace_queue object,
// used only there. A pipeline_store lives on the control shard (shard 0).

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "core/codec.h"
#include "core/trace_id.h"
#include "io/cancel.h"
#include "io/result.h"
#include "io/task.h"

namespace xerv::core {

enum class dispatch_errc {
  unavailable = 1,  // the backend cannot take or store it now (disk, peer, quorum)
  too_large,        // the record exceeds what the backend can hold
  conflict,         // a change was overtaken (expected revision no longer current)
  not_found,        // no such pipeline
};
const std::error_category& dispatch_category();
inline std::error_code make_error_code(dispatch_errc e) { return {int(e), dispatch_category()}; }

enum class pipeline_state : uint8_t { stopped, running, paused, draining };
const char* to_string(pipeline_state s);
std::optional<pipeline_state> parse_pipeline_state(std::string_view s);

// ---- traces ----

// What is admitted: the trace, the pipeline id and version it was admitted to,
// the trigger that fired and the input (an encoded core::value). A trace
// resumed after a suspension is admitted again under its id with a
// continuation (opaque to backends: the engine's record of where it goes on).
struct admission {
  trace_id id;
  uint64_t created_ms = 0;
  std::string_view pipeline, version, trigger, input;
  std::string_view continuation = {};  // empty: a new trace
};
struct admission_record {
  trace_id id;
  uint64_t created_ms = 0;
  std::string pipeline, version, trigger, input;
  std::string continuation;
};
// The one binary form of an admission (the WAL's `started` record, a Raft entry,
// a stream entry): replaces the content of `out`.
void encode(std::string& out, const admission& a);
std::optional<admission_record> decode_admission(std::string_view bytes);
// Every dispatch record (admission, final record) starts with its trace id.
std::optional<trace_id> record_trace_id(std::string_view bytes);
// A final record (what ack stores; the rest is the engine's) starts with the
// trace id, a status byte and the finish time in Unix ms.
struct final_header {
  trace_id id;
  uint8_t status = 0;
  uint64_t finished_ms = 0;
};
std::optional<final_header> decode_final_header(std::string_view bytes);

// WAL record types of a backend that journals to the shard's WAL (memory): the
// admission and the final record. The engine's own records use other types.
inline constexpr uint32_t wal_type_admission = 1;
inline constexpr uint32_t wal_type_final = 3;

// A durability ticket: 0 is durable already.
using dispatch_ticket = uint64_t;

// A trace handed to a consumer. The views stay valid until the consumer acks
// the trace or is destroyed (the backend holds the bytes while it is in flight).
struct delivery {
  trace_id id;
  std::string_view pipeline;
  std::string_view record;  // the encoded admission
  uint32_t attempt = 1;     // 1, or more when a consumer died holding it
};

// What a backend shared by several nodes knows of a trace this node's engine
// may never have run (GET /traces/{id} on any node).
struct trace_whereabouts {
  std::string pipeline;
  uint64_t owner = 0;      // the node that runs or ran it
  uint32_t attempt = 1;
  bool finished = false;
  uint8_t status = 0;      // final_header::status, once finished
  uint64_t created_ms = 0;
  uint64_t finished_ms = 0;
};

struct queue_depth {
  uint64_t ready = 0;      // admitted, not taken by any consumer
  uint64_t in_flight = 0;  // taken, not acknowledged
};

class trace_consumer {
 public:
  // Destroying a consumer that holds unacknowledged traces is its death: they
  // stay in flight under its name until take_over (or the backend's own
  // redelivery) hands them to another consumer.
  virtual ~trace_consumer() = default;
  virtual const std::string& name() const = 0;
  // Up to `max` traces (max > 0: how many more this shard can hold), waiting
  // until there is at least one; empty once `stop` is cancelled.
  virtual io::task<std::vector<delivery>> take(size_t max, io::cancel_source& stop) = 0;
  // What take would hand out at once, without waiting (possibly nothing): lets
  // a shard start a trace it just admitted in the same turn.
  virtual std::vector<delivery> poll(size_t max) = 0;
  // Records a taken trace's final record (opaque bytes starting with its id).
  // Idempotent: a trace this consumer does not hold (acked already, never
  // taken) writes nothing and returns 0.
  virtual io::result<dispatch_ticket> ack(const trace_id& id, std::string_view final_record) = 0;
  // The traces a dead consumer held become deliverable again; the number moved.
  virtual size_t take_over(std::string_view dead) = 0;
};

class trace_queue {
 public:
  virtual ~trace_queue() = default;
  // Appends the admission; errors: unavailable, too_large.
  virtual io::result<dispatch_ticket> admit(const admission& a) = 0;
  // Completes when the admission (or final record) behind `t` is durable; an
  // error says it never will be.
  virtual io::task<io::result<void>> durable(dispatch_ticket t) = 0;
  virtual std::unique_ptr<trace_consumer> consume(std::string name) = 0;
  // Every pipeline's, or one pipeline's.
  virtual queue_depth depth() const = 0;
  virtual queue_depth depth(std::string_view pipeline) const = 0;
  // nullopt: not known beyond this node's engine (the memory backend: never).
  virtual io::task<std::optional<trace_whereabouts>> locate(const trace_id& id);
};

// ---- pipelines ----

struct pipeline_change {
  enum class kind : uint8_t { deploy, remove, state, triggers };
  kind what = kind::deploy;
  std::string name;
  std::string source;  // deploy: the flow YAML
  pipeline_state state = pipeline_state::running;
  // The triggers switched off at run time (deploy, triggers; a state change
  // keeps the stored ones).
  std::vector<std::string> disabled;
  bool persist = true;  // false: loaded from XERV_PIPELINES_DIR at start, not stored
  // Set by the store: the pipeline's revision after the change (a deploy adds
  // one) and the change's place in the control log.
  uint64_t revision = 0;
  uint64_t seq = 0;
};

class pipeline_watch {
 public:
  virtual ~pipeline_watch() = default;
  // The next change in seq order; nullopt once `stop` is cancelled.
  virtual io::task<std::optional<pipeline_change>> next(io::cancel_source& stop) = 0;
};

// A publish's expected revision that only a pipeline not stored yet matches.
inline constexpr uint64_t revision_absent = UINT64_MAX;

// A change's binary form (its revision and seq not included), for backends
// that store or send changes; a bad one leaves in.ok false.
void write_change(record_writer& w, const pipeline_change& c);
pipeline_change read_change(record_reader& in);

// The rules every pipeline_store applies to a publish (below): `stored` is the
// pipeline as stored, nullptr if none. Gives the change as it is to be stored
// and shown to watchers, its revision set (a deploy adds one) and, for a
// state, trigger or remove change, what it keeps of the stored pipeline; or
// conflict (`expected` not matched) or not_found. The seq is the store's.
io::result<pipeline_change> apply_publish(pipeline_change c, const pipeline_change* stored, uint64_t expected);

class pipeline_store {
 public:
  virtual ~pipeline_store() = default;
  // The stored pipelines as deploys (with their state and revision), seq order.
  virtual io::task<io::result<std::vector<pipeline_change>>> load() = 0;
  // Durably records the change and gives it its revision and seq; every watch
  // then sees it. `expected_revision` > 0 refuses (conflict) unless the
  // pipeline is at that revision (revision_absent: unless there is none);
  // a delete or state change of an unknown pipeline is not_found.
  virtual io::task<io::result<pipeline_change>> publish(pipeline_change c, uint64_t expected_revision) = 0;
  // Changes published from now on.
  virtual std::unique_ptr<pipeline_watch> watch() = 0;
};

}  // namespace xerv::core

namespace std {
template <>
struct is_error_code_enum<xerv::core::dispatch_errc> : true_type {};
}  // namespace std
