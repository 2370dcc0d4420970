#pragma once
// The engine of one shard: every deployed pipeline (installed by the control
// plane, flows/control.h, in the same order on every shard), the traces this
// shard runs, the queues of traces waiting for a pipeline's concurrency slot,
// and a bounded store of recent traces with their logs. Lives on its shard; no
// locks.
//
// Traces go through the dispatch backend (core/dispatch.h): admit() hands the
// admission to the shard's trace_queue; the engine's consumer takes admitted
// traces (its own, or redeliveries of traces a dead owner held) up to
// in_flight_max at a time, runs them, and acknowledges each with its end record.
//
// A trace keeps the compiled flow it was admitted with until it ends: an update
// or a delete never changes what a queued or running trace runs (SPEC §4). Its
// slot is accounted to the deployment it was admitted into, so a pipeline deleted
// and deployed again under the same name starts with clean counters.
//
// Nothing runs or is acknowledged before its admission is durable (SPEC §6).
// With a WAL, each completed top-level node is journaled as it happens
// (flows/journal.h); the admission and the end are the backend's records. At
// start, the pipelines are installed first (so the API never answers 404 for a
// configured pipeline), then replay() feeds the engine the log and
// resume_recovered() makes the finished traces queryable; the unfinished ones
// come back from the backend as redeliveries and continue from their last
// durable node. Until then admissions answer unavailable. A redelivered trace
// whose pipeline (or trigger) is not deployed waits, pending, until it is
// deployed or an operator discards it.

#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/arena.h"
#include "core/dispatch.h"
#include "core/json.h"
#include "core/trace_id.h"
#include "core/wal.h"
#include "flows/circuit.h"
#include "flows/executor.h"
#include "flows/flow.h"
#include "flows/idempotency.h"
#include "flows/journal.h"
#include "flows/schedule.h"
#include "flows/watcher.h"
#include "io/cancel.h"
#include "io/event.h"
#include "io/gate.h"

namespace xerv::flows {

using core::pipeline_state;
using core::parse_pipeline_state;
using core::to_string;

// Admissions that must run on another shard (an idempotency key's owner), for
// std::enqueue: the control plane does them (it holds every shard's engine).
class admission_router {
 public:
  virtual ~admission_router() = default;
  // Admits on the owner of `key` and completes once durable: the trace (a key
  // seen before: the trace it started), or why not.
  virtual io::task<enqueued> admit_keyed(std::string pipeline, std::string trigger, core::value input,
                                         std::string key) = 0;
};

struct engine_options {
  unsigned shard = 0;
  unsigned shard_count = 1;
  size_t traces_kept_max = 10'000;         // finished traces kept per shard
  std::chrono::milliseconds trace_retention{3'600'000};
  size_t logs_per_trace_max = 1'000;
  size_t pending_max = 10'000;             // queued traces per pipeline per shard
  size_t in_flight_max = 100'000;          // traces taken from the backend and not ended, per shard
  circuit_options circuit;
  idempotency_options idempotency;
  circuit_reporter* circuit_judge = nullptr;  // decides for every shard; null: this shard decides alone
  admission_router* router = nullptr;         // std::enqueue's admissions; null: it fails
  core::trace_queue* queue = nullptr;      // the dispatch backend (required)
  core::wal* wal = nullptr;                // null: nodes are not journaled
  core::arena* arena = nullptr;            // null: values on the heap
};

enum class ack_state : uint8_t { waiting, durable, refused };

struct node_run {
  node_status status = node_status::pending;
  std::string port;
  uint64_t started_ms = 0;
  uint64_t duration_us = 0;
  uint32_t runs = 0;
};

struct pipeline;

// One trace as the API shows it.
struct trace_record {
  core::trace_id id;
  std::string pipeline;
  std::string version;
  std::string trigger;
  trace_status status = trace_status::pending;
  uint64_t created_ms = 0, started_ms = 0, finished_ms = 0;
  core::value input;
  core::value output;
  std::string error_node, error_code, error_message;
  std::map<std::string, node_run> nodes;
  std::vector<log_line> logs;
  size_t logs_dropped = 0;
  // Dispatch and journal bookkeeping.
  ack_state ack = ack_state::durable;
  core::dispatch_ticket admitted = 0, ended = 0;  // durability tickets of the admission and the end
  bool end_refused = false;        // the backend refused the end record: it runs again after a restart
  bool undelivered = false;        // admitted here, not yet taken back from the backend
  size_t logs_journaled = 0;       // lines already in a record
  bool recovered = false;
  std::string idempotency_key;      // the key it was admitted with, if any
  uint64_t cron = 0;                // started by a cron fire of this shard: the trigger's generation (overlap counts it)
  bool queued = false;              // from a queue trigger, not started yet: counted in its depth
  uint64_t circuit_generation = 0;  // the breaker's decision it was admitted under
  bool circuit_trial = false;       // admitted while the breaker was half-open
  std::shared_ptr<replay_map> replay;  // recovery: top-level nodes already done
  // Flows with a std::wait: the completed top-level nodes with their outputs
  // (replayed ones included), for the suspended record.
  std::vector<node_record> done;
  std::string hook_id;  // suspended: the hook that resumes it
  // Until the trace ends: the version it runs on, the trigger that fired, and the
  // deployment whose slot or queue it holds (gone once that pipeline is deleted).
  std::shared_ptr<const compiled_flow> flow;
  uint32_t trigger_vertex = no_index;
  std::weak_ptr<flows::pipeline> owner;
  std::string waiting_for;  // recovered, pending: why it cannot resume yet
  // Who waits for the end (sync webhooks, wait:true) or for new log lines (SSE).
  std::vector<std::coroutine_handle<>> waiters;

