// The WAL on a fault-injecting, in-memory file system (STYLE §7, crash).
//
// wal_fault.random_crashes_*: random workloads (several clients, records from
// empty to over 1 MiB, small segments, every sync mode) crash at a random
// storage operation, by power cut or process kill; the WAL is then reopened on
// what the "disk" kept. Every record its mode promised (always: every wait that
// succeeded; batch: the same after a kill, and what a later fdatasync covered
// after a power cut; none and every mode: everything, after a clean close) must
// be replayed, byte for byte; the replay must be exactly the first records
// appended (none partial, none invented, order kept); new records continue the
// LSNs. Each iteration is one seed; a failure prints it and the command that
// replays it: wal_fault_tests --seed N (or XERV_FAULT_SEED=N), which also shows
// the WAL's log. XERV_FAULT_SECONDS sets the time budget.
//
// The other tests inject single errors: which failures the WAL retries (no
// space) and which fail it for good (a failed fdatasync or write).

#include <gtest/gtest.h>
#include <stdlib.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "core/metrics.h"
#include "core/wal.h"
#include "io/log.h"
#include "io/ops.h"
#include "io/when_all.h"
#include "tests/crash/fault_storage.h"
#include "tests/run_on.h"

using namespace xerv;
using namespace std::chrono_literals;
using xerv::testing::crash_kind;
using xerv::testing::fault_op;
using xerv::testing::fault_storage;
using xerv::testing::run_on;

namespace {

std::optional<uint64_t> g_replay_seed;
std::string g_argv0 = "wal_fault_tests";

const std::string k_dir = "/mem/wal/shard-0";

// ---------- one iteration ----------

struct config {
  uint64_t seed = 0;
  core::wal_sync sync = core::wal_sync::always;
  uint64_t segment_bytes = 0;
  bool prepare_next = false;
  std::chrono::milliseconds batch_delay{0};
  unsigned clients = 1;
  unsigned records_per_client = 1;
  uint64_t crash_op = 0;  // 0: after the workload
  crash_kind kind = crash_kind::power_cut;
  bool close_first = false;  // close the WAL, then crash

  std::string describe() const {
    char b[256];
    snprintf(b, sizeof b,
             "sync=%s segment_bytes=%llu prepare_next=%d batch_delay_ms=%lld clients=%u records_per_client=%u "
             "crash_op=%llu crash=%s close_first=%d",
             core::to_string(sync), static_cast<unsigned long long>(segment_bytes), int(prepare_next),
             static_cast<long long>(batch_delay.count()), clients, records_per_client,
             static_cast<unsigned long long>(crash_op), xerv::testing::to_string(kind), int(close_first));
    return b;
  }
};

config make_config(uint64_t seed) {
  std::mt19937_64 r(seed);
  config c;
  c.seed = seed;
  unsigned m = r() % 10;
  c.sync = m < 5 ? core::wal_sync::always : m < 8 ? core::wal_sync::batch : core::wal_sync::none;
  const uint64_t segments[] = {16u << 10, 64u << 10, 256u << 10, 2u << 20};
  c.segment_bytes = segments[r() % std::size(segments)];
  c.prepare_next = r() % 2;
  // 0: fdatasync after every write; an hour: only when a segment is sealed and
  // at close. Both keep the iteration deterministic (no timer decides).
  c.batch_delay = r() % 2 ? 0ms : std::chrono::milliseconds(3'600'000);
  c.clients = 1 + unsigned(r() % 4);
  c.records_per_client = 1 + unsigned(r() % 40);
  uint64_t records = uint64_t(c.clients) * c.records_per_client;
  c.crash_op = r() % 10 < 7 ? 1 + r() % (records + 8) : 0;
  c.kind = r() % 10 < 7 ? crash_kind::power_cut : crash_kind::process_kill;
  c.close_first = r() % 3 == 0;
  return c;
}

core::wal_options options_for(const config& c, core::wal_storage* st) {
  core::wal_options o;
  o.dir = k_dir;
  o.sync = c.sync;
  o.segment_bytes = c.segment_bytes;
  o.prepare_next = c.prepare_next;
  o.batch_delay = c.batch_delay;
  o.retry_delay = 1ms;
  o.storage = st;
  return o;
}

// Distinct, deterministic payloads: the LSN, then pseudo-random words.
std::string payload_for(uint64_t seed, uint64_t lsn, size_t size) {
  std::string p(size, '\0');
  uint64_t x = seed * 0x9e3779b97f4a7c15ull + lsn;
  for (size_t i = 0; i < size; i += 8) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    uint64_t word = i == 0 ? lsn : x;
    std::memcpy(p.data() + i, &word, std::min<size_t>(8, size - i));
  }
  return p;
}

