#pragma once
// The dispatch conformance suite: what every backend of core/dispatch.h must
// do, written once against the interface. A backend joins by providing a
// cluster type and instantiating the typed suite:
//
//   struct my_cluster {
//     static constexpr const char* name = "redis";
//     io::task<bool> start();                // on shard 0 of a fresh runtime
//     io::task<void> stop();
//     core::trace_queue& queue();            // where traces are admitted
//     core::pipeline_store& store();         // where the control plane publishes
//     std::unique_ptr<core::trace_consumer> consumer(std::string name);
//     // A consumer that dies without acknowledging: after this, take_over by a
//     // live consumer (or the backend's own redelivery) frees its traces.
//     void crash(std::unique_ptr<core::trace_consumer>& c);
//   };
//   using backends = ::testing::Types<my_cluster>;
//   INSTANTIATE_TYPED_TEST_SUITE_P(redis, dispatch_conformance, backends);
//
// Each test runs one coroutine on shard 0 and checks with EXPECT_* (an early
// exit returns a non-zero code, which the test also checks).

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "core/dispatch.h"
#include "io/cancel.h"
#include "io/gate.h"
#include "io/ops.h"
#include "io/when_all.h"
#include "tests/dispatch/changes.h"
#include "tests/run_on.h"

namespace xerv::conformance {

using namespace std::chrono_literals;

inline core::trace_id make_id(uint64_t n) { return core::trace_id{(uint64_t(1'700'000'000'000) << 16), n}; }

struct admitted {
  core::trace_id id;
  std::string pipeline;
};

// Admits `n` traces of `pipeline` and waits until each is durable.
template <class Cluster>
io::task<std::vector<admitted>> admit_n(Cluster& c, std::string pipeline, uint64_t first, size_t n) {
  std::vector<admitted> out;
  std::vector<core::dispatch_ticket> tickets;
  for (size_t i = 0; i < n; ++i) {
    core::trace_id id = make_id(first + i);
    std::string input = "{\"n\":" + std::to_string(first + i) + "}";
    auto t = c.queue().admit(core::admission{id, 1000 + first + i, pipeline, "v1", "manual", input});
    EXPECT_TRUE(t.ok()) << t.error().message();
    if (!t) co_return out;
    tickets.push_back(*t);
    out.push_back({id, pipeline});
  }
  for (auto t : tickets) {
    auto durable = c.queue().durable(t);
    auto r = co_await std::move(durable);
    EXPECT_TRUE(r.ok());
  }
  co_return out;
}

// Takes until `want` deliveries arrived or a second passed.
inline io::task<std::vector<core::delivery>> take_n(core::trace_consumer& c, size_t want, size_t max) {
  std::vector<core::delivery> out;
  io::cancel_source stop;
  io::deadline limit(1s, stop);
  while (out.size() < want && !stop.cancelled()) {
    auto taking = c.take(max, stop);
    auto got = co_await std::move(taking);
    for (auto& d : got) out.push_back(std::move(d));
  }
  co_return out;
}

// An empty take within a short while: nothing is deliverable.
inline io::task<size_t> take_nothing(core::trace_consumer& c) {
  io::cancel_source stop;
  io::deadline limit(50ms, stop);
  auto taking = c.take(100, stop);
  auto got = co_await std::move(taking);
  co_return got.size();
}

inline std::string final_record(const core::trace_id& id) {
  // The framing of a final record: id, status, finish time, then anything.
  std::string out(reinterpret_cast<const char*>(&id.hi), 8);
  out.append(reinterpret_cast<const char*>(&id.lo), 8);
  out.push_back(char(2));
  uint64_t ms = core::unix_ms_now();
  out.append(reinterpret_cast<const char*>(&ms), 8);
  out += "engine-specific";
  return out;
}

template <class Cluster>
int run_with(io::task<int> (*body)(Cluster&)) {
  return testing::run_on(1, [](io::task<int> (*b)(Cluster&)) -> io::task<int> {
    Cluster c;
    auto starting = c.start();
    if (!co_await std::move(starting)) co_return 100;
    auto running = b(c);
    int rc = co_await std::move(running);
    auto stopping = c.stop();
    co_await std::move(stopping);
    co_return rc;
  }(body));
}

// ---- the tests ----

template <class Cluster>
io::task<int> admit_take_ack(Cluster& c) {
  auto a_job = admit_n(c, "orders", 1, 3);
  auto a = co_await std::move(a_job);
  if (a.size() != 3) co_return 1;
  EXPECT_EQ(c.queue().depth().ready, 3u);
  EXPECT_EQ(c.queue().depth("orders").ready, 3u);
  auto con = c.consumer("w1");
  auto got_job = take_n(*con, 3, 10);
  auto got = co_await std::move(got_job);
  EXPECT_EQ(got.size(), 3u);
  if (got.size() != 3) co_return 2;
  for (size_t i = 0; i < 3; ++i) {
    // In admission order, each with its admission.
    EXPECT_EQ(got[i].id, a[i].id);
    EXPECT_EQ(got[i].pipeline, "orders");
    EXPECT_EQ(got[i].attempt, 1u);
    auto rec = core::decode_admission(got[i].record);
    EXPECT_TRUE(rec.has_value());
    if (!rec) co_return 3;
    EXPECT_EQ(rec->id, a[i].id);
    EXPECT_EQ(rec->pipeline, "orders");
    EXPECT_EQ(rec->version, "v1");
    EXPECT_EQ(rec->trigger, "manual");
    EXPECT_EQ(rec->created_ms, 1001 + i);
    EXPECT_EQ(rec->input, "{\"n\":" + std::to_string(1 + i) + "}");
  }
  EXPECT_EQ(c.queue().depth().ready, 0u);
  EXPECT_EQ(c.queue().depth().in_flight, 3u);
  for (const auto& d : got) {
    auto t = con->ack(d.id, final_record(d.id));
    EXPECT_TRUE(t.ok());
    if (!t) co_return 4;
    auto durable = c.queue().durable(*t);
    auto r = co_await std::move(durable);
    EXPECT_TRUE(r.ok());
  }
  EXPECT_EQ(c.queue().depth().in_flight, 0u);
  EXPECT_EQ(c.queue().depth("orders").in_flight, 0u);
  auto idle = take_nothing(*con);
  EXPECT_EQ(co_await std::move(idle), 0u);
  co_return 0;
}

template <class Cluster>
io::task<int> take_respects_max_and_waits(Cluster& c) {
  auto con = c.consumer("w1");
  // Nothing admitted: a take waits, and ends empty when stopped.
  auto idle = take_nothing(*con);
  size_t none = co_await std::move(idle);
  EXPECT_EQ(none, 0u);
  auto a_job = admit_n(c, "p", 10, 5);
  auto a = co_await std::move(a_job);
  if (a.size() != 5) co_return 1;
  io::cancel_source stop;
  auto first = con->take(2, stop);
  auto two = co_await std::move(first);
  EXPECT_EQ(two.size(), 2u);
  // poll hands out what is ready without waiting, up to its max (a remote
  // backend may have nothing at hand yet; the memory backend has it all).
  auto one = con->poll(1);
  EXPECT_LE(one.size(), 1u);
  if (one.size() == 1) {
    EXPECT_EQ(one[0].id, a[2].id);
  }
  if (std::string_view(Cluster::name) == "memory") {
    EXPECT_EQ(one.size(), 1u);
  }
  auto rest_job = take_n(*con, 3 - one.size(), 10);
  auto rest = co_await std::move(rest_job);
  EXPECT_EQ(rest.size(), 3 - one.size());
  EXPECT_TRUE(con->poll(10).empty());
  EXPECT_EQ(c.queue().depth().in_flight, 5u);
  // A take that waits is woken by the next admission.
  std::vector<io::task<size_t>> both;
  both.push_back([](core::trace_consumer& k) -> io::task<size_t> {
    auto got_job = take_n(k, 1, 10);
    auto got = co_await std::move(got_job);
    co_return got.size();
  }(*con));
  both.push_back([](Cluster& cl) -> io::task<size_t> {
    co_await io::sleep_for(20ms);
    auto more_job = admit_n(cl, "p", 20, 1);
    auto more = co_await std::move(more_job);
    co_return more.size();
  }(c));
  auto joined = io::when_all(std::move(both));
  auto sizes = co_await std::move(joined);
  EXPECT_EQ(sizes[0], 1u);
  EXPECT_EQ(sizes[1], 1u);
  co_return 0;
}

template <class Cluster>
io::task<int> crash_before_ack_redelivers_to_exactly_one(Cluster& c) {
  auto a_job = admit_n(c, "p", 30, 4);
  auto a = co_await std::move(a_job);
  if (a.size() != 4) co_return 1;
  auto dying = c.consumer("dying");
  auto held_job = take_n(*dying, 4, 10);
  auto held = co_await std::move(held_job);
  EXPECT_EQ(held.size(), 4u);
  // It acknowledges one, then dies holding three.
  EXPECT_TRUE(dying->ack(held[0].id, final_record(held[0].id)).ok());
  std::string dead = dying->name();
  c.crash(dying);
  auto b = c.consumer("b");
  auto k = c.consumer("k");
  size_t moved = b->take_over(dead) + k->take_over(dead);
  EXPECT_LE(moved, 3u);  // backends that redeliver by themselves move none
  auto got_b_job = take_n(*b, 2, 2);
  auto got_b = co_await std::move(got_b_job);
  auto got_k_job = take_n(*k, 3 - got_b.size(), 10);
  auto got_k = co_await std::move(got_k_job);
  std::map<std::pair<uint64_t, uint64_t>, int> seen;
  for (auto* got : {&got_b, &got_k})
    for (const auto& d : *got) {
      ++seen[{d.id.hi, d.id.lo}];
      EXPECT_GE(d.attempt, 2u);
      EXPECT_TRUE(core::decode_admission(d.record).has_value());
    }
  EXPECT_EQ(seen.size(), 3u);
  for (size_t i = 1; i < 4; ++i) EXPECT_EQ((seen[{a[i].id.hi, a[i].id.lo}]), 1) << "trace " << i;
  EXPECT_EQ(seen.count({a[0].id.hi, a[0].id.lo}), 0u) << "the acknowledged trace came back";
  // Nothing more for anyone, even after a second take-over.
  EXPECT_EQ(b->take_over(dead) + k->take_over(dead), 0u);
  auto idle_b = take_nothing(*b);
  size_t more_b = co_await std::move(idle_b);
  auto idle_k = take_nothing(*k);
  size_t more_k = co_await std::move(idle_k);
  EXPECT_EQ(more_b + more_k, 0u);
  for (const auto& d : got_b) EXPECT_TRUE(b->ack(d.id, final_record(d.id)).ok());
  for (const auto& d : got_k) EXPECT_TRUE(k->ack(d.id, final_record(d.id)).ok());
  EXPECT_EQ(c.queue().depth().in_flight, 0u);
  co_return 0;
}

template <class Cluster>
io::task<int> ack_is_idempotent(Cluster& c) {
  auto a_job = admit_n(c, "p", 40, 2);
  auto a = co_await std::move(a_job);
  if (a.size() != 2) co_return 1;
  auto w = c.consumer("w");
  auto other = c.consumer("other");
  auto got_job = take_n(*w, 2, 10);
  auto got = co_await std::move(got_job);
  EXPECT_EQ(got.size(), 2u);
  if (got.size() != 2) co_return 2;
  // Not held by `other`: nothing happens, and the holder still can.
  auto foreign = other->ack(got[0].id, final_record(got[0].id));
  EXPECT_TRUE(foreign.ok());
  if (foreign) {
    EXPECT_EQ(*foreign, 0u);
  }
  EXPECT_EQ(c.queue().depth().in_flight, 2u);
  auto first = w->ack(got[0].id, final_record(got[0].id));
  EXPECT_TRUE(first.ok());
  EXPECT_EQ(c.queue().depth().in_flight, 1u);
  auto second = w->ack(got[0].id, final_record(got[0].id));
  EXPECT_TRUE(second.ok());
  if (second) {
    EXPECT_EQ(*second, 0u) << "a second ack wrote something";
  }
  EXPECT_EQ(c.queue().depth().in_flight, 1u);
  // A trace nobody took.
  auto never = w->ack(make_id(999), final_record(make_id(999)));
  EXPECT_TRUE(never.ok());
  if (never) {
    EXPECT_EQ(*never, 0u);
  }
  EXPECT_TRUE(w->ack(got[1].id, final_record(got[1].id)).ok());
  EXPECT_EQ(c.queue().depth().in_flight, 0u);
  co_return 0;
}

template <class Cluster>
io::task<int> depth_per_pipeline(Cluster& c) {
  auto a_job = admit_n(c, "a", 50, 3);
  auto a = co_await std::move(a_job);
  auto b_job = admit_n(c, "b", 60, 2);
  auto b = co_await std::move(b_job);
  if (a.size() + b.size() != 5) co_return 1;
  EXPECT_EQ(c.queue().depth().ready, 5u);
  EXPECT_EQ(c.queue().depth("a").ready, 3u);
  EXPECT_EQ(c.queue().depth("b").ready, 2u);
  EXPECT_EQ(c.queue().depth("none").ready + c.queue().depth("none").in_flight, 0u);
  auto w = c.consumer("w");
  auto got_job = take_n(*w, 4, 4);
  auto got = co_await std::move(got_job);
  EXPECT_EQ(got.size(), 4u);
  core::queue_depth da = c.queue().depth("a"), db = c.queue().depth("b");
  EXPECT_EQ(da.ready + db.ready, 1u);
  EXPECT_EQ(da.in_flight + db.in_flight, 4u);
  EXPECT_EQ(da.ready + da.in_flight, 3u);
  EXPECT_EQ(db.ready + db.in_flight, 2u);
  for (const auto& d : got) EXPECT_TRUE(w->ack(d.id, final_record(d.id)).ok());
  EXPECT_EQ(c.queue().depth().ready, 1u);
  EXPECT_EQ(c.queue().depth().in_flight, 0u);
  co_return 0;
}

// Every watcher sees every change, in one order, with revisions per pipeline.
template <class Cluster>
io::task<int> pipeline_changes_in_one_order(Cluster& c) {
  using kind = core::pipeline_change::kind;
  std::vector<std::unique_ptr<core::pipeline_watch>> watches;
  for (int i = 0; i < 3; ++i) watches.push_back(c.store().watch());
  auto change = [](kind k, std::string name, std::string source, core::pipeline_state s) {
    return testing::make_change(k, std::move(name), std::move(source), s);
  };
  using st = core::pipeline_state;
  std::vector<core::pipeline_change> script = {
      change(kind::deploy, "a", "name: a\nversion: '1'\n", st::running),
      change(kind::deploy, "b", "name: b\n", st::running),
      change(kind::deploy, "a", "name: a\nversion: '2'\n", st::running),
      change(kind::state, "a", "", st::paused),
      change(kind::remove, "b", "", st::running),
      change(kind::deploy, "a", "name: a\nversion: '3'\n", st::paused),
  };
  std::vector<core::pipeline_change> published;
  for (auto& ch : script) {
    auto publishing = c.store().publish(ch, 0);
    auto r = co_await std::move(publishing);
    EXPECT_TRUE(r.ok()) << r.error().message();
    if (!r) co_return 1;
    published.push_back(*r);
  }
  std::vector<uint64_t> revisions;
  for (const auto& p : published) revisions.push_back(p.revision);
  EXPECT_EQ(revisions, (std::vector<uint64_t>{1, 1, 2, 2, 1, 3}));
  for (size_t i = 1; i < published.size(); ++i) EXPECT_LT(published[i - 1].seq, published[i].seq);
  // Refusals: an overtaken revision, an unknown pipeline.
  auto stale = c.store().publish(change(kind::deploy, "a", "name: a\n", st::running), 2);
  auto refused = co_await std::move(stale);
  EXPECT_EQ(refused.error(), core::dispatch_errc::conflict);
  auto unknown = c.store().publish(change(kind::state, "b", "", st::paused), 0);
  auto missing = co_await std::move(unknown);
  EXPECT_EQ(missing.error(), core::dispatch_errc::not_found);
  // Only-if-new: refused for a stored pipeline (nodes starting together
  // deploy their pipelines directory once), taken for one that is not.
  auto again = c.store().publish(change(kind::deploy, "a", "name: a\n", st::running), core::revision_absent);
  auto exists = co_await std::move(again);
  EXPECT_EQ(exists.error(), core::dispatch_errc::conflict);
  auto current = c.store().publish(change(kind::deploy, "a", "name: a\nversion: '4'\n", st::paused), 3);
  auto accepted = co_await std::move(current);
  EXPECT_TRUE(accepted.ok());
  if (accepted) {
    EXPECT_EQ(accepted->revision, 4u);
    published.push_back(*accepted);
  }
  auto fresh = c.store().publish(change(kind::deploy, "c", "name: c\n", st::running), core::revision_absent);
  auto created = co_await std::move(fresh);
  EXPECT_TRUE(created.ok());
  if (created) {
    EXPECT_EQ(created->revision, 1u);
    published.push_back(*created);
  }
  for (auto& w : watches) {
    std::vector<core::pipeline_change> seen;
    io::cancel_source stop;
    io::deadline limit(1s, stop);
    while (seen.size() < published.size()) {
      auto next = w->next(stop);
      auto ch = co_await std::move(next);
      if (!ch) break;
      seen.push_back(std::move(*ch));
    }
    EXPECT_EQ(seen.size(), published.size());
    for (size_t i = 0; i < std::min(seen.size(), published.size()); ++i) {
      EXPECT_EQ(seen[i].seq, published[i].seq);
      EXPECT_EQ(seen[i].name, published[i].name);
      EXPECT_EQ(seen[i].what, published[i].what);
      EXPECT_EQ(seen[i].revision, published[i].revision);
      EXPECT_EQ(seen[i].source, published[i].source);
      EXPECT_EQ(seen[i].state, published[i].state);
    }
  }
  co_return 0;
}

}  // namespace xerv::conformance

template <class Cluster>
class dispatch_conformance : public ::testing::Test {};
TYPED_TEST_SUITE_P(dispatch_conformance);

#define XERV_CONFORMANCE_TEST(name)                                                      \
  TYPED_TEST_P(dispatch_conformance, name) {                                             \
    EXPECT_EQ(xerv::conformance::run_with<TypeParam>(&xerv::conformance::name<TypeParam>), 0); \
  }

XERV_CONFORMANCE_TEST(admit_take_ack)
XERV_CONFORMANCE_TEST(take_respects_max_and_waits)
XERV_CONFORMANCE_TEST(crash_before_ack_redelivers_to_exactly_one)
XERV_CONFORMANCE_TEST(ack_is_idempotent)
XERV_CONFORMANCE_TEST(depth_per_pipeline)
XERV_CONFORMANCE_TEST(pipeline_changes_in_one_order)

REGISTER_TYPED_TEST_SUITE_P(dispatch_conformance, admit_take_ack, take_respects_max_and_waits,
                            crash_before_ack_redelivers_to_exactly_one, ack_is_idempotent, depth_per_pipeline,
                            pipeline_changes_in_one_order);