  bool finished() const { return status != trace_status::pending && status != trace_status::running; }
  void wake_all();
};

// One deployment of a pipeline name: updates replace its flow; a delete ends it.
struct pipeline {
  std::shared_ptr<const compiled_flow> flow;
  uint64_t revision = 0;  // the control plane's: one more per deploy
  pipeline_state state = pipeline_state::running;
  uint64_t deployed_ms = 0;
  uint64_t started = 0, completed = 0, failed = 0;  // this shard's counters
  uint32_t active = 0;
  uint32_t undelivered = 0;  // admitted here, still in the backend's queue
  circuit breaker;           // kept across updates; a deleted pipeline's goes with it
  std::deque<std::shared_ptr<trace_record>> pending;
  std::vector<std::string> disabled;  // triggers switched off (SPEC §3), sorted
  // Per trigger of `flow`, in its order: this shard's admissions, the last one's
  // time, and whether it is switched off (kept by id across updates).
  struct trigger_counts {
    uint64_t fires = 0, last_ms = 0;
    uint32_t queued = 0;  // queue triggers: admitted here and not started yet (the queue's depth)
    bool off = false;
  };
  std::vector<trigger_counts> triggers;
};

enum class admit_error {
  none,
  pipeline_not_found,
  trigger_not_found,
  trigger_disabled,
  queue_full,  // a queue trigger's capacity
  not_running,
  circuit_open,
  pending_full,  // the pipeline's pending queue (XERV_PENDING_MAX)
  unavailable
};

struct admission {
  admit_error error = admit_error::none;
  // The pipeline state for not_running; seconds to wait for circuit_open; the
  // cap for pending_full and queue_full.
  std::string detail;
  std::shared_ptr<trace_record> trace;  // null for a replayed key whose trace left the store
  // The idempotency key was seen: `replayed_id` is the trace it started, and
  // nothing new was admitted.
  bool replayed = false;
  core::trace_id replayed_id;
};

class engine final : public trace_services {
 public:
  explicit engine(engine_options opts);
  ~engine();
  engine(const engine&) = delete;
  engine& operator=(const engine&) = delete;

  const engine_options& options() const { return _opts; }
  // Journals into `wal` and keeps values in `arena` from now on (before replay()).
  // Idempotency keys recorded in a segment the WAL retires are written again.
  void attach_storage(core::wal* wal, core::arena* arena);