// Empty to over 1 MiB (a record written in two writes), most of them small.
size_t pick_size(std::mt19937_64& r) {
  unsigned p = r() % 100;
  if (p < 35) return r() % 48;
  if (p < 65) return 48 + r() % 2000;
  if (p < 85) return 2000 + r() % 7000;
  if (p < 98) return 9000 + r() % 60000;
  return (1u << 20) - 20000 + r() % 300000;
}

struct appended {
  uint32_t type;
  uint64_t segment;
  std::string payload;
  bool acked = false;
  uint64_t acked_at_op = 0;  // storage operations done when the wait succeeded
};

struct run_state {
  core::wal* w = nullptr;
  fault_storage* st = nullptr;
  uint64_t seed = 0;
  std::vector<appended> log;  // index: LSN - 1
  uint64_t acked_max = 0;
  std::string unexpected;
};

// Appends groups of records, waits for the last of a group (or not), and notes
// which waits succeeded, until its count is done or the storage crashed.
io::task<void> client(run_state* s, uint64_t seed, unsigned count) {
  std::mt19937_64 r(seed);
  for (unsigned done = 0; done < count && !s->st->crashed();) {
    unsigned group = 1 + unsigned(r() % 4);
    uint64_t last = 0;
    for (unsigned g = 0; g < group && done < count; ++g, ++done) {
      uint64_t next = s->log.size() + 1;
      appended a{uint32_t(1 + r() % 3), s->w->active_segment(), payload_for(s->seed, next, pick_size(r))};
      uint64_t lsn = s->w->append(a.type, a.payload);
      if (lsn == 0) break;  // refused: the WAL failed after the crash
      if (lsn != next && s->unexpected.empty()) s->unexpected = "append returned LSN " + std::to_string(lsn) +
                                                                ", expected " + std::to_string(next);
      s->log.push_back(std::move(a));
      last = lsn;
    }
    if (last == 0) co_return;
    if (r() % 4 == 0) {  // no wait: the next group joins it
      co_await io::yield{};
      continue;
    }
    auto waiting = s->w->wait(last);
    io::result<void> ok = co_await std::move(waiting);
    if (!ok) {
      if (!s->st->crashed() && s->unexpected.empty())
        s->unexpected = "wait(" + std::to_string(last) + ") failed before any crash: " + ok.error().message();
      co_return;
    }
    appended& a = s->log[last - 1];
    a.acked = true;
    a.acked_at_op = s->st->ops();
    s->acked_max = std::max(s->acked_max, last);
    if (r() % 2) co_await io::yield{};
  }
}

struct rec {
  uint64_t lsn;
  uint32_t type;
  uint64_t segment;
  std::string payload;
};

struct opened {
  std::unique_ptr<core::wal> w;
  std::string error;
  std::vector<rec> records;
};

io::task<opened> open_wal(core::wal_options o) {
  opened out;
  std::vector<rec>* sink = &out.records;
  core::wal::replay_fn replay = [sink](const core::wal_record& r) {
    sink->push_back({r.lsn, r.type, r.segment, std::string(r.payload)});
  };
  auto opening = core::wal::open(std::move(o), std::move(replay));
  core::wal::open_result res = co_await std::move(opening);
  if (auto* e = std::get_if<std::string>(&res)) out.error = *e;
  else out.w = std::move(std::get<std::unique_ptr<core::wal>>(res));
  co_return out;
}

io::task<void> close_wal(core::wal& w) {
  auto closing = w.close();
  co_await std::move(closing);
}

std::string segment_path(uint64_t seq) { return k_dir + "/" + core::segment_file_name(seq); }

