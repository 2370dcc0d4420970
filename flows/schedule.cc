#include "flows/schedule.h"

#include <deque>

#include "core/wal.h"
#include "flows/idempotency.h"
#include "flows/journal.h"
#include "io/log.h"

namespace xerv::flows {

// The same stable hash as idempotency keys: a trigger's shard survives restarts
// (with the same number of shards).
unsigned trigger_owner(std::string_view pipeline, std::string_view trigger, unsigned shards) {
  return idempotency_owner(pipeline, trigger, shards);
}

std::string cron_table::key(std::string_view pipeline, std::string_view trigger) {
  std::string k(pipeline);
  k += '\0';
  k += trigger;
  return k;
}

cron_table::entry* cron_table::find_entry(std::string_view pipeline, std::string_view trigger) {
  auto it = _triggers.find(key(pipeline, trigger));
  return it == _triggers.end() ? nullptr : &it->second;
}

void cron_table::add(const std::shared_ptr<const compiled_flow>& flow, const trigger_def& t, uint64_t deployed_ms,
                     core::wal* wal) {
  auto [it, fresh] = _triggers.try_emplace(key(flow->name, t.id));
  entry& e = it->second;
  e.pipeline = flow->name;
  e.trigger = t.id;
  std::string schedule = t.cron->schedule.text() + '\0' + t.cron->zone.name();
  bool same_schedule = e.next_s && e.schedule == schedule;
  if (!e.generation) e.generation = ++_generations;
  e.flow = flow;
  e.cron = t.cron.get();
  e.schedule = std::move(schedule);
  e.deployed_s = int64_t(deployed_ms / 1000);
  e.queued_s.reset();  // (the overlap policy may have changed)
  if (same_schedule) return;  // an update that keeps the schedule keeps its place
  // New, or changed: from its last fire or this deploy, whichever is later.
  // At start-up (no WAL yet) the log's records come next: end_replay() decides.
  if (wal) mark(e, std::max(e.last_s, e.deployed_s), wal);
  schedule_from(e, std::max(e.last_s, e.deployed_s));
}

void cron_table::mark(entry& e, int64_t from_s, core::wal* wal) {
  e.last_s = from_s;
  e.previous_s = e.journaled_s;
  e.journaled_s = from_s;
  e.journaled_schedule = e.schedule;
  e.last_id = {};
  if (wal) (void)append(*wal, e, false);  // refused: after a restart it counts from an earlier point
}

void cron_table::drop_uninstalled(std::string_view pipeline) {
  std::erase_if(_triggers, [&](const auto& kv) { return kv.second.pipeline == pipeline && !kv.second.flow; });
}

void cron_table::remove(std::string_view pipeline, core::wal* wal) {
  for (auto& [k, e] : _triggers)
    if (e.pipeline == pipeline && wal && e.journaled_s) {
      e.schedule.clear();
      mark(e, 0, wal);  // a tombstone: its records no longer count
    }
  std::erase_if(_triggers, [&](const auto& kv) { return kv.second.pipeline == pipeline; });
}

void cron_table::schedule_from(entry& e, int64_t after_s) { e.next_s = e.cron->schedule.next(after_s, e.cron->zone); }

void cron_table::fire(entry& e, int64_t instant_s, bool missed, uint64_t now_ms, std::vector<cron_fire>& out) {
  const cron_overlap overlap = e.cron->overlap;
  if (e.running > 0 && overlap == cron_overlap::skip) {
    ++e.skipped;
    return;
  }
  if (e.running > 0 && overlap == cron_overlap::queue) {
    if (e.queued_s) ++e.skipped;  // one waits at most: the newest
    e.queued_s = instant_s;
    return;
  }
  out.push_back({e.pipeline, e.trigger, instant_s, missed, e.generation});
  ++e.running;
  ++e.fires;
  e.last_s = std::max(e.last_s, instant_s);
  e.last_fired_ms = now_ms;
}

std::pair<std::vector<int64_t>, size_t> cron_table::newest(const entry& e, int64_t lo, int64_t hi, size_t n) const {
  auto next = [&](int64_t after) { return e.cron->schedule.next(after, e.cron->zone); };
  size_t count = 0;
  for (auto s = next(lo - 1); s && *s < hi && count < count_max; s = next(*s)) ++count;
  if (n == 0) return {{}, count};
  // Back from `hi` in doubling steps until the step holds `n` of them: a
  // fast schedule missed for days costs n calls, not one per instant.
  for (int64_t d = 1;; d *= 2) {
    int64_t from = std::max(lo - 1, hi - 1 - d);
    std::deque<int64_t> got;
    for (auto s = next(from); s && *s < hi; s = next(*s)) {
      got.push_back(*s);
      if (got.size() > n) got.pop_front();
    }
    if (got.size() >= n || from == lo - 1) return {std::vector<int64_t>(got.begin(), got.end()), std::max(count, got.size())};
  }
}

std::vector<cron_fire> cron_table::due(uint64_t now_ms) {
  std::vector<cron_fire> out;
  // An instant before this one is more than late_ms_max old: missed.
  int64_t late_s = int64_t((now_ms - std::min(now_ms, _opts.late_ms_max) + 999) / 1000);
  for (auto& [k, e] : _triggers) {
    if (!e.flow) continue;
    if (e.queued_s && e.running == 0) {
      int64_t q = *e.queued_s;
      e.queued_s.reset();
      fire(e, q, false, now_ms, out);
    }
    if (e.next_s && *e.next_s < late_s) {
      size_t keep = 0;
      switch (e.cron->missed) {
        case cron_missed::skip: keep = 0; break;
        case cron_missed::run_once: keep = 1; break;
        case cron_missed::run_all: keep = _opts.catch_up_max; break;
      }
      auto [kept, count] = newest(e, *e.next_s, late_s, keep);
      e.skipped += count - kept.size();
      for (int64_t s : kept) fire(e, s, true, now_ms, out);
      schedule_from(e, late_s - 1);
    }
    while (e.next_s && uint64_t(*e.next_s) * 1000 <= now_ms) {
      fire(e, *e.next_s, false, now_ms, out);
      schedule_from(e, *e.next_s);
    }
  }
  return out;
}

std::optional<uint64_t> cron_table::next_ms() const {
  std::optional<uint64_t> best;
  for (const auto& [k, e] : _triggers) {
    if (!e.flow) continue;
    if (e.queued_s && e.running == 0) return 0;
    if (e.next_s && (!best || uint64_t(*e.next_s) * 1000 < *best)) best = uint64_t(*e.next_s) * 1000;
  }
  return best;
}

void cron_table::ended(std::string_view pipeline, std::string_view trigger, uint64_t generation) {
  entry* e = find_entry(pipeline, trigger);
  if (e && e->generation == generation && e->running > 0) --e->running;
}

uint64_t cron_table::started(std::string_view pipeline, std::string_view trigger) {
  entry* e = find_entry(pipeline, trigger);
  if (!e || !e->flow) return 0;
  ++e->running;
  return e->generation;
}

void cron_table::journal(const cron_fire& f, const core::trace_id& id, core::wal* wal) {
  entry* e = find_entry(f.pipeline, f.trigger);
  if (!e || e->generation != f.generation) return;
  e->previous_s = e->journaled_s;
  e->journaled_s = std::max(e->journaled_s, f.scheduled_s);
  e->journaled_schedule = e->schedule;
  e->last_id = id;
  e->fired_s = std::max(e->fired_s, f.scheduled_s);
  if (wal) (void)append(*wal, *e, false);  // refused: the admission after it is refused too
}

void cron_table::refused(const cron_fire& f, core::wal* wal) {
  entry* e = find_entry(f.pipeline, f.trigger);
  if (!e || e->generation != f.generation) return;
  if (e->running > 0) --e->running;
  if (e->fires > 0) --e->fires;
  ++e->skipped;
  if (f.scheduled_s > e->journaled_s) mark(*e, std::max(e->last_s, f.scheduled_s), wal);
}

bool cron_table::append(core::wal& wal, entry& e, bool relogged) {
  encode(_scratch,
         cron_record{e.last_id, e.journaled_s, e.previous_s, e.pipeline, e.trigger, relogged, e.journaled_schedule});
  if (!wal.append(uint32_t(journal_type::cron), _scratch)) return false;
  e.segment = wal.last_location().segment;
  return true;
}

bool cron_table::replay(const core::wal_record& r) {
  auto rec = decode_cron(r.payload);
  if (!rec) return false;
  auto [it, fresh] = _triggers.try_emplace(key(rec->pipeline, rec->trigger));
  entry& e = it->second;
  if (fresh) {
    e.pipeline = rec->pipeline;
    e.trigger = rec->trigger;
  }
  e.last_s = e.journaled_s = rec->scheduled_s;  // (a delete's tombstone: 0, unknown)
  e.previous_s = rec->previous_s;
  e.last_id = rec->id;
  if (!(rec->id == core::trace_id{})) e.fired_s = rec->scheduled_s;
  else if (!rec->scheduled_s) e.fired_s = 0;  // a delete
  e.journaled_schedule = std::move(rec->schedule);
  e.segment = r.segment;
  e.unconfirmed = !rec->relogged;
  return true;
}

bool cron_table::relog(uint64_t segment, core::wal& wal) {
  bool all = true;
  for (auto& [k, e] : _triggers)
    if (e.segment == segment && e.journaled_s) all = append(wal, e, true) && all;
  return all;
}

std::optional<cron_table::view> cron_table::find(std::string_view pipeline, std::string_view trigger) const {
  auto it = _triggers.find(key(pipeline, trigger));
  if (it == _triggers.end() || !it->second.flow) return std::nullopt;
  const entry& e = it->second;
  return view{e.fired_s, e.last_fired_ms, e.next_s, e.fires, e.skipped, e.running};
}

}  // namespace xerv::flows