  // Installs (or updates: in-flight and queued traces finish on their version)
  // a compiled flow at `revision` (a new pipeline starts in `state`), and
  // resumes the redelivered traces that waited for it. Returns the pipeline's
  // state on this shard.
  pipeline_state install(std::shared_ptr<const compiled_flow> flow, uint64_t revision, pipeline_state state,
                         uint64_t deployed_ms);
  bool remove(std::string_view name);
  // The triggers of `name` that are switched off from now on (the others are on).
  void set_disabled(std::string_view name, const std::vector<std::string>& disabled);
  // Returns the state this shard is in afterwards (a drain with traces in flight
  // stays draining until they end), or nullopt for an unknown pipeline.
  std::optional<pipeline_state> set_state(std::string_view name, pipeline_state state);
  // Valid until the caller suspends.
  const pipeline* find(std::string_view name) const;
  const std::map<std::string, std::shared_ptr<pipeline>, std::less<>>& pipelines() const { return _pipelines; }
  // A webhook trigger bound to this method and exact path: {pipeline, trigger}.
  std::optional<std::pair<std::string, std::string>> find_webhook(std::string_view method, std::string_view path) const;
  // The queue trigger consuming queue `name`: {pipeline, trigger}.
  std::optional<std::pair<std::string, std::string>> find_queue(std::string_view name) const;

  // The circuit breaker (flows/circuit.h). This shard's outcomes of `name` in
  // the window; the deciding shard's next decision after `e`; a decision
  // applied here.
  circuit_counts circuit_window(std::string_view name, uint64_t now_ms) const;
  std::optional<circuit_decision> circuit_decide(const circuit_event& e, circuit_counts summed, uint64_t now_ms);
  void apply_circuit(std::string_view name, const circuit_decision& d);

  // Admits a trace on this shard; it starts now or waits in the pipeline's queue.
  // With an idempotency key (call on idempotency_owner's shard), a key seen
  // within its ttl answers the trace it started instead.
  admission admit(std::string_view pipeline_name, std::string_view trigger_id, core::value input,
                  std::string_view idempotency_key = {}, const cron_fire* fire = nullptr);
  size_t idempotency_keys() const { return _idempotency.size(); }
  // The cron triggers this shard runs (trigger_owner): their state, for the API.
  std::optional<cron_table::view> cron_state(std::string_view pipeline, std::string_view trigger) const {
    return _cron.find(pipeline, trigger);
  }
  // The filesystem triggers this shard watches (trigger_owner): their state.
  const fs_watch::status* watch_state(std::string_view pipeline, std::string_view trigger) const;
  // Completes when the start record of an admitted trace is durable (true), or
  // when the WAL failed to write it (false: the trace will not run).
  io::task<bool> wait_acknowledged(std::shared_ptr<trace_record> t);
  // Completes when the trace has finished; false when its end record could not
  // be made durable (the trace runs again after a restart).
  io::task<bool> wait_finished(std::shared_ptr<trace_record> t);
  // Completes at the next change of the trace (a log line, a node, the end).
  io::task<void> wait_change(std::shared_ptr<trace_record> t);

  // A trace in the store (running, queued, or finished and kept). Suspended
  // traces are not: they keep only a small entry, and lookup_trace() builds
  // them from their suspended record.
  std::shared_ptr<trace_record> find_trace(const core::trace_id& id) const;
  // find_trace(), or the suspended trace as its record shows it (a copy; its
  // summary when the record cannot be read).
  io::task<std::shared_ptr<trace_record>> lookup_trace(core::trace_id id);
  // This shard's traces (suspended ones included), newest first, filtered:
  // how many match, and the first `max` of them (a suspended one as a summary:
  // no input, nodes or logs).
  struct trace_page {
    size_t total = 0;
    std::vector<std::shared_ptr<trace_record>> newest;
  };
  trace_page list_traces(std::string_view pipeline, std::optional<trace_status> status, size_t max) const;