// The replay must be exactly the first records appended.
std::string check_prefix(const std::vector<rec>& got, const std::vector<appended>& log) {
  if (got.size() > log.size())
    return "replayed " + std::to_string(got.size()) + " records, only " + std::to_string(log.size()) + " appended";
  for (size_t i = 0; i < got.size(); ++i) {
    const rec& r = got[i];
    const appended& a = log[i];
    if (r.lsn != i + 1 || r.type != a.type || r.segment != a.segment || r.payload != a.payload)
      return "replayed record " + std::to_string(i) + " (LSN " + std::to_string(r.lsn) + ", segment " +
             std::to_string(r.segment) + ", " + std::to_string(r.payload.size()) +
             " bytes) is not the record appended with LSN " + std::to_string(i + 1) + " (segment " +
             std::to_string(a.segment) + ", " + std::to_string(a.payload.size()) + " bytes)";
  }
  return {};
}

// The records the sync mode promised to keep through this crash.
uint64_t promised(const config& c, const run_state& s, const fault_storage& st, bool closed_clean) {
  if (closed_clean) return s.log.size();  // close writes and syncs everything
  if (c.sync == core::wal_sync::always) return s.acked_max;
  if (c.sync == core::wal_sync::none) return 0;
  if (c.kind == crash_kind::process_kill) return s.acked_max;  // batch: written is enough
  // batch, power cut: what an fdatasync of its segment covered after its wait.
  uint64_t upto = 0;
  for (size_t i = 0; i < s.log.size(); ++i)
    if (s.log[i].acked && s.log[i].acked_at_op < st.synced_at(segment_path(s.log[i].segment))) upto = i + 1;
  return upto;
}

// What the iterations exercised (printed, so that a weak campaign shows).
struct tally {
  uint64_t acked = 0;           // records acknowledged
  uint64_t promised = 0;        // records the mode promised through a crash
  uint64_t torn_cut = 0;        // recoveries that cut a torn tail
  uint64_t skipped_corrupt = 0;  // recoveries that needed skip_corrupt
  uint64_t mid_workload = 0;    // crashes while clients were still running
  std::string last;             // what the last iteration did (printed by a replay)
};

// One seed: workload, crash, recovery, checks. Returns what went wrong, or "".
io::task<std::string> run_iteration(uint64_t seed, tally* t) {
  config c = make_config(seed);
  fault_storage st(seed * 3 + 1);
  run_state s;
  s.st = &st;
  s.seed = seed;
  bool closed_clean = false;
  {
    auto opening = open_wal(options_for(c, &st));
    opened a = co_await std::move(opening);
    if (!a.w) co_return "opening an empty log failed: " + a.error;
    s.w = a.w.get();
    if (c.crash_op) st.crash_at(c.crash_op, c.kind);
    std::vector<io::task<void>> clients;
    for (unsigned i = 0; i < c.clients; ++i) clients.push_back(client(&s, seed * 7919 + i, c.records_per_client));
    auto all = io::when_all(std::move(clients));
    co_await std::move(all);
    if (st.crashed()) ++t->mid_workload;
    if (c.close_first && !st.crashed()) {
      auto closing = close_wal(*a.w);
      co_await std::move(closing);
      closed_clean = !st.crashed();
    }
    st.crash(c.kind);  // unless it crashed already
    auto closing = close_wal(*a.w);
    co_await std::move(closing);
  }
  if (!s.unexpected.empty()) co_return s.unexpected;
  uint64_t want = promised(c, s, st, closed_clean);
  t->acked += s.acked_max;
  t->promised += want;

  // Restart on what the disk kept. A power cut with batch or none may have torn
  // more than the last write: corruption is then expected, and skipped.
  fault_storage disk(seed * 5 + 2, st.image());
  core::wal_options o = options_for(c, &disk);
  auto opening = open_wal(o);
  opened b = co_await std::move(opening);
  if (!b.w) {
    bool may_tear_more = c.kind == crash_kind::power_cut && c.sync != core::wal_sync::always && !closed_clean;
    if (!may_tear_more || b.error.find("corrupt record") == std::string::npos) co_return "recovery failed: " + b.error;
    o.skip_corrupt = true;
    auto skipping = open_wal(o);
    b = co_await std::move(skipping);
    if (!b.w) co_return "recovery with skip_corrupt failed: " + b.error;
    ++t->skipped_corrupt;
  }
  if (b.w->stats().truncated_bytes) ++t->torn_cut;
  t->last = "appended " + std::to_string(s.log.size()) + ", acknowledged up to " + std::to_string(s.acked_max) +
            ", promised " + std::to_string(want) + ", replayed " + std::to_string(b.records.size()) + " (cut " +
            std::to_string(b.w->stats().truncated_bytes) + " bytes, skip_corrupt " + std::to_string(o.skip_corrupt) +
            "), " + std::to_string(st.image().size()) + " files after the crash at operation " +
            std::to_string(st.ops());
  std::string bad = check_prefix(b.records, s.log);
  if (bad.empty() && b.records.size() < want)
    bad = "lost records: replayed " + std::to_string(b.records.size()) + ", promised " + std::to_string(want) +
          " (acknowledged up to " + std::to_string(s.acked_max) + " of " + std::to_string(s.log.size()) + ")";
  if (bad.empty()) {
    // New records continue the LSNs and are durable on the recovered log.
    appended extra{2, b.w->active_segment(), payload_for(seed, b.records.size() + 1, 300)};
    uint64_t lsn = b.w->append(extra.type, extra.payload);
    if (lsn != b.records.size() + 1)
      bad = "after recovery, append returned LSN " + std::to_string(lsn) + ", expected " +
            std::to_string(b.records.size() + 1);
    auto waiting = b.w->wait(lsn);
    io::result<void> ok = co_await std::move(waiting);
    if (bad.empty() && !ok) bad = "after recovery, wait failed: " + ok.error().message();
    s.log.resize(b.records.size());
    s.log.push_back(std::move(extra));
  }
  auto closing = close_wal(*b.w);
  co_await std::move(closing);
  if (!bad.empty()) co_return bad;

  // The damage was cut once: a plain start replays the same records and the new one.
  o.skip_corrupt = false;
  auto reopening = open_wal(o);
  opened again = co_await std::move(reopening);
  if (!again.w) co_return "second recovery failed: " + again.error;
  bad = check_prefix(again.records, s.log);
  if (bad.empty() && again.records.size() != s.log.size())
    bad = "second recovery replayed " + std::to_string(again.records.size()) + " records, expected " +
          std::to_string(s.log.size());
  if (bad.empty() && again.w->stats().truncated_bytes != 0) bad = "second recovery cut bytes again";
  auto closing2 = close_wal(*again.w);
  co_await std::move(closing2);
  co_return bad;
}

