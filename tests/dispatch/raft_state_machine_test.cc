// The Raft backend's replicated state machine (backends/raft/state_machine.h):
// what applying commands does, that retried commands change nothing, how a
// dead node's traces spread, the pipeline rules, and snapshots.

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "backends/raft/state_machine.h"
#include "tests/dispatch/changes.h"

using namespace xerv;
using backends::raft::request_ref;
using backends::raft::state_machine;
using backends::raft::trace_state;
using xerv::testing::make_change;

namespace {

struct recorder : state_machine::listener {
  std::vector<std::string> events;
  std::vector<std::pair<request_ref, std::error_code>> results;
  std::vector<core::pipeline_change> changes;
  void on_assigned(const core::trace_id& id, const trace_state& t) override {
    events.push_back("assigned " + std::to_string(id.lo) + " to " + std::to_string(t.owner) + " attempt " +
                     std::to_string(t.attempt));
  }
  void on_unassigned(const core::trace_id& id, uint64_t from) override {
    events.push_back("unassigned " + std::to_string(id.lo) + " from " + std::to_string(from));
  }
  void on_finished(const core::trace_id& id, uint64_t owner, uint32_t, request_ref) override {
    events.push_back("finished " + std::to_string(id.lo) + " at " + std::to_string(owner));
  }
  void on_pipeline(const core::pipeline_change& c) override { changes.push_back(c); }
  void on_address(uint64_t id, const backends::raft::node_address& a) override {
    events.push_back("address " + std::to_string(id) + " " + a.host + ":" + std::to_string(a.port));
  }
  void on_result(request_ref r, std::error_code e, const core::pipeline_change*) override { results.push_back({r, e}); }
};

core::trace_id tid(uint64_t n) { return core::trace_id{7, n}; }

std::string admission(uint64_t n, std::string pipeline = "p") {
  std::string out;
  core::encode(out, core::admission{tid(n), 1000 + n, pipeline, "v1", "manual", "{}"});
  return out;
}

std::string final_record(uint64_t n, uint8_t status = 2) {
  std::string out;
  core::record_writer w{out};
  w.id(tid(n));
  w.u8(status);
  w.u64(5000 + n);
  out += "output";
  return out;
}

std::string admit(uint64_t ref, uint64_t owner, uint64_t n, std::string pipeline = "p") {
  std::string e;
  backends::raft::add_admit(e, {owner, ref}, owner, 0, admission(n, std::move(pipeline)));
  return e;
}

std::string finish(uint64_t origin, uint64_t ref, uint64_t n) {
  std::string e;
  backends::raft::add_finish(e, {origin, ref}, final_record(n));
  return e;
}


}  // namespace

TEST(raft_state_machine, admit_finish_and_retries) {
  state_machine sm;
  recorder r;
  // Two admissions in one entry (one batch), then the first again (a retry).
  ASSERT_TRUE(sm.apply(admit(1, 1, 10) + admit(2, 1, 11), r));
  ASSERT_TRUE(sm.apply(admit(3, 1, 10), r));
  EXPECT_EQ(sm.unfinished().size(), 2u);
  EXPECT_EQ(sm.load(1), 2u);
  EXPECT_EQ(r.events, (std::vector<std::string>{"assigned 10 to 1 attempt 1", "assigned 11 to 1 attempt 1"}));
  EXPECT_EQ(r.results.size(), 3u) << "a retried admission is answered too";
  ASSERT_TRUE(sm.apply(finish(1, 4, 10), r));
  ASSERT_TRUE(sm.apply(finish(2, 5, 10), r));  // a second final status: ignored
  EXPECT_EQ(sm.unfinished().size(), 1u);
  EXPECT_EQ(sm.load(1), 1u);
  ASSERT_NE(sm.finished(tid(10)), nullptr);
  EXPECT_EQ(sm.finished(tid(10))->status, 2);
  EXPECT_EQ(sm.finished(tid(10))->finished_ms, 5010u);
  EXPECT_EQ(sm.finished(tid(10))->owner, 1u);
  EXPECT_EQ(r.events.back(), "finished 10 at 1");
  EXPECT_EQ(std::count_if(r.events.begin(), r.events.end(), [](auto& e) { return e.rfind("finished", 0) == 0; }), 1);
  // A late retry of a finished admission does not bring it back.
  ASSERT_TRUE(sm.apply(admit(6, 1, 10), r));
  EXPECT_EQ(sm.unfinished().size(), 1u);
}