  // Recovery. expect_recovery() refuses admissions until resume_recovered()...
  void expect_recovery() { _recovery_pending = true; }
  bool recovering() const { return _recovery_pending; }
  // ...replay() takes every WAL record, oldest first (from wal::open)...
  void replay(const core::wal_record& r);
  // ...then the finished traces become queryable and the unfinished ones wait
  // (visible, pending) for the backend to deliver them again. Returns how many
  // are unfinished.
  size_t resume_recovered();
  // Unfinished traces found in the WAL at start (plus redeliveries of traces
  // it did not hold).
  size_t recovered_traces() const { return _recovered; }
  // Replayed unfinished traces the backend has not delivered back yet (while
  // the shard has room to take them): part of recovering, for /ready.
  bool redelivering() const { return !_recovering.empty() && _held < _opts.in_flight_max; }
  // Recovered traces waiting for their pipeline or trigger to be deployed.
  size_t waiting_traces() const { return _waiting_count; }
  // Ends waiting traces (all of `pipeline`'s, or the one `id` names) as failed
  // with code `discarded`; completes, with how many, once that is durable.
  io::task<size_t> discard_waiting(std::string pipeline, std::optional<core::trace_id> id);
  // After stop(): traces still unfinished will not finish in this process.
  bool stopped() const { return _shutdown.cancelled(); }

  // Suspensions (SPEC §5): traces of this shard waiting in a std::wait.
  struct suspension_info {
    core::trace_id id;
    std::string hook_id, pipeline, node;
    uint64_t created_ms = 0, expires_ms = 0;  // when it suspended; expires 0: never
    core::value metadata;
  };
  // How many there are (of one pipeline, or all), and the `max` oldest.
  struct suspension_page {
    size_t total = 0;
    std::vector<suspension_info> oldest;
  };
  suspension_page suspensions(std::string_view pipeline, size_t max) const;
  struct hook_traces {
    std::vector<core::trace_id> suspended;
    std::vector<core::trace_id> resumed;  // resumed (or expired) and still in the store
  };
  hook_traces find_hook(std::string_view hook) const;
  size_t suspended_count() const { return _suspended.size(); }
  enum class resume_error { none, not_found, not_suspended, unavailable };
  // std::enqueue from a trace of this shard (trace_services).
  io::task<enqueued> enqueue(std::string queue, core::value payload, std::string key) override;

  // Continues a suspended trace of this shard down `decision`'s port
  // (nodes::wait_decision) with `response_data` as the wait node's output.
  // Completes once the resume is durable; the trace runs on after that. One
  // resume (or the expiry) wins; the others get not_suspended.
  io::task<resume_error> resume_suspended(core::trace_id id, uint8_t decision, core::value response_data);

  // Stops admissions and taking, lets running traces finish for up to `grace`,
  // then stops the rest without an end record (they resume after a restart).
  io::task<void> stop(std::chrono::milliseconds grace = std::chrono::milliseconds(0));

