#pragma once
// The replicated state of the Raft dispatch backend (issue 13): what every node
// builds, identically, by applying committed log entries in log order (the
// "replicated state machine" of the dissertation, §2.1). It holds the traces
// admitted and not finished, with the node that owns each; a bounded window of
// finished traces; and the pipeline definitions with their states.
//
// An entry's data is a batch of commands (a leader proposes whatever arrived in
// one turn as one entry). Each command carries a request_ref, the node that
// proposed it and that node's request number, so the proposer learns the
// outcome when it applies the entry itself, whichever leader committed it.
// Commands are idempotent: a retried admission of a known trace, or a second
// finish, changes nothing (at-least-once delivery of commands, exactly one
// final status per trace).
//
// Pure and deterministic: no I/O, no clock; everything it decides (the owner
// of a reassigned trace, a pipeline's revision, a change's seq) is a function
// of the log.

#include <cstdint>
#include <deque>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "core/codec.h"
#include "core/dispatch.h"

namespace xerv::backends::raft {

struct request_ref {
  uint64_t origin = 0;  // the node id that proposed it
  uint64_t id = 0;      // its number there
  bool operator==(const request_ref&) const = default;
};

// Appending commands to an entry's data.
void add_admit(std::string& entry, request_ref r, uint64_t owner, uint32_t shard, std::string_view admission);
void add_finish(std::string& entry, request_ref r, std::string_view final_record);
// Every unfinished trace of `from` moves to one of `to` (the least loaded first).
void add_reassign(std::string& entry, request_ref r, uint64_t from, std::span<const uint64_t> to);
void add_pipeline(std::string& entry, request_ref r, const core::pipeline_change& c, uint64_t expected_revision);
// Where node `id` listens for its peers (before it joins the group).
void add_address(std::string& entry, request_ref r, uint64_t id, std::string_view host, uint16_t port);

struct node_address {
  std::string host;
  uint16_t port = 0;
  bool operator==(const node_address&) const = default;
};

struct trace_state {
  std::string record;  // the encoded admission (core/dispatch.h)
  std::string pipeline;
  uint64_t owner = 0;  // node id
  uint32_t shard = 0;  // the shard it was admitted on (a hint for the owner)
  uint32_t attempt = 1;
  uint64_t order = 0;  // admission order (ascending across the whole log)
};

struct finished_trace {
  core::trace_id id;
  std::string pipeline;
  uint64_t created_ms = 0;
  uint32_t attempt = 1;
  uint64_t owner = 0;
  uint8_t status = 0;
  uint64_t finished_ms = 0;
};

struct stored_pipeline {
  std::string source;
  core::pipeline_state state = core::pipeline_state::running;
  std::vector<std::string> disabled;
  uint64_t revision = 0;
  bool persist = true;
};

class state_machine {
 public:
  // What applying an entry did, for the node that applies it.
  struct listener {
    virtual ~listener() = default;
    virtual void on_assigned(const core::trace_id& id, const trace_state& t) = 0;  // admitted, or moved to t.owner
    virtual void on_unassigned(const core::trace_id& id, uint64_t from) = 0;        // moved away from `from`
    virtual void on_finished(const core::trace_id& id, uint64_t owner, uint32_t shard, request_ref by) = 0;
    virtual void on_pipeline(const core::pipeline_change& c) = 0;
    virtual void on_address(uint64_t id, const node_address& a) = 0;
    // A command's outcome; `change` is set for a pipeline change that was applied.
    virtual void on_result(request_ref r, std::error_code e, const core::pipeline_change* change) = 0;
  };

  explicit state_machine(size_t finished_max = 65536) : _finished_max(finished_max) {}
  static constexpr size_t recent_changes_max = 4096;

  // False: the data does not decode (nothing after the bad command is applied).
  bool apply(std::string_view entry, listener& l);

  std::string snapshot() const;
  bool restore(std::string_view snap);

  using key = std::pair<uint64_t, uint64_t>;
  static key key_of(const core::trace_id& id) { return {id.hi, id.lo}; }
  const std::map<key, trace_state>& unfinished() const { return _traces; }
  const finished_trace* finished(const core::trace_id& id) const;
  const std::map<std::string, stored_pipeline, std::less<>>& pipelines() const { return _pipelines; }
  uint64_t seq() const { return _seq; }
  const std::map<uint64_t, node_address>& addresses() const { return _addresses; }
  // Unfinished traces per owner.
  uint64_t load(uint64_t owner) const;
  const std::map<uint64_t, uint64_t>& loads() const { return _load; }

 private:
  bool apply_admit(core::record_reader& in, request_ref r, listener& l);
  bool apply_finish(core::record_reader& in, request_ref r, listener& l);
  bool apply_reassign(core::record_reader& in, request_ref r, listener& l);
  bool apply_pipeline(core::record_reader& in, request_ref r, listener& l);
  bool apply_address(core::record_reader& in, request_ref r, listener& l);
  void count(uint64_t owner, int64_t d);
  void remember(finished_trace f);

  size_t _finished_max;
  std::map<key, trace_state> _traces;
  std::map<uint64_t, uint64_t> _load;
  std::deque<finished_trace> _finished_order;  // oldest first, at most _finished_max
  std::map<key, size_t> _finished_at;          // index into the window, offset by _finished_base
  uint64_t _finished_base = 0;                 // how many left the window
  std::map<std::string, stored_pipeline, std::less<>> _pipelines;
  // The last pipeline changes applied, by request: a proposer that sent one
  // again (it did not see it commit) must not deploy twice.
  std::deque<request_ref> _recent_changes;
  std::map<uint64_t, node_address> _addresses;
  uint64_t _seq = 0;
  uint64_t _order = 0;
};

}  // namespace xerv::backends::raft