TEST(raft_state_machine, finished_window_is_bounded) {
  state_machine sm(3);
  recorder r;
  for (uint64_t n = 1; n <= 5; ++n) {
    ASSERT_TRUE(sm.apply(admit(n, 1, n), r));
    ASSERT_TRUE(sm.apply(finish(1, 100 + n, n), r));
  }
  EXPECT_EQ(sm.finished(tid(1)), nullptr);
  EXPECT_EQ(sm.finished(tid(2)), nullptr);
  ASSERT_NE(sm.finished(tid(3)), nullptr);
  ASSERT_NE(sm.finished(tid(5)), nullptr);
  EXPECT_EQ(sm.finished(tid(5))->finished_ms, 5005u);
}

TEST(raft_state_machine, reassign_spreads_a_dead_nodes_traces_least_loaded_first) {
  state_machine sm;
  recorder r;
  ASSERT_TRUE(sm.apply(admit(1, 3, 1), r));  // node 3 holds one already
  for (uint64_t n = 10; n < 15; ++n) ASSERT_TRUE(sm.apply(admit(n, 2, n), r));
  r.events.clear();
  std::string e;
  std::vector<uint64_t> to{1, 3, 2};  // the dead node listed as a target is ignored
  backends::raft::add_reassign(e, {1, 50}, 2, to);
  ASSERT_TRUE(sm.apply(e, r));
  EXPECT_EQ(sm.load(2), 0u);
  EXPECT_EQ(sm.load(1), 3u);
  EXPECT_EQ(sm.load(3), 3u);
  // In admission order: 10 → 1 (0 vs 1), 11 → 1 (1 vs 1: the first listed), 12 → 3, 13 → 1, 14 → 3.
  EXPECT_EQ(r.events, (std::vector<std::string>{
                          "unassigned 10 from 2", "assigned 10 to 1 attempt 2", "unassigned 11 from 2",
                          "assigned 11 to 1 attempt 2", "unassigned 12 from 2", "assigned 12 to 3 attempt 2",
                          "unassigned 13 from 2", "assigned 13 to 1 attempt 2", "unassigned 14 from 2",
                          "assigned 14 to 3 attempt 2"}));
  // The old owner finishing late still ends the trace, once.
  ASSERT_TRUE(sm.apply(finish(2, 9, 12), r));
  EXPECT_EQ(sm.load(3), 2u);
  EXPECT_EQ(r.events.back(), "finished 12 at 3");
}

