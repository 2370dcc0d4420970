#pragma once
// The cron triggers one shard runs (SPEC §3): each trigger belongs to one
// shard (trigger_owner, a hash of its global id), which fires it. Lives in the
// engine of that shard; no locks. Pure bookkeeping: the engine's loop asks
// due(now) and admits a trace for each fire, journaling it first; a fake clock
// drives it in the unit tests.
//
// Policies. An instant is on time when it is at most `late_ms_max` old at due();
// older ones were missed (xerv was down, or the shard stalled): `missed: skip`
// drops them, `run_once` fires one trace for all of them (the newest), `run_all`
// fires each (at most `catch_up_max`). `overlap` decides for an instant that
// comes while the trigger's previous trace still runs: `allow` fires, `skip`
// drops it, `queue` keeps one (the newest) and fires it when the running one
// ends.
//
// Durable: a fire's record (journal_type::cron, with the instant it fired for
// and the one before) goes just before its admission, so a durable trace
// implies the trigger's last fire; recovery keeps the newest record per
// trigger and undoes one whose admission is missing (torn tail). Records are
// written again when their segment retires (as idempotency keys are), so the
// last fire outlives trace retention. Fires, refusals (paused, disabled) and
// deploys are journaled; an instant dropped by `overlap: skip` is not, and
// counts as missed after a restart. A trace suspended in a std::wait is not
// running for `overlap`, nor is its continuation.

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/trace_id.h"
#include "flows/flow.h"

namespace xerv::core {
class wal;
struct wal_record;
}  // namespace xerv::core

namespace xerv::flows {

// The shard that runs trigger `trigger` of `pipeline` (a cron schedule, a
// filesystem watch), of `shards`.
unsigned trigger_owner(std::string_view pipeline, std::string_view trigger, unsigned shards);

struct cron_fire {
  std::string pipeline, trigger;
  int64_t scheduled_s = 0;  // the instant it fires for
  bool missed = false;      // fired after the fact, by the missed policy
  uint64_t generation = 0;  // of the trigger's entry: a redeployed pipeline's traces are not its
};

struct cron_options {
  uint64_t late_ms_max = 1000;
  size_t catch_up_max = 1000;  // run_all: fires for one trigger at one due()
};

class cron_table {
 public:
  explicit cron_table(cron_options opts = {}) : _opts(opts) {}

  // A deploy (or update) of `flow`, deployed at `deployed_ms`: its cron
  // triggers that `owns` are scheduled from their last fire, or (new, or with
  // a changed schedule) from the deploy, which is journaled into `wal` so
  // that after a restart missed instants count from it. With no `wal` yet (at
  // start-up) end_replay() decides. Triggers it no longer has are dropped.
  template <class Owns>
  void install(const std::shared_ptr<const compiled_flow>& flow, uint64_t deployed_ms, Owns owns, core::wal* wal) {
    for (auto& [k, e] : _triggers)
      if (e.flow && e.flow->name == flow->name) e.flow.reset();
    for (const auto& t : flow->triggers)
      if (t.cron && owns(flow->name, t.id)) add(flow, t, deployed_ms, wal);
    drop_uninstalled(flow->name);
  }
  // The pipeline is deleted: its triggers are forgotten, durably (so a later
  // deploy of the name starts afresh even across a restart).
  void remove(std::string_view pipeline, core::wal* wal);
  bool empty() const { return _triggers.empty(); }

  // The fires due at `now_ms`, oldest first, per each trigger's policies. The
  // caller admits each, journaling it first (journal()), or reports it
  // refused().
  std::vector<cron_fire> due(uint64_t now_ms);
  // The earliest instant (Unix ms) a due() may have something at.
  std::optional<uint64_t> next_ms() const;
  // A trace of generation `generation` of the trigger has ended (overlap).
  void ended(std::string_view pipeline, std::string_view trigger, uint64_t generation);
  // A trace of the trigger runs that no fire of this process started (one
  // recovered after a restart): its generation, 0 when there is no such trigger.
  uint64_t started(std::string_view pipeline, std::string_view trigger);