 private:
  struct recovered_trace {
    std::shared_ptr<trace_record> trace;
    std::vector<node_record> nodes;
    std::optional<core::wal_location> suspended_at;  // replay: its run ended in this suspended record
    std::optional<suspended_record> suspension;
  };
  // All a suspended trace costs in memory (docs/durability.md, perf/RESULTS.md):
  // what the suspension list and a trace summary show, and where the record is.
  struct suspended_entry {
    suspension_info info;
    std::string version, trigger;
    uint64_t trace_created_ms = 0, started_ms = 0;
    uint8_t timeout_action = 1;
    core::wal_location at;  // the suspended record in this shard's WAL...
    std::string record;     // ...or its bytes, without a WAL
    bool resuming = false;  // a resume reads the record and admits it
  };
  using key_t = std::pair<uint64_t, uint64_t>;
  void suspend(trace_record& t, const compiled_flow& flow, suspension s);
  void add_suspension(suspended_entry e);
  std::optional<suspended_entry> take_suspension(key_t k);
  void index_hook(std::string_view hook, key_t k);
  void index_expiry(uint64_t expires_ms, key_t k);
  void unindex_hook(const trace_record& t);
  // The suspended record's bytes (read back from the WAL, or kept).
  io::task<io::result<std::string>> suspended_bytes(core::wal_location at, std::string kept);
  static std::shared_ptr<trace_record> summary(const suspended_entry& e);
  io::task<void> expire(core::trace_id id, uint8_t action);
  // A resumed trace from its continuation; nullopt when it does not decode.
  static std::optional<recovered_trace> continued(core::admission_record a);
  static recovered_trace continued(suspended_record sr, uint8_t decision, std::string response_data);
  io::task<void> expiry_loop();
  io::task<void> relog_suspensions(uint64_t segment);
  io::task<void> cron_loop();
  void fire_cron(const cron_fire& f, uint64_t now_ms);
  void cron_ended(const trace_record& t);
  // Starts or stops this shard's watches of `p`'s filesystem triggers to match
  // its flow and switches (none before recovery ends or after stop()).
  void sync_watches(const pipeline& p);
  void stop_watches(std::string_view pipeline);
  bool fire_fs(const std::string& pipeline, const std::string& trigger, const fs_fire& f, const io::path_info* info);
  io::task<void> take_loop();
  // `admitted`: the trace admit() just made, when the caller is admit().
  void take_ready(const std::shared_ptr<trace_record>& admitted);
  void deliver(core::delivery d, const std::shared_ptr<trace_record>& admitted);
  void redelivered(core::delivery d);
  void released();  // a taken trace ended: room for another
  void start(pipeline& p, std::shared_ptr<trace_record> t);
  void dequeued(trace_record& t);  // a queue trigger's trace starts (or never will): out of its depth
  void start_or_queue(const std::shared_ptr<pipeline>& p, std::shared_ptr<trace_record> t);
  void start_next(pipeline& p);
  io::task<void> run(std::shared_ptr<trace_record> t);
  void finished(trace_record& t);
  // Ends a trace that never ran (or waited): journaled, woken, kept in the store.
  void end_unrun(trace_record& t, std::string code, std::string message);
  void journal_end(trace_record& t);
  // Counts a trace's outcome in its pipeline's breaker; the event to report, if any.
  std::optional<circuit_event> circuit_outcome(trace_record& t, trace_status status, uint64_t now_ms);
  io::task<void> half_open_gauge(std::string name, uint64_t generation, uint64_t open_ms);
  // A recovered trace continues on `p` when `p` has its trigger; else it waits.
  bool resume(const std::shared_ptr<pipeline>& p, recovered_trace& rt);
  void evict();
  uint32_t share(const pipeline& p) const;

  engine_options _opts;
  std::unique_ptr<core::trace_consumer> _consumer;
  io::gate _taking;
  io::cancel_source _stop_taking;
  io::event _room;
  size_t _held = 0;  // taken from the backend and not ended
  std::map<std::string, std::shared_ptr<pipeline>, std::less<>> _pipelines;
  std::map<std::pair<uint64_t, uint64_t>, std::shared_ptr<trace_record>> _traces;  // by id: time order
  std::deque<core::trace_id> _finished;  // finished traces in the store, in the order they finished
  io::gate _running;
  io::gate _timers;  // breaker gauge updates; end at stop()
  io::cancel_source _shutdown;
  // Unfinished traces replayed from the WAL, until the backend delivers them.
  std::map<std::pair<uint64_t, uint64_t>, recovered_trace> _recovering;
  // Recovered traces whose pipeline is not deployed, by pipeline name.
  std::map<std::string, std::vector<recovered_trace>, std::less<>> _waiting;
  size_t _waiting_count = 0;
  bool _recovery_pending = false;
  size_t _recovered = 0;
  idempotency_table _idempotency;
  std::map<key_t, suspended_entry> _suspended;
  // Hash of the hook id → suspended (or resumed, in the store) trace: the id
  // itself is in the entry or the trace (no second copy per suspension).
  std::multimap<size_t, key_t> _hooks;
  std::multimap<uint64_t, key_t> _expiries;               // expiry → suspended trace
  std::map<key_t, recovered_trace> _resumed;              // admitted by a resume, until delivered
  bool _relogging = false;                                // relog_suspensions() runs
  cron_table _cron;
  io::cancel_source* _cron_sleep = nullptr;  // the cron loop's sleep: a deploy or stop() ends it early
  std::map<std::string, std::shared_ptr<fs_watch>, std::less<>> _watches;  // by "pipeline.trigger"
  uint64_t _suspension_adds = 0;
  std::pair<uint64_t, uint64_t> _relog_idle{0, ~0ull};    // a segment with none, at _suspension_adds
  std::string _scratch;  // record encoding buffer
};

}  // namespace xerv::flows