struct campaign {
  uint64_t base_seed = 0;
  std::chrono::milliseconds budget{0};
  uint64_t iterations = 0;
  std::vector<uint64_t> failed;
  tally seen;
};

std::string replay_command(uint64_t seed) {
  return g_argv0 + " --gtest_filter=wal_fault.random_crashes_lose_nothing_acknowledged --seed " +
         std::to_string(seed);
}

io::task<int> run_campaign(campaign* c) {
  auto until = std::chrono::steady_clock::now() + c->budget;
  for (uint64_t i = 0; std::chrono::steady_clock::now() < until && c->failed.size() < 5; ++i) {
    uint64_t seed = c->base_seed + i;
    auto iteration = run_iteration(seed, &c->seen);
    std::string bad = co_await std::move(iteration);
    ++c->iterations;
    if (bad.empty()) continue;
    c->failed.push_back(seed);
    ADD_FAILURE() << "seed " << seed << " (" << make_config(seed).describe() << "): " << bad
                  << "\nreplay: " << replay_command(seed);
  }
  co_return 0;
}

io::task<int> replay_one(uint64_t seed) {
  tally t;
  auto iteration = run_iteration(seed, &t);
  std::string bad = co_await std::move(iteration);
  printf("%s\n", t.last.c_str());
  EXPECT_EQ(bad, "") << "seed " << seed;
  co_return 0;
}

std::chrono::milliseconds time_budget() {
  if (const char* s = getenv("XERV_FAULT_SECONDS")) return std::chrono::milliseconds(uint64_t(atof(s) * 1000));
#if defined(__SANITIZE_ADDRESS__)
  return 20s;  // ASan runs the same checks several times slower
#else
  return 25s;
#endif
}

