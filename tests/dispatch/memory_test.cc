// The memory backend (backends/memory) against the dispatch conformance suite,
// on a real WAL in a temp dir, plus what only the memory backend does: the
// traces a killed process held come back, once, from its WAL; the pipeline
// store's files carry state and revision across a restart.

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <stdexcept>

#include "backends/memory/pipeline_store.h"
#include "backends/memory/trace_queue.h"
#include "core/wal.h"
#include "tests/dispatch/conformance.h"

using namespace xerv;
using namespace std::chrono_literals;

// Named, not anonymous: the suite's coroutine frames hold a memory_cluster.
namespace memory_test {

std::string make_temp_dir() {
  std::string tmpl = "/tmp/xerv-dispatch-test.XXXXXX";
  if (!mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
  return tmpl;
}

core::wal_options wal_options(const std::string& dir) {
  core::wal_options o;
  o.dir = dir + "/wal";
  o.segment_bytes = 1 << 20;
  o.retention = std::chrono::milliseconds(3'600'000);
  return o;
}

// One shard's memory backend: its WAL, its queue, the store under the dir.
struct memory_cluster {
  static constexpr const char* name = "memory";
  // `d` empty: a fresh temp dir, removed at the end; else the caller's.
  explicit memory_cluster(std::string d = {}) : dir(d.empty() ? make_temp_dir() : d), own(d.empty()) {}
  std::string dir;
  bool own;
  std::unique_ptr<core::wal> wal;
  std::unique_ptr<backends::memory::trace_queue> q;
  std::unique_ptr<backends::memory::pipeline_store> s;

  ~memory_cluster() {
    std::error_code ec;
    if (own) std::filesystem::remove_all(dir, ec);
  }

  // Opens the WAL (replaying what a previous process left into the queue).
  io::task<bool> start() {
    q = std::make_unique<backends::memory::trace_queue>(nullptr);
    backends::memory::trace_queue* queue = q.get();
    core::wal::replay_fn replay = [queue](const core::wal_record& r) { queue->replay(r); };
    auto opening = core::wal::open(wal_options(dir), std::move(replay));
    auto w = co_await std::move(opening);
    auto* opened = std::get_if<std::unique_ptr<core::wal>>(&w);
    EXPECT_TRUE(opened) << std::get<std::string>(w);
    if (!opened) co_return false;
    wal = std::move(*opened);
    q->attach(wal.get());
    q->end_replay();
    auto stored = backends::memory::pipeline_store::read_dir(dir + "/pipelines");
    EXPECT_TRUE(stored.problems.empty());
    s = std::make_unique<backends::memory::pipeline_store>(dir + "/pipelines", std::move(stored.pipelines));
    co_return true;
  }
  io::task<void> stop() {
    s.reset();
    if (wal) co_await wal->close();
    q.reset();
    wal.reset();
  }
  core::trace_queue& queue() { return *q; }
  core::pipeline_store& store() { return *s; }
  std::unique_ptr<core::trace_consumer> consumer(std::string n) { return q->consume(std::move(n)); }
  void crash(std::unique_ptr<core::trace_consumer>& c) { c.reset(); }
};

}  // namespace memory_test

using memory_test::make_temp_dir;
using memory_test::memory_cluster;
using memory_backends = ::testing::Types<memory_cluster>;
INSTANTIATE_TYPED_TEST_SUITE_P(memory, dispatch_conformance, memory_backends);

namespace {

// A process admits four traces, takes them, acknowledges one and "dies" (its
// WAL closed with no end for three). The next process delivers exactly those
// three again, once each, as second attempts; after it acknowledges them, a
// third process delivers nothing.
io::task<int> restart_redelivers_unacknowledged(std::string dir) {
  using conformance::final_record;
  std::vector<core::trace_id> ids;
  {
    memory_cluster c(dir);
    auto starting = c.start();
    if (!co_await std::move(starting)) co_return 1;
    auto admitting = conformance::admit_n(c, "p", 1, 4);
    auto a = co_await std::move(admitting);
    for (auto& x : a) ids.push_back(x.id);
    auto w = c.consumer("shard-0");
    auto taking = conformance::take_n(*w, 4, 10);
    auto got = co_await std::move(taking);
    EXPECT_EQ(got.size(), 4u);
    auto t = w->ack(ids[0], final_record(ids[0]));
    EXPECT_TRUE(t.ok());
    if (t) {
      auto durable = c.queue().durable(*t);
      auto r = co_await std::move(durable);
      EXPECT_TRUE(r.ok());
    }
    auto stopping = c.stop();
    co_await std::move(stopping);
  }
  {
    memory_cluster c(dir);
    auto starting = c.start();
    if (!co_await std::move(starting)) co_return 2;
    EXPECT_EQ(c.queue().depth().ready, 3u);
    auto w = c.consumer("shard-0");
    auto taking = conformance::take_n(*w, 3, 10);
    auto got = co_await std::move(taking);
    EXPECT_EQ(got.size(), 3u);
    for (size_t i = 0; i < got.size(); ++i) {
      EXPECT_EQ(got[i].id, ids[i + 1]);
      EXPECT_EQ(got[i].attempt, 2u);
      EXPECT_EQ(got[i].pipeline, "p");
    }
    auto idle = conformance::take_nothing(*w);
    size_t more = co_await std::move(idle);
    EXPECT_EQ(more, 0u);
    core::dispatch_ticket last = 0;
    for (const auto& d : got) {
      auto t = w->ack(d.id, final_record(d.id));
      EXPECT_TRUE(t.ok());
      if (t) last = *t;
    }
    auto durable = c.queue().durable(last);
    auto r = co_await std::move(durable);
    EXPECT_TRUE(r.ok());
    auto stopping = c.stop();
    co_await std::move(stopping);
  }
  {
    memory_cluster c(dir);
    auto starting = c.start();
    if (!co_await std::move(starting)) co_return 3;
    EXPECT_EQ(c.queue().depth().ready, 0u);
    auto stopping = c.stop();
    co_await std::move(stopping);
  }
  co_return 0;
}

TEST(memory_dispatch, restart_redelivers_exactly_the_unacknowledged_traces) {
  std::string dir = make_temp_dir();
  EXPECT_EQ(xerv::testing::run_on(1, restart_redelivers_unacknowledged(dir)), 0);
  std::filesystem::remove_all(dir);
}

// Finished traces keep their WAL segment for the retention period after a
// restart too: the queue accounts them to the WAL once it exists (it replays
// before the WAL is open), so the next process's first sweep keeps them.
io::task<int> restart_keeps_finished_segments(std::string dir) {
  using conformance::final_record;
  {
    memory_cluster c(dir);
    auto starting = c.start();
    if (!co_await std::move(starting)) co_return 1;
    auto admitting = conformance::admit_n(c, "p", 1, 2);
    auto a = co_await std::move(admitting);
    auto w = c.consumer("shard-0");
    auto taking = conformance::take_n(*w, 2, 10);
    auto got = co_await std::move(taking);
    EXPECT_EQ(got.size(), 2u);
    core::dispatch_ticket last = 0;
    for (const auto& x : a) {
      auto t = w->ack(x.id, final_record(x.id));
      if (t) last = *t;
    }
    auto durable = c.queue().durable(last);
    auto r = co_await std::move(durable);
    EXPECT_TRUE(r.ok());
    auto stopping = c.stop();
    co_await std::move(stopping);
  }
  auto before = core::list_segments(dir + "/wal");
  EXPECT_FALSE(before.empty());
  {
    memory_cluster c(dir);
    auto starting = c.start();
    if (!co_await std::move(starting)) co_return 2;
    // Two more admissions, more than the WAL's sweep period (1 s) apart: the
    // flusher sweeps before the second write, with the new segment open.
    auto admitting = conformance::admit_n(c, "p", 10, 1);
    auto a = co_await std::move(admitting);
    EXPECT_EQ(a.size(), 1u);
    co_await io::sleep_for(1100ms);
    auto again = conformance::admit_n(c, "p", 11, 1);
    auto b = co_await std::move(again);
    EXPECT_EQ(b.size(), 1u);
    auto stopping = c.stop();
    co_await std::move(stopping);
  }
  auto after = core::list_segments(dir + "/wal");
  EXPECT_FALSE(after.empty());
  if (!before.empty() && !after.empty()) {
    EXPECT_EQ(after.front().first, before.front().first) << "a segment of traces finished a moment ago was deleted";
  }
  co_return 0;
}

TEST(memory_dispatch, restart_keeps_the_segments_of_recently_finished_traces) {
  std::string dir = make_temp_dir();
  EXPECT_EQ(xerv::testing::run_on(1, restart_keeps_finished_segments(dir)), 0);
  std::filesystem::remove_all(dir);
}

io::task<int> store_survives_restart(std::string dir) {
  using kind = core::pipeline_change::kind;
  {
    backends::memory::pipeline_store s(dir, {});
    core::pipeline_change c;
    c.name = "orders";
    c.source = "name: orders\n";
    for (int i = 0; i < 3; ++i) {
      auto publishing = s.publish(c, 0);
      auto r = co_await std::move(publishing);
      EXPECT_TRUE(r.ok());
    }
    c.what = kind::state;
    c.state = core::pipeline_state::paused;
    auto pausing = s.publish(c, 0);
    auto paused = co_await std::move(pausing);
    EXPECT_TRUE(paused.ok());
    core::pipeline_change gone;
    gone.what = kind::deploy;
    gone.name = "gone";
    gone.source = "name: gone\n";
    auto deploying = s.publish(gone, 0);
    auto deployed = co_await std::move(deploying);
    EXPECT_TRUE(deployed.ok());
    gone.what = kind::remove;
    auto removing = s.publish(gone, 0);
    auto removed = co_await std::move(removing);
    EXPECT_TRUE(removed.ok());
  }
  auto stored = backends::memory::pipeline_store::read_dir(dir);
  EXPECT_TRUE(stored.problems.empty());
  EXPECT_EQ(stored.pipelines.size(), 1u);
  if (stored.pipelines.size() != 1) co_return 1;
  EXPECT_EQ(stored.pipelines[0].name, "orders");
  EXPECT_EQ(stored.pipelines[0].revision, 3u);
  EXPECT_EQ(stored.pipelines[0].state, core::pipeline_state::paused);
  // The next deploy after the restart continues the revisions.
  backends::memory::pipeline_store s(dir, std::move(stored.pipelines));
  core::pipeline_change c;
  c.name = "orders";
  c.source = "name: orders\n";
  auto publishing = s.publish(c, 3);
  auto r = co_await std::move(publishing);
  EXPECT_TRUE(r.ok());
  if (r) {
    EXPECT_EQ(r->revision, 4u);
  }
  co_return 0;
}

TEST(memory_dispatch, pipeline_store_keeps_revision_and_state_across_a_restart) {
  std::string dir = make_temp_dir();
  EXPECT_EQ(xerv::testing::run_on(1, store_survives_restart(dir + "/pipelines")), 0);
  std::filesystem::remove_all(dir);
}

TEST(memory_dispatch, a_state_file_from_before_revisions_is_revision_one_and_a_bad_one_a_warning) {
  std::string dir = make_temp_dir();
  std::ofstream(dir + "/old.yaml") << "name: old\n";
  std::ofstream(dir + "/old.state") << "stopped";
  std::ofstream(dir + "/bad.yaml") << "name: bad\n";
  std::ofstream(dir + "/bad.state") << "running many";
  auto stored = backends::memory::pipeline_store::read_dir(dir);
  ASSERT_EQ(stored.pipelines.size(), 2u);
  EXPECT_EQ(stored.pipelines[1].name, "old");
  EXPECT_EQ(stored.pipelines[1].revision, 1u);
  EXPECT_EQ(stored.pipelines[1].state, core::pipeline_state::stopped);
  // A state file that does not parse is reported, and its pipeline runs (as
  // releases before revisions did).
  EXPECT_TRUE(stored.problems.empty());
  ASSERT_EQ(stored.warnings.size(), 1u);
  EXPECT_NE(stored.warnings[0].find("bad.state"), std::string::npos);
  EXPECT_EQ(stored.pipelines[0].name, "bad");
  EXPECT_EQ(stored.pipelines[0].state, core::pipeline_state::running);
  std::filesystem::remove_all(dir);
}

}  // namespace