  // Journal. Appends the fire's record to `wal` (if any) before its admission.
  void journal(const cron_fire& f, const core::trace_id& id, core::wal* wal);
  // The fire was not admitted (paused or disabled, full): skipped, and
  // journaled as handled so that a restart does not catch it up.
  void refused(const cron_fire& f, core::wal* wal);
  // Recovery: a journal_type::cron record (false: it does not decode)...
  bool replay(const core::wal_record& r);
  // ...then, after the log: a fire whose admission is not in it is undone; a
  // trigger with no record, or whose schedule changed while xerv was down,
  // starts from its deploy (journaled into `wal`).
  template <class Admitted>
  void end_replay(Admitted admitted, core::wal* wal) {
    for (auto& [k, e] : _triggers)
      if (e.unconfirmed && !(e.last_id == core::trace_id{}) && !admitted(e.last_id))
        e.last_s = e.journaled_s = e.fired_s = e.previous_s;
    // (A record whose pipeline is not installed now belongs to one that is gone.)
    std::erase_if(_triggers, [](const auto& kv) { return !kv.second.flow; });
    for (auto& [k, e] : _triggers) {
      e.unconfirmed = false;
      if (!e.last_s || e.journaled_schedule != e.schedule) mark(e, e.deployed_s, wal);
      schedule_from(e, e.last_s);
    }
  }
  // The WAL is about to delete `segment`: records there are written again.
  bool relog(uint64_t segment, core::wal& wal);

  struct view {
    int64_t last_s = 0;          // the last instant fired for (0: none)
    uint64_t last_fired_ms = 0;  // when (this process)
    std::optional<int64_t> next_s;
    uint64_t fires = 0, skipped = 0;
    uint32_t running = 0;
  };
  std::optional<view> find(std::string_view pipeline, std::string_view trigger) const;

 private:
  struct entry {
    std::shared_ptr<const compiled_flow> flow;  // null: known from the journal only
    const cron_trigger* cron = nullptr;         // in `flow`
    std::string schedule;                       // its text and zone: an update that keeps them keeps its place
    uint64_t generation = 0;
    std::string pipeline, trigger;
    int64_t deployed_s = 0;
    int64_t last_s = 0;                  // the last instant handled (fired or refused), or the deploy; 0: unknown
    std::optional<int64_t> next_s;       // the first instant after the last one handled
    uint32_t running = 0;
    std::optional<int64_t> queued_s;     // overlap: queue
    uint64_t fires = 0, skipped = 0, last_fired_ms = 0;
    // Journal bookkeeping: the newest record's instant, trace (none for a
    // deploy's mark or a refusal), the instant before it, the schedule it was
    // written under, and where it is.
    int64_t journaled_s = 0, previous_s = 0;
    int64_t fired_s = 0;  // the newest instant a trace was started for
    core::trace_id last_id;
    std::string journaled_schedule;
    uint64_t segment = 0;
    bool unconfirmed = false;  // recovery: its newest record is a first one
  };
  static std::string key(std::string_view pipeline, std::string_view trigger);
  void add(const std::shared_ptr<const compiled_flow>& flow, const trigger_def& t, uint64_t deployed_ms,
           core::wal* wal);
  // Handled through `from_s` (a deploy, a refusal): journaled without a trace.
  void mark(entry& e, int64_t from_s, core::wal* wal);
  void drop_uninstalled(std::string_view pipeline);
  void schedule_from(entry& e, int64_t after_s);
  void fire(entry& e, int64_t instant_s, bool missed, uint64_t now_ms, std::vector<cron_fire>& out);
  // Up to `n` newest instants in [lo, hi), oldest first, and how many there
  // are (counted up to count_max).
  std::pair<std::vector<int64_t>, size_t> newest(const entry& e, int64_t lo, int64_t hi, size_t n) const;
  entry* find_entry(std::string_view pipeline, std::string_view trigger);
  bool append(core::wal& wal, entry& e, bool relogged);
  static constexpr size_t count_max = 1000;  // missed instants counted one by one per due()

  cron_options _opts;
  std::map<std::string, entry, std::less<>> _triggers;  // pipeline '\0' trigger
  uint64_t _generations = 0;
  std::string _scratch;
};

}  // namespace xerv::flows