TEST(wal_fault, random_crashes_lose_nothing_acknowledged) {
  if (g_replay_seed) {
    printf("replaying seed %llu: %s\n", static_cast<unsigned long long>(*g_replay_seed),
           make_config(*g_replay_seed).describe().c_str());
    fflush(stdout);
    EXPECT_EQ(run_on(1, replay_one(*g_replay_seed)), 0);
    return;
  }
  campaign c;
  c.base_seed = std::random_device{}() * 1000003ull + uint64_t(time(nullptr));
  c.budget = time_budget();
  printf("wal_fault: seeds from %llu for %lld ms\n", static_cast<unsigned long long>(c.base_seed),
         static_cast<long long>(c.budget.count()));
  // Thousands of crashes log thousands of errors and torn tails: keep only ours.
  // (A level above `error` silences the log; a replay shows it.)
  io::set_log_level(io::log_level(int(io::log_level::error) + 1));
  int rc = run_on(1, run_campaign(&c));
  io::set_log_level(io::log_level::info);
  EXPECT_EQ(rc, 0);
  const tally& t = c.seen;
  printf("wal_fault: %llu iterations, %zu failed; %llu crashes mid-workload, %llu torn tails cut, %llu corrupt "
         "segments skipped; %llu records acknowledged, %llu promised through a crash\n",
         static_cast<unsigned long long>(c.iterations), c.failed.size(), static_cast<unsigned long long>(t.mid_workload),
         static_cast<unsigned long long>(t.torn_cut), static_cast<unsigned long long>(t.skipped_corrupt),
         static_cast<unsigned long long>(t.acked), static_cast<unsigned long long>(t.promised));
  EXPECT_GE(c.iterations, 100u) << "too few iterations to mean anything";
}

// ---------- single faults ----------

core::wal_options simple_options(core::wal_storage* st, core::wal_sync sync) {
  core::wal_options o;
  o.dir = k_dir;
  o.sync = sync;
  o.segment_bytes = 64u << 10;
  o.prepare_next = false;
  o.batch_delay = 0ms;  // batch: fdatasync right after each write
  o.retry_delay = 1ms;
  o.storage = st;
  return o;
}

io::task<io::result<void>> wait_for(core::wal& w, uint64_t lsn) {
  auto waiting = w.wait(lsn);
  co_return co_await std::move(waiting);
}

io::task<void> turns(int n) {
  for (int i = 0; i < n; ++i) {
    auto pause = io::sleep_for(1ms);
    (void)co_await std::move(pause);
  }
}

std::string metrics_text() { return core::render_prometheus(core::snapshot_this_thread()); }

// Reopens the log on a power cut's image of `st` and returns its records' payloads.
io::task<std::vector<std::string>> recovered(fault_storage* st, core::wal_sync sync) {
  st->crash(crash_kind::power_cut);
  fault_storage disk(99, st->image());
  auto opening = open_wal(simple_options(&disk, sync));
  opened b = co_await std::move(opening);
  EXPECT_EQ(b.error, "");
  std::vector<std::string> out;
  if (!b.w) co_return out;
  EXPECT_FALSE(b.w->failed()) << "a restart starts healthy";
  for (const rec& r : b.records) out.push_back(r.payload);
  auto closing = close_wal(*b.w);
  co_await std::move(closing);
  co_return out;
}