TEST(raft_state_machine, pipeline_changes_follow_the_store_rules) {
  using kind = core::pipeline_change::kind;
  state_machine sm;
  recorder r;
  auto publish = [&](uint64_t ref, core::pipeline_change c, uint64_t expected = 0) {
    std::string e;
    backends::raft::add_pipeline(e, {1, ref}, c, expected);
    EXPECT_TRUE(sm.apply(e, r));
  };
  publish(1, make_change(kind::deploy, "a", "name: a\n"));
  publish(2, make_change(kind::deploy, "a", "name: a\nv: 2\n"));
  publish(2, make_change(kind::deploy, "a", "name: a\nv: 2\n"));  // sent twice: applied once
  publish(3, make_change(kind::state, "a", "", core::pipeline_state::paused));
  auto t = make_change(kind::triggers, "a");
  t.disabled = {"hook"};
  publish(4, t);
  publish(5, make_change(kind::deploy, "a", "name: a\n"), 1);  // overtaken
  publish(6, make_change(kind::state, "b", "", core::pipeline_state::paused));  // unknown
  ASSERT_EQ(r.changes.size(), 4u);
  EXPECT_EQ(r.changes[0].revision, 1u);
  EXPECT_EQ(r.changes[1].revision, 2u);
  EXPECT_EQ(r.changes[2].revision, 2u);
  EXPECT_EQ(r.changes[2].source, "name: a\nv: 2\n") << "a state change keeps the definition";
  EXPECT_EQ(r.changes[3].state, core::pipeline_state::paused) << "a trigger change keeps the state";
  for (size_t i = 1; i < r.changes.size(); ++i) EXPECT_EQ(r.changes[i].seq, r.changes[i - 1].seq + 1);
  ASSERT_EQ(r.results.size(), 6u);
  EXPECT_EQ(r.results[4].second, core::dispatch_errc::conflict);
  EXPECT_EQ(r.results[5].second, core::dispatch_errc::not_found);
  const auto& a = sm.pipelines().at("a");
  EXPECT_EQ(a.revision, 2u);
  EXPECT_EQ(a.state, core::pipeline_state::paused);
  EXPECT_EQ(a.disabled, (std::vector<std::string>{"hook"}));
  publish(7, make_change(kind::remove, "a"));
  EXPECT_TRUE(sm.pipelines().empty());
}

TEST(raft_state_machine, snapshot_round_trip_and_bad_bytes) {
  using kind = core::pipeline_change::kind;
  state_machine sm(4);
  recorder r;
  for (uint64_t n = 1; n <= 6; ++n) ASSERT_TRUE(sm.apply(admit(n, 1 + n % 2, n, n % 2 ? "odd" : "even"), r));
  ASSERT_TRUE(sm.apply(finish(1, 90, 2), r));
  std::string e;
  backends::raft::add_pipeline(e, {1, 91}, make_change(kind::deploy, "a", "name: a\n"), 0);
  ASSERT_TRUE(sm.apply(e, r));
  std::string addr;
  backends::raft::add_address(addr, {1, 92}, 4, "10.0.0.4", 5004);
  ASSERT_TRUE(sm.apply(addr, r));
  EXPECT_EQ(r.events.back(), "address 4 10.0.0.4:5004");
  std::string snap = sm.snapshot();
  state_machine back(4);
  ASSERT_TRUE(back.restore(snap));
  EXPECT_EQ(back.snapshot(), snap);
  EXPECT_EQ(back.unfinished().size(), 5u);
  EXPECT_EQ(back.load(1), 2u);
  EXPECT_EQ(back.load(2), 3u);
  EXPECT_EQ(back.unfinished().at(state_machine::key_of(tid(3))).pipeline, "odd");
  ASSERT_NE(back.finished(tid(2)), nullptr);
  EXPECT_EQ(back.pipelines().at("a").revision, 1u);
  EXPECT_EQ(back.seq(), 1u);
  EXPECT_EQ(back.addresses().at(4), (backends::raft::node_address{"10.0.0.4", 5004}));
  // The same change sent again after the snapshot is still recognized.
  recorder r2;
  ASSERT_TRUE(back.apply(e, r2));
  EXPECT_TRUE(r2.changes.empty());
  // Every truncation, and a flipped version byte, is refused and changes nothing.
  for (size_t n = 0; n < snap.size(); ++n) EXPECT_FALSE(back.restore(snap.substr(0, n))) << n;
  std::string bad = snap;
  bad[0] = char(99);
  EXPECT_FALSE(back.restore(bad));
  EXPECT_EQ(back.snapshot(), snap);
}

TEST(raft_state_machine, undecodable_entries_are_refused) {
  state_machine sm;
  recorder r;
  std::string good = admit(1, 1, 1);
  EXPECT_FALSE(sm.apply(good.substr(0, good.size() - 1), r));
  EXPECT_FALSE(sm.apply(std::string("\x09garbage-garbage-garbage-garbage", 32), r));
  std::string e;
  backends::raft::add_finish(e, {1, 2}, "short");  // not a final record
  EXPECT_FALSE(sm.apply(e, r));
  EXPECT_TRUE(sm.unfinished().empty());
}
