#include "flows/schedule.h"

#include "core/wal.h"
#include "flows/idempotency.h"
#include "flows/journal.h"
#include "io/log.h"

namespace xerv::flows {

// The same stable hash as idempotency keys: a trigger's shard survives restarts.
unsigned cron_owner(std::string_view pipeline, std::string_view trigger, unsigned shards) {
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
  bool same_schedule = !fresh && e.next_s && e.schedule == schedule;
  e.flow = flow;
  e.cron = t.cron.get();
  e.schedule = std::move(schedule);
  e.deployed_s = int64_t(deployed_ms / 1000);
  // An update keeps the place of an unchanged schedule; a new or changed one
  // starts after its last fire or the deploy, whichever is later. At start-up
  // (no WAL yet) the log's records come next, and end_replay() decides.
  if (!e.last_s && wal) mark(e, wal);
  if (!same_schedule) schedule_from(e, std::max(e.last_s, e.deployed_s));
}

void cron_table::mark(entry& e, core::wal* wal) {
  e.last_s = e.deployed_s;
  e.previous_s = e.journaled_s;
  e.journaled_s = e.last_s;
  e.last_id = {};
  if (wal) (void)append(*wal, e, false);  // refused: after a restart it counts from that deploy
}

void cron_table::drop_uninstalled(std::string_view pipeline) {
  std::erase_if(_triggers, [&](const auto& kv) { return kv.second.pipeline == pipeline && !kv.second.flow; });
}

void cron_table::remove(std::string_view pipeline) {
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
  out.push_back({e.pipeline, e.trigger, instant_s, missed});
  ++e.running;
  ++e.fires;
  e.last_s = std::max(e.last_s, instant_s);
  e.last_fired_ms = now_ms;
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
    std::vector<int64_t> missed, on_time;
    size_t scanned = 0;
    while (e.next_s && uint64_t(*e.next_s) * 1000 <= now_ms && scanned++ < scan_max) {
      (*e.next_s < late_s ? missed : on_time).push_back(*e.next_s);
      schedule_from(e, *e.next_s);
    }
    if (scanned > scan_max) {  // down for very long with a fast schedule: the rest is dropped
      XLOG(warn, "cron trigger %s.%s: more than %zu instants passed; the older ones are skipped", e.pipeline.c_str(),
           e.trigger.c_str(), scan_max);
      schedule_from(e, int64_t(now_ms / 1000) - 1);
    }
    size_t keep = 0;
    switch (e.cron->missed) {
      case cron_missed::skip: keep = 0; break;
      case cron_missed::run_once: keep = std::min<size_t>(1, missed.size()); break;
      case cron_missed::run_all: keep = std::min(_opts.catch_up_max, missed.size()); break;
    }
    e.skipped += missed.size() - keep;
    for (size_t i = missed.size() - keep; i < missed.size(); ++i) fire(e, missed[i], true, now_ms, out);
    for (int64_t s : on_time) fire(e, s, false, now_ms, out);
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

void cron_table::ended(std::string_view pipeline, std::string_view trigger) {
  if (entry* e = find_entry(pipeline, trigger); e && e->running > 0) --e->running;
}

void cron_table::journal(const cron_fire& f, const core::trace_id& id, core::wal* wal) {
  entry* e = find_entry(f.pipeline, f.trigger);
  if (!e) return;
  e->previous_s = e->journaled_s;
  e->journaled_s = f.scheduled_s;
  e->last_id = id;
  if (wal) (void)append(*wal, *e, false);  // refused: the admission after it is refused too
}

bool cron_table::append(core::wal& wal, entry& e, bool relogged) {
  encode(_scratch, cron_record{e.last_id, e.journaled_s, e.previous_s, e.pipeline, e.trigger, relogged});
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
  e.last_s = e.journaled_s = rec->scheduled_s;
  e.previous_s = rec->previous_s;
  e.last_id = rec->id;
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
  int64_t fired = e.last_id == core::trace_id{} && !e.fires ? 0 : e.last_s;  // (a mark is no fire)
  return view{fired, e.last_fired_ms, e.next_s, e.fires, e.skipped, e.running};
}

}  // namespace xerv::flows