// fdatasync fails once, then would succeed: the WAL stays failed. The failed
// sync dropped the unsynced pages, as Linux does; a later successful sync would
// not bring them back, so anything acknowledged after it would be a lie.
io::task<int> failed_fdatasync(core::wal_sync sync) {
  fault_storage st(1);
  auto opening = open_wal(simple_options(&st, sync));
  opened a = co_await std::move(opening);
  EXPECT_EQ(a.error, "");
  if (!a.w) co_return 1;
  core::wal& w = *a.w;
  // A first record, synced (batch: right after its write; none: when its full
  // segment is sealed, before the next record goes to a new one).
  const std::string big(70u << 10, 'b');  // more than a segment
  uint64_t first = w.append(1, "synced");
  auto w1 = wait_for(w, first);
  EXPECT_TRUE(co_await std::move(w1));
  if (sync == core::wal_sync::none) {
    EXPECT_NE(w.append(1, big), 0u);
    auto t0 = turns(3);
    co_await std::move(t0);
    EXPECT_NE(w.append(1, "in segment 2"), 0u);
  }
  auto t1 = turns(5);
  co_await std::move(t1);
  EXPECT_GT(st.synced_at(segment_path(1)), 0u) << "the first record was never synced";
  EXPECT_TRUE(w.healthy());

  st.fail_next(fault_op::datasync, io::from_errno(EIO), 1);
  uint64_t second = w.append(1, "written, sync fails");
  if (sync == core::wal_sync::none) {
    EXPECT_NE(w.append(1, big), 0u);  // fills segment 2
    auto t0 = turns(3);
    co_await std::move(t0);
    EXPECT_NE(w.append(1, "in segment 3"), 0u);  // segment 2's seal (fdatasync) fails
  } else {
    auto w2 = wait_for(w, second);  // batch: done when written; the fdatasync follows and fails
    EXPECT_TRUE(co_await std::move(w2));
  }
  auto t2 = turns(10);
  co_await std::move(t2);
  EXPECT_TRUE(w.failed());
  EXPECT_FALSE(w.healthy());
  EXPECT_EQ(w.failure(), "fdatasync failed: Input/output error");
  // Later syncs would succeed; the WAL must not take that as recovery.
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(w.append(1, "after the failure"), 0u) << "appends must be refused for good";
    auto t3 = turns(5);
    co_await std::move(t3);
    EXPECT_FALSE(w.healthy());
    EXPECT_TRUE(w.failed());
  }
  // What was synced before is durable; what was written since is not proven.
  auto w3 = wait_for(w, first);
  EXPECT_TRUE(co_await std::move(w3));
  auto w4 = wait_for(w, second);
  io::result<void> r4 = co_await std::move(w4);
  EXPECT_FALSE(r4) << "a record not proven durable was acknowledged";
  EXPECT_EQ(r4.error(), io::from_errno(EIO));
  std::string m = metrics_text();
  EXPECT_NE(m.find("xerv_wal_failed 1"), std::string::npos) << m;
  EXPECT_NE(m.find("xerv_wal_unavailable 1"), std::string::npos) << m;
  auto closing = close_wal(w);
  co_await std::move(closing);
  EXPECT_FALSE(w.healthy());
  // After a restart, the synced record is there and the dropped ones are not.
  auto rec_task = recovered(&st, sync);
  std::vector<std::string> got = co_await std::move(rec_task);
  EXPECT_FALSE(got.empty());
  if (!got.empty()) {
    EXPECT_EQ(got.front(), "synced");
  }
  for (const std::string& p : got) EXPECT_NE(p, "written, sync fails");
  co_return 0;
}

TEST(wal_fault, failed_fdatasync_fails_the_wal_for_good_sync_batch) {
  EXPECT_EQ(run_on(1, failed_fdatasync(core::wal_sync::batch)), 0);
}

TEST(wal_fault, failed_fdatasync_fails_the_wal_for_good_sync_none) {
  EXPECT_EQ(run_on(1, failed_fdatasync(core::wal_sync::none)), 0);
}

// An RWF_DSYNC write fails with EIO once: its waiters get the error, and the WAL
// does not retry (the block it rewrote may be damaged on disk).
io::task<int> failed_dsync_write() {
  fault_storage st(2);
  auto opening = open_wal(simple_options(&st, core::wal_sync::always));
  opened a = co_await std::move(opening);
  if (!a.w) co_return 1;
  core::wal& w = *a.w;
  uint64_t first = w.append(1, "durable");
  auto w1 = wait_for(w, first);
  EXPECT_TRUE(co_await std::move(w1));
  st.fail_next(fault_op::write, io::from_errno(EIO), 1);
  uint64_t b = w.append(1, "b");
  uint64_t c = w.append(1, "c");
  auto wb = wait_for(w, b);
  auto wc = wait_for(w, c);
  auto both = io::when_all(std::move(wb), std::move(wc));
  auto [rb, rc] = co_await std::move(both);
  EXPECT_FALSE(rb);
  EXPECT_FALSE(rc);
  EXPECT_TRUE(w.failed());
  EXPECT_EQ(w.failure(), "write with RWF_DSYNC failed: Input/output error");
  auto t = turns(20);  // retry_delay is 1 ms: a retry would have succeeded by now
  co_await std::move(t);
  EXPECT_TRUE(w.failed());
  EXPECT_FALSE(w.healthy());
  EXPECT_EQ(w.append(1, "d"), 0u);
  auto wb2 = wait_for(w, b);
  EXPECT_FALSE(co_await std::move(wb2));
  auto closing = close_wal(w);
  co_await std::move(closing);
  auto rec_task = recovered(&st, core::wal_sync::always);
  std::vector<std::string> got = co_await std::move(rec_task);
  EXPECT_EQ(got, std::vector<std::string>{"durable"});
  co_return 0;
}

TEST(wal_fault, failed_dsync_write_fails_its_waiters_and_the_wal_for_good) {
  EXPECT_EQ(run_on(1, failed_dsync_write()), 0);
}

// A failed fsync of the directory (the new segment's name) is a failed sync too.
io::task<int> failed_dir_sync() {
  fault_storage st(3);
  auto opening = open_wal(simple_options(&st, core::wal_sync::always));
  opened a = co_await std::move(opening);
  if (!a.w) co_return 1;
  st.fail_next(fault_op::sync_dir, io::from_errno(EIO), 1);
  uint64_t lsn = a.w->append(1, "x");
  auto w1 = wait_for(*a.w, lsn);
  EXPECT_FALSE(co_await std::move(w1));
  auto t = turns(10);
  co_await std::move(t);
  EXPECT_TRUE(a.w->failed());
  EXPECT_EQ(a.w->failure(), "fsync of the WAL directory failed: Input/output error");
  auto closing = close_wal(*a.w);
  co_await std::move(closing);
  co_return 0;
}

TEST(wal_fault, failed_directory_sync_fails_the_wal_for_good) { EXPECT_EQ(run_on(1, failed_dir_sync()), 0); }

// No space (creating a segment, or a write) is retried: the waiters of the
// refused write get the error, the WAL is unhealthy but not failed, and once
// space returns everything appended is written and admissions resume.
io::task<int> space_errors_are_retried() {
  fault_storage st(4);
  auto opening = open_wal(simple_options(&st, core::wal_sync::always));
  opened a = co_await std::move(opening);
  if (!a.w) co_return 1;
  core::wal& w = *a.w;
  st.fail_next(fault_op::create, io::from_errno(ENOSPC), 3);
  uint64_t first = w.append(1, "first");
  auto w1 = wait_for(w, first);
  io::result<void> r1 = co_await std::move(w1);
  EXPECT_EQ(r1.error(), io::from_errno(ENOSPC));
  EXPECT_FALSE(w.healthy());
  EXPECT_FALSE(w.failed());
  EXPECT_EQ(w.failure(), "creating a segment failed: No space left on device");
  for (int i = 0; i < 200 && !w.healthy(); ++i) {
    auto t = turns(1);
    co_await std::move(t);
  }
  EXPECT_TRUE(w.healthy());
  EXPECT_EQ(w.failure(), "");
  auto w1b = wait_for(w, first);
  EXPECT_TRUE(co_await std::move(w1b)) << "written once space returned";

  st.fail_next(fault_op::write, io::from_errno(EDQUOT), 2);
  uint64_t second = w.append(1, "second");
  auto w2 = wait_for(w, second);
  io::result<void> r2 = co_await std::move(w2);
  EXPECT_EQ(r2.error(), io::from_errno(EDQUOT));
  EXPECT_FALSE(w.failed());
  uint64_t third = w.append(1, "third");  // buffered meanwhile
  EXPECT_EQ(third, second + 1);
  auto w3 = wait_for(w, third);
  io::result<void> r3 = co_await std::move(w3);
  for (int i = 0; i < 200 && !r3; ++i) {  // fails at once while the retries fail
    auto t = turns(1);
    co_await std::move(t);
    auto again = wait_for(w, third);
    r3 = co_await std::move(again);
  }
  EXPECT_TRUE(r3);
  EXPECT_TRUE(w.healthy());
  EXPECT_FALSE(w.failed());
  EXPECT_NE(metrics_text().find("xerv_wal_failed 0"), std::string::npos) << metrics_text();
  auto closing = close_wal(w);
  co_await std::move(closing);
  auto rec_task = recovered(&st, core::wal_sync::always);
  std::vector<std::string> got = co_await std::move(rec_task);
  EXPECT_EQ(got, (std::vector<std::string>{"first", "second", "third"}));
  co_return 0;
}

TEST(wal_fault, space_errors_are_retried_and_recover) { EXPECT_EQ(run_on(1, space_errors_are_retried()), 0); }

}  // namespace

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  g_argv0 = argv[0];
  if (const char* e = getenv("XERV_FAULT_SEED")) g_replay_seed = std::strtoull(e, nullptr, 10);
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--seed" && i + 1 < argc) {
      g_replay_seed = std::strtoull(argv[++i], nullptr, 10);
    } else if (a.starts_with("--seed=")) {
      g_replay_seed = std::strtoull(a.c_str() + 7, nullptr, 10);
    } else {
      fprintf(stderr, "unknown argument %s (wal_fault_tests [gtest flags] [--seed N])\n", a.c_str());
      return 2;
    }
  }
  return RUN_ALL_TESTS();
}
